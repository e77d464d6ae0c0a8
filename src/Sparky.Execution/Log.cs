using Microsoft.Extensions.Logging;

namespace Sparky.Execution;

/// <summary>What the executors' building blocks log (event ids 1600-1799). Each takes its logger from its owner; one
/// given none writes to stderr at the default level (<see cref="Sparky.Core.Logging.LineLoggerProvider.Fallback"/>).</summary>
internal static partial class ExecutionLog
{
    // ---- Processes (1600-1699) ----

    [LoggerMessage(1601, LogLevel.Warning, "cannot make cgroup {Dir}: {Error}; the attempt is found by its marker")]
    public static partial void CgroupNotMade(ILogger logger, string dir, string error);

    [LoggerMessage(1602, LogLevel.Warning, "cannot hold attempt {Name} to {MiB} MiB: {Error}; it runs without a memory limit")]
    public static partial void MemoryNotHeld(ILogger logger, string name, long miB, string error);

    // ---- Slurm (1700-1799) ----

    [LoggerMessage(1701, LogLevel.Error, "slurm: {Kind}: {Error}")]
    public static partial void SlurmLoopFailed(ILogger logger, string kind, string error);

    [LoggerMessage(1702, LogLevel.Warning, "slurm: squeue line {Line} skipped: {Reason}")]
    public static partial void SqueueLineSkipped(ILogger logger, int line, string reason);
}
