using Microsoft.Extensions.Logging;

namespace Sparky.Server.Http;

/// <summary>What the HTTP API logs (event ids 1400-1499).</summary>
internal static partial class HttpLog
{
    [LoggerMessage(1401, LogLevel.Error, "log feed {Id}: {Error}")]
    public static partial void FeedFailed(ILogger logger, string id, string error);
}
