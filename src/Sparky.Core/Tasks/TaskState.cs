namespace Sparky.Core.Tasks;

/// <summary>
/// The life of a task. Each attempt is kept separately; the task's state is the state of the whole.
/// <code>
///              ┌──────────── retry (backoff) ◄───────┐
///              ▼                                     │ failed attempt, retries left
///  submit ─► queued ──start──► running ──exit 0──► succeeded
///              │                  │ ──exit≠0 / signal / timeout / lost, no retries left──► failed
///              │                  └──cancel──► cancelled
///              ├──cancel──► cancelled
///              └──dependency failed or cancelled──► failed (reason dependency_failed)
/// </code>
/// Terminal states never change again, except by an explicit replay (<c>sparky retry</c>) which queues the
/// same spec as a new round of attempts.
/// </summary>
public enum TaskState
{
    Queued = 0,
    Running = 1,
    Succeeded = 2,
    Failed = 3,
    Cancelled = 4,
}

public static class TaskStates
{
    public static bool IsTerminal(this TaskState s) => s >= TaskState.Succeeded;

    public static string Name(this TaskState s) => s switch
    {
        TaskState.Queued => "queued",
        TaskState.Running => "running",
        TaskState.Succeeded => "succeeded",
        TaskState.Failed => "failed",
        TaskState.Cancelled => "cancelled",
        _ => throw new ArgumentOutOfRangeException(nameof(s)),
    };

    public static bool TryParse(string? text, out TaskState state)
    {
        foreach (var s in Enum.GetValues<TaskState>())
        {
            if (string.Equals(s.Name(), text, StringComparison.OrdinalIgnoreCase)) { state = s; return true; }
        }
        state = default;
        return false;
    }
}

/// <summary>How one attempt ended. Stored, and shown (<c>attempt_list[].outcome</c>), as its <see cref="AttemptOutcomes.Name"/>;
/// an attempt that has not ended has none.</summary>
public enum AttemptOutcome
{
    Succeeded,
    Failed,
    Cancelled,
}

public static class AttemptOutcomes
{
    /// <summary>The outcome of an attempt that ended its task in <paramref name="state"/> (or failed before a retry).</summary>
    public static AttemptOutcome Of(TaskState state) => state switch
    {
        TaskState.Succeeded => AttemptOutcome.Succeeded,
        TaskState.Cancelled => AttemptOutcome.Cancelled,
        _ => AttemptOutcome.Failed,
    };

    public static string Name(this AttemptOutcome o) => o switch
    {
        AttemptOutcome.Succeeded => "succeeded",
        AttemptOutcome.Failed => "failed",
        AttemptOutcome.Cancelled => "cancelled",
        _ => throw new ArgumentOutOfRangeException(nameof(o)),
    };

    /// <summary>The outcome a stored name says; null for none, or for a name this version does not know.</summary>
    public static AttemptOutcome? Parse(string? name) => name switch
    {
        "succeeded" => AttemptOutcome.Succeeded,
        "failed" => AttemptOutcome.Failed,
        "cancelled" => AttemptOutcome.Cancelled,
        _ => null,
    };
}

/// <summary>Why a task or attempt ended the way it did, in words a user reads in <c>sparky status</c>.</summary>
public static class Reasons
{
    public const string DependencyFailed = "dependency_failed";
    /// <summary>Its resources can never be had here (for instance a GPU that is gone after a restart).</summary>
    public const string Unsatisfiable = "unsatisfiable";
    public const string Timeout = "timeout";
    public const string Cancelled = "cancelled";
    public const string Lost = "lost";
    /// <summary>The worker running it stopped heartbeating (or left without finishing it); queued again.</summary>
    public const string WorkerLost = "worker_lost";
    public const string SpawnFailed = "spawn_failed";
    /// <summary>sbatch kept failing (Slurm down or refusing the job) through every try.</summary>
    public const string SubmitFailed = "submit_failed";
    /// <summary>Slurm killed the job for using more memory than it asked for.</summary>
    public const string OutOfMemory = "out_of_memory";
    /// <summary>Cancelled by Slurm (scancel by someone else, an admin), not by Sparky.</summary>
    public const string CancelledBySlurm = "cancelled_by_slurm";
    /// <summary>Its payload names work instead of a command and its class has no handler to run it.</summary>
    public const string NoHandler = "no_handler";
    public const string NonZeroExit = "exit_code";
    public const string Signal = "signal";
}
