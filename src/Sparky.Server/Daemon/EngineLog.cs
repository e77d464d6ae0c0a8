using Microsoft.Extensions.Logging;

namespace Sparky.Server.Daemon;

/// <summary>
/// What the engine and its executors log (event ids 2000-2299). The engine's logger comes from the daemon's factory
/// (<c>d.Logs.CreateLogger&lt;Engine&gt;()</c>); the local executor's is its own.
/// </summary>
internal static partial class EngineLog
{
    // ---- the engine: its loop and its attempts ----

    /// <summary>A pass of the engine's loop threw; the loop goes on.</summary>
    [LoggerMessage(2001, LogLevel.Error, "engine: {Kind}: {Error}")]
    public static partial void LoopFailed(ILogger logger, string kind, string error);

    [LoggerMessage(2002, LogLevel.Error, "cannot start {Id}: {Why}")]
    public static partial void CannotStart(ILogger logger, string id, string why);

    [LoggerMessage(2003, LogLevel.Warning, "task {Id}: no result: {Error}")]
    public static partial void NoResult(ILogger logger, string id, string error);

    [LoggerMessage(2004, LogLevel.Warning, "task {Id} attempt {Attempt}: {Why}")]
    public static partial void OutOfMemory(ILogger logger, string id, int attempt, string why);

    [LoggerMessage(2005, LogLevel.Warning, "bench_noop_classes = {Classes}: tasks of these classes run NOTHING and succeed at once (a benchmark's setting)")]
    public static partial void NoopClasses(ILogger logger, string classes);

    [LoggerMessage(2006, LogLevel.Information, "{How}")]
    public static partial void CgroupEntry(ILogger logger, string how);

    // ---- the Slurm executor (Executors/Slurm) ----

    [LoggerMessage(2010, LogLevel.Error, "cannot submit {Id} to Slurm: {Error}")]
    public static partial void SlurmSubmitFailed(ILogger logger, string id, string error);

    // ---- 2020-2039: the worker executor and its pilots (Executors/Workers/Log.cs) ----

    // ---- Executors/Local/LocalExecutor.cs ----

    [LoggerMessage(2200, LogLevel.Warning, "ended {Killed} process(es) a previous daemon left running")]
    public static partial void LeftoversEnded(ILogger logger, int killed);
}
