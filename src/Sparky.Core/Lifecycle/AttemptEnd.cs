using Sparky.Core.Scheduling;
using Sparky.Core.Tasks;

namespace Sparky.Core.Lifecycle;

/// <summary>Why a running attempt is being stopped by Sparky (none: it runs to its own end).</summary>
public enum StopReason { None, Timeout, Cancel, DependencyFailed }

/// <summary>How an attempt ended, as its executor saw it: an exit code or a signal (neither: not known), and the
/// executor's own reason where it has one (spawn_failed, worker_lost, submit_failed, out_of_memory from Slurm …).</summary>
public readonly record struct AttemptExit(int? ExitCode, int? Signal, string? Reason = null);

/// <summary>What an attempt's end means for its task: its outcome and reason, and when it runs again, if it does.</summary>
/// <param name="RetryAt">When the next attempt may start; null: the task ends with this outcome.</param>
/// <param name="LostRequeues">The task's requeues after a lost worker so far, this one included.</param>
public sealed record EndDecision(TaskState Outcome, string? Reason, DateTimeOffset? RetryAt, int LostRequeues);

/// <summary>
/// The meaning of an attempt's end, apart from any I/O: which stop wins, what an exit says, and whether and when the
/// task runs again (its retry budget, backoff with the jitter passed in, and the requeues a lost worker earns without
/// using a retry). The engine asks <see cref="Outcome"/> first (the outcome decides how thoroughly the attempt's
/// leftovers are ended, which tells whether the OOM killer struck), then <see cref="Settle"/>.
/// </summary>
public static class AttemptEnd
{
    /// <summary>A task its worker took down with it is queued again without using a retry, this many times at most.</summary>
    public const int MaxLostRequeues = 5;

    /// <summary>
    /// Stops an attempt for <paramref name="why"/> unless a stop that stands is in force: a timeout gives way to a cancel or
    /// a failed dependency (a user's cancel of a timed-out attempt records it cancelled); nothing else gives way.
    /// True if it took: the caller signals the attempt.
    /// </summary>
    public static bool TryStop(ref StopReason current, StopReason why)
    {
        if (why == StopReason.None || current != StopReason.None && (current != StopReason.Timeout || why == StopReason.Timeout)) return false;
        current = why;
        return true;
    }

    /// <summary>
    /// The outcome of an end: a stop decides it whatever the exit says (a task that exits 0 on its timeout's SIGTERM
    /// still timed out); else exit 0 with no reason is a success, and anything else a failure, with its reason.
    /// <paramref name="underShim"/>: the exit came through the re-attach shim, whose shell says 128+N for death by signal N.
    /// </summary>
    public static (TaskState Outcome, string? Reason, AttemptExit Exit) Outcome(StopReason stop, AttemptExit exit, bool underShim)
    {
        if (underShim && exit is { ExitCode: > 128 and < 160, Signal: null }) exit = exit with { Signal = exit.ExitCode - 128 };
        // No exit code and no signal (reaped elsewhere, or its executor lost it): how it ended is not known.
        var reason = exit is { ExitCode: null, Signal: null } ? exit.Reason ?? Reasons.Lost : exit.Reason;
        var (outcome, why) = stop switch
        {
            StopReason.DependencyFailed => (TaskState.Failed, Reasons.DependencyFailed),
            StopReason.Cancel => (TaskState.Cancelled, Reasons.Cancelled),
            StopReason.Timeout => (TaskState.Failed, Reasons.Timeout),
            _ when reason is null && exit.ExitCode == 0 => (TaskState.Succeeded, (string?)null),
            _ => (TaskState.Failed, reason ?? (exit.Signal is not null ? Reasons.Signal : Reasons.NonZeroExit)),
        };
        return (outcome, why, exit);
    }

    /// <summary>
    /// Settles an end: an OOM kill names itself (as Slurm does), and a failure runs again while the task's retries (and
    /// the requeues earned by lost workers) last, after a backoff; a failed dependency never retries, nor a payload that
    /// its class has no handler for (it would fail the same way again).
    /// </summary>
    /// <param name="attempt">this attempt's number (1 for the first)</param>
    /// <param name="lostRequeues">requeues after a lost worker before this end</param>
    /// <param name="jitter">a number in [0, 1) for the backoff, passed in so tests decide it</param>
    public static EndDecision Settle(TaskState outcome, string? reason, StopReason stop, bool outOfMemory, int attempt, int retries, int lostRequeues,
        RetryPolicy policy, double jitter, DateTimeOffset now)
    {
        if (outOfMemory && reason is Reasons.Signal or Reasons.NonZeroExit) reason = Reasons.OutOfMemory;
        bool requeueLost = reason == Reasons.WorkerLost && outcome == TaskState.Failed && lostRequeues < MaxLostRequeues;
        if (requeueLost) lostRequeues++;
        bool again = outcome == TaskState.Failed && stop != StopReason.DependencyFailed && reason != Reasons.NoHandler && (requeueLost || attempt <= retries + lostRequeues);
        DateTimeOffset? at = !again ? null : requeueLost ? now : now + policy.Delay(attempt, jitter);
        return new EndDecision(outcome, reason, at, lostRequeues);
    }
}

/// <summary>A stop as the store keeps it in a running attempt's reason (see <see cref="Effect.RecordStop"/>).</summary>
public static class StopReasons
{
    public static string Name(StopReason stop) => stop switch
    {
        StopReason.Cancel => Reasons.Cancelled,
        StopReason.Timeout => Reasons.Timeout,
        StopReason.DependencyFailed => Reasons.DependencyFailed,
        _ => throw new ArgumentOutOfRangeException(nameof(stop), stop, "not a stop"),
    };

    /// <summary>The stop a running attempt's stored reason names; none for anything else.</summary>
    public static StopReason Of(string? reason) => reason switch
    {
        Reasons.Cancelled => StopReason.Cancel,
        Reasons.Timeout => StopReason.Timeout,
        Reasons.DependencyFailed => StopReason.DependencyFailed,
        _ => StopReason.None,
    };
}
