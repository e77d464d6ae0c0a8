using Microsoft.Extensions.Logging;

namespace Sparky.Server.Progress;

/// <summary>What the progress follower logs (event ids 2400-2499).</summary>
internal static partial class ProgressLog
{
    [LoggerMessage(2401, LogLevel.Error, "progress: {Kind}: {Error}")]
    public static partial void LookFailed(ILogger logger, string kind, string error);
}
