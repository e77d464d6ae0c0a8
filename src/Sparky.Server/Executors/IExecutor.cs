using System.Text.Json.Nodes;
using Sparky.Core.Events;
using Sparky.Core.Lifecycle;
using Sparky.Core.Scheduling;
using Sparky.Core.Tasks;
using Sparky.Execution.Processes;
using Sparky.Store.Sqlite;

namespace Sparky.Server.Executors;

/// <summary>
/// Where attempts run: this host's processes, Slurm jobs, or workers. The engine picks a class's executor once and
/// hands it attempts; the executor places each, signals it, follows it again after a restart, and reports its end
/// back through the <see cref="IAttemptHost"/>. Only the engine's loop calls it, so nothing here needs a lock.
/// </summary>
internal interface IExecutor
{
    /// <summary>Starts <paramref name="attempt"/>, which is in the engine's table and placed nowhere yet: records its
    /// start (store, event) once it is under way, or fails it through <see cref="IAttemptHost.FailStart"/>.</summary>
    void Start(Attempt attempt, TaskSpec spec, Allocation allocation, DateTimeOffset now);

    /// <summary>Whether a stop's SIGTERM is followed by a SIGKILL after the kill grace if the attempt has not ended by
    /// then (processes here and on workers); a Slurm job's scancel needs none.</summary>
    bool KillsAfterGrace { get; }

    /// <summary>Asks a running attempt to stop with <paramref name="signal"/> (a cancel, a timeout, a dependency that
    /// failed).</summary>
    void Stop(Attempt attempt, int signal);

    /// <summary>A cancel: an attempt not under way anywhere now is taken back by its executor.
    /// <see cref="Withdrawn.Unstarted"/>: it was never recorded as started (waiting for a worker's credit), and is out of
    /// the executor's hands: the engine ends its task from queued. <see cref="Withdrawn.Started"/>: it was recorded as
    /// started but runs nowhere it can be signalled (awaiting its worker after a restart): the engine ends the attempt.
    /// <see cref="Withdrawn.No"/>: it runs; the engine signals it.</summary>
    Withdrawn Withdraw(Attempt attempt);

    /// <summary>An attempt ended, however: what the executor held for it goes. <paramref name="reported"/>: the usage
    /// that came with its end (a worker's); the executor may read its own instead.</summary>
    Released Release(Attempt attempt, bool failed, AttemptUsage reported);

    /// <summary>The end of <paramref name="attempt"/> is being written (<paramref name="final"/>: no retry follows):
    /// what waits for it (an exit file, a job-id waiter) is let go once it is stored.</summary>
    void Settled(Attempt attempt, Task<WriteResult> endWrite, bool final);

    /// <summary>A task of this executor's class ended without an attempt in flight (cancelled while queued or in its
    /// backoff, a dependency that failed): what waits on it is let go once <paramref name="write"/> is stored.</summary>
    void EndedUnstarted(TaskId id, Task<WriteResult> write);

    /// <summary>After a restart: a task stored as queued, which a dead daemon may have started without recording it.</summary>
    void RecoverQueued(TaskId id);

    /// <summary>After a restart: an attempt the store says runs here. Null: it is followed again; otherwise the end to
    /// record once every attempt has been recovered (so nothing left over runs beside a retry).</summary>
    RecoveredEnd? Recover(Attempt attempt, TaskSpec? spec, AttemptRecord? last, DateTimeOffset now);

    /// <summary>Once per pass of the loop, after the commands: the executor's own timers.</summary>
    void Tick(DateTimeOffset now);

    /// <summary>When <see cref="Tick"/> is next owed, or null.</summary>
    DateTimeOffset? NextWake(DateTimeOffset now);
}


/// <summary>What an executor gave back at an attempt's end: what it used; why its declared outputs cannot be seen from the
/// daemon (null: they can, from its working directory); its result line where the executor read it (null: the engine
/// reads it from the attempt's stdout log); whether its executor writes notes (an OOM kill) into the attempt's log itself.</summary>
internal readonly record struct Released(AttemptUsage Usage, string? OutputsUnseen = null, ResultRead? Result = null, bool WritesNotes = false);

/// <summary>The end a recovery found for an attempt: its exit, and a reason where the exit alone does not say.</summary>
internal readonly record struct RecoveredEnd(ProcessExit Exit, string? Reason);

/// <summary>What executors call back on the engine's loop.</summary>
internal interface IAttemptHost
{
    /// <summary>The attempt in flight of <paramref name="id"/>, or null.</summary>
    Attempt? InFlight(TaskId id);

    /// <summary>An attempt ended: the engine records it and decides what follows (success, a retry, a failure).</summary>
    void Ended(Attempt attempt, ProcessExit exit, string? reason, DateTimeOffset now, AttemptUsage usage = default);

    /// <summary>What an executor learns of an attempt's life: it is under way (its timeout runs), it awaits its worker
    /// after a restart, its worker took it back. The engine hands it to the task's life and carries out what follows.</summary>
    void Report(Attempt attempt, LifeEvent e, DateTimeOffset now);

    /// <summary>An attempt could not start: recorded as started, then failed with <paramref name="why"/> in its log.</summary>
    void FailStart(Attempt attempt, string why, DateTimeOffset now, string reason = Reasons.SpawnFailed, int? exitCode = 127);
}

/// <summary>Task events as every executor and the engine publish them: the task's id and class in the body.</summary>
internal static class TaskEvents
{
    public static SparkyEvent Of(string topic, TaskId id, string cls, DateTimeOffset at, JsonObject body)
    {
        body["id"] = id.Value;
        body["class"] = cls;
        return new SparkyEvent(topic, at.ToUnixTimeMilliseconds(), body);
    }
}
