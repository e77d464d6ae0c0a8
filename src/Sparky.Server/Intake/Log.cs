using Microsoft.Extensions.Logging;

namespace Sparky.Server.Intake;

/// <summary>What the drop directory and the done-file writer log (event ids 1100-1199).</summary>
internal static partial class IntakeLog
{
    [LoggerMessage(1101, LogLevel.Error, "the done files owed could not be read ({Error}); they are written at a later start")]
    public static partial void DoneFilesOwedUnreadable(ILogger logger, string error);

    [LoggerMessage(1102, LogLevel.Information, "done files are written again ({Seconds} s after the first failure)")]
    public static partial void DoneFilesWrittenAgain(ILogger logger, long seconds);

    [LoggerMessage(1103, LogLevel.Error, "done file for {Id}: {Error}; trying again until it is written ({Waiting} waiting)")]
    public static partial void DoneFileFailing(ILogger logger, string id, string error, int waiting);

    [LoggerMessage(1104, LogLevel.Warning, "done files: {Error}")]
    public static partial void DoneFilesStopped(ILogger logger, string? error);

    [LoggerMessage(1110, LogLevel.Warning, "drop directory: no inotify ({Problem}); pending/ is scanned every second instead")]
    public static partial void NoInotify(ILogger logger, string? problem);

    [LoggerMessage(1111, LogLevel.Error, "drop directory: {Error}")]
    public static partial void DropFailed(ILogger logger, string error);

    [LoggerMessage(1112, LogLevel.Error, "drop directory: pending/ is gone and cannot be made again: {Error}")]
    public static partial void PendingGone(ILogger logger, string error);

    [LoggerMessage(1113, LogLevel.Warning, "drop directory: {Problem}; trying again every second")]
    public static partial void CannotWatch(ILogger logger, string? problem);

    [LoggerMessage(1114, LogLevel.Error, "drop directory: {Name}: {Error}")]
    public static partial void FileFailed(ILogger logger, string name, string error);

    [LoggerMessage(1115, LogLevel.Debug, "drop directory: {Name}: not whole yet (a writer has it, or it changed less than {Settle} s ago); waiting")]
    public static partial void NotWholeYet(ILogger logger, string name, string settle);

    [LoggerMessage(1116, LogLevel.Debug, "drop directory: {Name}: dealt with after waiting")]
    public static partial void DealtWithAfterWaiting(ILogger logger, string name);

    [LoggerMessage(1117, LogLevel.Warning, "drop directory: {Name}: {Why}; trying again")]
    public static partial void TryingAgain(ILogger logger, string name, string why);

    [LoggerMessage(1118, LogLevel.Warning, "drop directory: poll: {Error}; pending/ is scanned every second instead")]
    public static partial void PollFailed(ILogger logger, string error);

    [LoggerMessage(1119, LogLevel.Warning, "drop directory: reading inotify: {Error}; pending/ is scanned every second instead")]
    public static partial void InotifyReadFailed(ILogger logger, string error);
}
