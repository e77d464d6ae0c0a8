using Microsoft.Extensions.Logging;

namespace Sparky.Server.Executors.Workers;

/// <summary>What the worker executor and its pilots log (event ids 2020-2039, within the engine's range: they log
/// through the engine's logger, as they did when they were part of it).</summary>
internal static partial class WorkersLog
{
    // ---- pilots (Pilots.cs) ----

    [LoggerMessage(2020, LogLevel.Error, "cannot submit pilot {Pilot}: {Error}")]
    public static partial void PilotSubmitFailed(ILogger logger, string pilot, string error);

    [LoggerMessage(2021, LogLevel.Warning, "pilot {Pilot} (job {JobId}) ended {State} before its worker connected; see {ErrorLog}")]
    public static partial void PilotEndedUnconnected(ILogger logger, string pilot, string jobId, string state, string errorLog);

    // ---- workers ----

    [LoggerMessage(2030, LogLevel.Warning, "worker {Worker} does not hold {Id} (attempt {Attempt}): lost on the way, queued again")]
    public static partial void TaskLostOnTheWay(ILogger logger, string worker, string id, int attempt);

    [LoggerMessage(2031, LogLevel.Warning, "worker {Worker} lost ({Why}); {Held} task(s) queued again")]
    public static partial void WorkerLost(ILogger logger, string worker, string why, int held);
}
