using Sparky.Core.Scheduling;
using Sparky.Core.Tasks;

namespace Sparky.Core.Lifecycle;

/// <summary>Where a task is in its life: waiting for a start (queued, or in a retry's backoff), running an attempt,
/// between an attempt's exit and its executor letting go of it, or ended.</summary>
public enum LifePhase { Waiting, Running, Ending, Ended }

/// <summary>How far an executor had taken an attempt that it takes back on a cancel.</summary>
public enum Withdrawn
{
    /// <summary>It runs: it is asked to stop, and its end comes back from where it runs.</summary>
    No,
    /// <summary>It was never recorded as started (it waited for a worker's credit): the task ends from queued.</summary>
    Unstarted,
    /// <summary>It was recorded as started but runs nowhere now (its worker has not come back since a restart): its
    /// attempt ends here, with no exit.</summary>
    Started,
}

/// <summary>The signals the lifecycle asks for: the polite one first, the one that cannot be refused after a grace.</summary>
public enum StopSignal { Term, Kill }

/// <summary>What happens to a task, as the engine reports it to <see cref="TaskLife.Handle"/>.</summary>
public abstract record LifeEvent
{
    /// <summary>Time passed: its timeout, the SIGKILL owed after a stop's grace, and its worker's adopt deadline.</summary>
    public static readonly LifeEvent Tick = new TickEvent();
    /// <summary>A task it depends on failed.</summary>
    public static readonly LifeEvent DependencyFailed = new DependencyFailedEvent();
    /// <summary>The worker that ran it before a restart said hello again with it: it is followed again.</summary>
    public static readonly LifeEvent Adopted = new AdoptedEvent();

    /// <summary>The scheduler let it start: a new attempt begins, and its executor is asked to start it.
    /// <paramref name="KillAfterGrace"/>: its executor follows a stop's SIGTERM with a SIGKILL after the grace (a Slurm
    /// job's scancel needs none).</summary>
    public sealed record Begin(bool KillAfterGrace) : LifeEvent;

    /// <summary>Its executor has it under way: its timeout runs from <paramref name="Since"/> (a recovered attempt's
    /// recorded start), else from now.</summary>
    public sealed record UnderWay(double? TimeoutSeconds, DateTimeOffset? Since = null) : LifeEvent;

    /// <summary>After a restart, its worker has until <paramref name="By"/> to say hello again with it.</summary>
    public sealed record AwaitingWorker(DateTimeOffset By) : LifeEvent;

    /// <summary>The attempt ended, as its executor saw it. <paramref name="UnderShim"/>: the exit came through the
    /// re-attach shim, whose shell says 128+N for death by signal N.</summary>
    public sealed record Exited(AttemptExit Exit, bool UnderShim = false) : LifeEvent;

    /// <summary>Its executor let go of the ended attempt, and says whether the kernel's OOM killer ended it.</summary>
    public sealed record Released(bool OutOfMemory) : LifeEvent;

    /// <summary>The scheduler refuses it before any start: a dependency failed, or it asks for what can never be had.</summary>
    public sealed record Refused(string Reason) : LifeEvent;

    /// <summary>A user cancels it; <paramref name="Withdrawn"/>: how far its executor had taken a running attempt.</summary>
    public sealed record Cancel(Withdrawn Withdrawn = Withdrawn.No) : LifeEvent;

    private sealed record TickEvent : LifeEvent;
    private sealed record DependencyFailedEvent : LifeEvent;
    private sealed record AdoptedEvent : LifeEvent;
}

/// <summary>What the engine must carry out for a task, in order, after an event.</summary>
public abstract record Effect
{
    /// <summary>Ask its executor to start attempt <paramref name="Attempt"/>.</summary>
    public sealed record Start(int Attempt) : Effect;

    /// <summary>Store why the running attempt is being stopped, before it is signalled: a restart before its end
    /// still records that end as this stop (a cancel acknowledged before a crash holds after it).</summary>
    public sealed record RecordStop(int Attempt, StopReason Why) : Effect;

    /// <summary>Signal the running attempt (its whole tree, its worker's task, or its Slurm job).</summary>
    public sealed record Signal(StopSignal Which) : Effect;

    /// <summary>Its executor lets go of the ended attempt (<paramref name="Failed"/>: ends it thoroughly, reading
    /// whether the OOM killer struck); the engine answers with <see cref="LifeEvent.Released"/>.</summary>
    public sealed record Release(bool Failed) : Effect;

    /// <summary>Store the attempt's end and announce it: the task is queued again at <paramref name="RetryAt"/>
    /// (task.retrying), or ends with <paramref name="Outcome"/> (task.finished).</summary>
    public sealed record RecordEnd(int Attempt, TaskState Outcome, string? Reason, AttemptExit Exit, DateTimeOffset? RetryAt) : Effect;

    /// <summary>The scheduler takes it back, to start again at <paramref name="At"/>.</summary>
    public sealed record Requeue(DateTimeOffset At) : Effect;

    /// <summary>The scheduler lets it go: its slot frees, and its dependants learn its outcome.</summary>
    public sealed record Finish(TaskState Outcome) : Effect;

    /// <summary>Store and announce the end of a task that runs no attempt (cancelled while queued or in its backoff,
    /// or a dependency that failed), and take it out of the scheduler.</summary>
    public sealed record EndUnstarted(TaskState Outcome, string Reason) : Effect;
}

/// <summary>What the lifecycle needs from outside at an event: the time, a random number for backoff (passed in so
/// tests decide it), the retry policy and the kill grace.</summary>
public readonly record struct LifeContext(DateTimeOffset Now, double Jitter, RetryPolicy Policy, TimeSpan KillGrace);
