using System.Text.Json.Nodes;
using Sparky.Core.Events;
using Sparky.Core.Lifecycle;
using Sparky.Core.Scheduling;
using Sparky.Core.Tasks;
using Sparky.Execution.Processes;
using Sparky.Server.Events;
using Sparky.Store.Sqlite;

namespace Sparky.Server.Executors.Noop;

/// <summary>An attempt of a no-op class: it runs nowhere.</summary>
internal sealed record NoopPlacement : Placement
{
    public static readonly NoopPlacement Instance = new();
}

/// <summary>
/// For benchmarks only (<c>bench_noop_classes</c>, <c>bench/overhead</c>): runs nothing. Each attempt is recorded and
/// announced as started like a local one, and its exit (0) comes back through the engine's commands as a reaped child's
/// does, so its end takes the same path: the task's life, the store's end write, task.finished, metrics, the limiter.
/// What it leaves out is only what the kernel and the process would cost: the spawn, the log files, SIGCHLD and reaping.
/// </summary>
internal sealed class NoopExecutor(IAttemptHost host, SqliteStore store, EventHub events, Action<TaskId, int, ProcessExit> exited) : IExecutor
{
    private static readonly ProcessExit Success = new(0, null);

    public void Start(Attempt run, TaskSpec spec, Allocation allocation, DateTimeOffset now)
    {
        host.Report(run, new LifeEvent.UnderWay(spec.TimeoutSeconds), now);
        run.Place = NoopPlacement.Instance;
        _ = store.AttemptStartedAsync(run.Id, spec.Class, TaskState.Queued,
            new AttemptRecord(run.N, run.StartedAt, null, null, null, null, null, Environment.MachineName, null, null, null));
        events.Publish(TaskEvents.Of(SparkyEvent.TaskStarted, run.Id, spec.Class, now, new JsonObject { ["attempt"] = run.N }));
        exited(run.Id, run.N, Success);
    }

    /// <summary>Its exit is already on its way: a stop has nothing to signal.</summary>
    public bool KillsAfterGrace => false;

    public void Stop(Attempt attempt, int signal) { }

    public Withdrawn Withdraw(Attempt attempt) => Withdrawn.No;

    /// <summary>Nothing was held; no stdout was written, so no result line is read from one.</summary>
    public Released Release(Attempt attempt, bool failed, AttemptUsage reported) => new(reported, Result: ResultRead.None);

    public void Settled(Attempt attempt, Task<WriteResult> endWrite, bool final) { }

    public void EndedUnstarted(TaskId id, Task<WriteResult> write) { }

    public void RecoverQueued(TaskId id) { }

    /// <summary>An attempt a dead daemon left would have ended at once: it ends as it would have.</summary>
    public RecoveredEnd? Recover(Attempt attempt, TaskSpec? spec, AttemptRecord? last, DateTimeOffset now)
    {
        attempt.Place = NoopPlacement.Instance;
        return new RecoveredEnd(Success, null);
    }

    public void Tick(DateTimeOffset now) { }

    public DateTimeOffset? NextWake(DateTimeOffset now) => null;
}
