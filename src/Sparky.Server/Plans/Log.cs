using Microsoft.Extensions.Logging;

namespace Sparky.Server.Plans;

/// <summary>What the plan runner logs (event ids 1200-1299).</summary>
internal static partial class PlansLog
{
    [LoggerMessage(1201, LogLevel.Error, "plans: a step of the plan runner failed")]
    public static partial void StepFailed(ILogger logger, Exception exception);

    [LoggerMessage(1202, LogLevel.Warning, "plans: removing the report of '{Name}': {Error}")]
    public static partial void ReportNotRemoved(ILogger logger, string name, string error);

    [LoggerMessage(1203, LogLevel.Error, "plans: '{Name}': {Error}")]
    public static partial void StoredVarsUnreadable(ILogger logger, string name, string error);

    [LoggerMessage(1204, LogLevel.Error, "plans: stored plan '{Name}' no longer parses: {Error}")]
    public static partial void StoredPlanInvalid(ILogger logger, string name, string error);

    [LoggerMessage(1205, LogLevel.Error, "plans: cannot resume {Name}: {Error}")]
    public static partial void CannotResume(ILogger logger, string name, string error);

    [LoggerMessage(1206, LogLevel.Error, "plans: storing '{Name}': {Error}")]
    public static partial void NotStored(ILogger logger, string name, string? error);

    [LoggerMessage(1207, LogLevel.Warning, "plans: report for '{Name}': {Error}")]
    public static partial void ReportNotWritten(ILogger logger, string name, string error);
}
