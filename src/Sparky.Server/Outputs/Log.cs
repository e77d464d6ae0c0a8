using Microsoft.Extensions.Logging;

namespace Sparky.Server.Outputs;

/// <summary>What the artifact recorder logs (event ids 1300-1399).</summary>
internal static partial class OutputsLog
{
    [LoggerMessage(1301, LogLevel.Error, "the artifacts owed could not be read ({Error}); they are hashed at a later start")]
    public static partial void OwedUnreadable(ILogger logger, string error);

    [LoggerMessage(1302, LogLevel.Error, "artifacts of {Id}: {Kind}: {Error}; left owed for the next start")]
    public static partial void RecordFailed(ILogger logger, string id, string kind, string error);
}
