namespace Sparky.Execution.Slurm;

/// <summary>One job (or array element, or pending array range) as squeue, scontrol or sacct shows it.</summary>
/// <param name="JobId">As squeue and sacct print it: <c>1234</c>, <c>1234_5</c>, or a pending range <c>1234_[5-9%2]</c>.</param>
/// <param name="State">The raw state text, e.g. <c>RUNNING</c> or <c>CANCELLED by 0</c>; see <see cref="Phase"/>.</param>
/// <param name="Node">Node list; null when none is allocated.</param>
/// <param name="ExitCode">Exit code of the batch script; null when the source does not report it (squeue).</param>
/// <param name="Signal">Signal that ended it (0 for none); null when not reported.</param>
/// <param name="Reason">Why it is pending or how it ended; null for Slurm's "None".</param>
public sealed record SlurmJob(
    string JobId, string State, string? Node, string? Comment, int? ExitCode, int? Signal,
    DateTimeOffset? Start, DateTimeOffset? End, string? Reason)
{
    /// <summary>The Sparky task id from a <c>sparky:&lt;id&gt;</c> comment; null when the job is not Sparky's.</summary>
    public string? TaskId => SbatchScript.TaskIdFromComment(Comment);

    /// <summary>The attempt the job was submitted for, from its comment; null for a comment without one (an earlier daemon's).</summary>
    public int? Attempt => SbatchScript.AttemptFromComment(Comment);

    /// <summary>The job id without an array index (<c>1234</c> for <c>1234_5</c>).</summary>
    public string BaseJobId => SlurmJobIds.Split(JobId).BaseId;

    /// <summary>The array index (<c>5</c>) or pending range (<c>5-9%2</c>); null for a job that is not an array element.</summary>
    public string? ArrayTask => SlurmJobIds.Split(JobId).ArrayTask;

    public SlurmPhase Phase => SlurmStates.Map(State, ExitCode, Signal);

    /// <summary>Working directory (scontrol only).</summary>
    public string? WorkDir { get; init; }

    /// <summary>Stdout path with Slurm's patterns expanded (scontrol only).</summary>
    public string? StdOut { get; init; }
}

public static class SlurmJobIds
{
    /// <summary>Splits <c>1234_5</c> into (<c>1234</c>, <c>5</c>) and <c>1234_[5-9]</c> into (<c>1234</c>, <c>5-9</c>).</summary>
    public static (string BaseId, string? ArrayTask) Split(string jobId)
    {
        int us = jobId.IndexOf('_');
        if (us < 0) return (jobId, null);
        var task = jobId[(us + 1)..];
        if (task.StartsWith('[') && task.EndsWith(']')) task = task[1..^1];
        return (jobId[..us], task.Length == 0 ? null : task);
    }
}

/// <summary>What a Slurm state means to Sparky.</summary>
public enum SlurmPhase
{
    /// <summary>A state this code does not know. Never treat as success: look the job up again.</summary>
    Unknown,
    /// <summary>Waiting for resources, held, being configured, or requeued and waiting again.</summary>
    Pending,
    /// <summary>Running, or completing (processes still ending).</summary>
    Running,
    /// <summary>Stopped or suspended; will resume.</summary>
    Suspended,
    /// <summary>COMPLETED with exit code 0 and no signal.</summary>
    Succeeded,
    /// <summary>COMPLETED, but the source gave no exit code (squeue): ask sacct or scontrol before calling it a success.</summary>
    CompletedUnverified,
    Failed,
    Cancelled,
    TimedOut,
    OutOfMemory,
    /// <summary>A node failed or would not boot.</summary>
    NodeFail,
    /// <summary>Preempted by another job (may be requeued by Slurm).</summary>
    Preempted,
}

public static class SlurmStates
{
    // Long names and squeue %t short codes, from the squeue and sacct man pages (JOB STATE CODES).
    private static readonly Dictionary<string, SlurmPhase> Table = new(StringComparer.OrdinalIgnoreCase)
    {
        ["PENDING"] = SlurmPhase.Pending, ["PD"] = SlurmPhase.Pending,
        // Resources allocated but not ready (e.g. nodes booting): user code has not started.
        ["CONFIGURING"] = SlurmPhase.Pending, ["CF"] = SlurmPhase.Pending,
        ["REQUEUED"] = SlurmPhase.Pending, ["RQ"] = SlurmPhase.Pending,
        ["REQUEUE_HOLD"] = SlurmPhase.Pending, ["RH"] = SlurmPhase.Pending,
        ["REQUEUE_FED"] = SlurmPhase.Pending, ["RF"] = SlurmPhase.Pending,
        ["RESV_DEL_HOLD"] = SlurmPhase.Pending, ["RD"] = SlurmPhase.Pending,
        ["RUNNING"] = SlurmPhase.Running, ["R"] = SlurmPhase.Running,
        // Not terminal yet: the outcome is decided when completing ends.
        ["COMPLETING"] = SlurmPhase.Running, ["CG"] = SlurmPhase.Running,
        ["RESIZING"] = SlurmPhase.Running, ["RS"] = SlurmPhase.Running,
        ["SIGNALING"] = SlurmPhase.Running, ["SI"] = SlurmPhase.Running,
        ["STAGE_OUT"] = SlurmPhase.Running, ["SO"] = SlurmPhase.Running,
        ["SUSPENDED"] = SlurmPhase.Suspended, ["S"] = SlurmPhase.Suspended,
        ["STOPPED"] = SlurmPhase.Suspended, ["ST"] = SlurmPhase.Suspended,
        ["COMPLETED"] = SlurmPhase.Succeeded, ["CD"] = SlurmPhase.Succeeded, // checked against the exit code in Map
        ["FAILED"] = SlurmPhase.Failed, ["F"] = SlurmPhase.Failed,
        // Requeued held after a special exit value: it will not run again by itself.
        ["SPECIAL_EXIT"] = SlurmPhase.Failed, ["SE"] = SlurmPhase.Failed,
        ["CANCELLED"] = SlurmPhase.Cancelled, ["CA"] = SlurmPhase.Cancelled,
        ["TIMEOUT"] = SlurmPhase.TimedOut, ["TO"] = SlurmPhase.TimedOut,
        ["DEADLINE"] = SlurmPhase.TimedOut, ["DL"] = SlurmPhase.TimedOut,
        ["OUT_OF_MEMORY"] = SlurmPhase.OutOfMemory, ["OOM"] = SlurmPhase.OutOfMemory,
        ["NODE_FAIL"] = SlurmPhase.NodeFail, ["NF"] = SlurmPhase.NodeFail,
        ["BOOT_FAIL"] = SlurmPhase.NodeFail, ["BF"] = SlurmPhase.NodeFail,
        ["PREEMPTED"] = SlurmPhase.Preempted, ["PR"] = SlurmPhase.Preempted,
        // A federation sibling removed because another cluster started the job: this cluster says nothing of
        // the outcome, so the job must be looked up again.
        ["REVOKED"] = SlurmPhase.Unknown, ["RV"] = SlurmPhase.Unknown,
    };

    /// <summary>Maps a state as squeue (<c>%T</c> or <c>%t</c>), scontrol or sacct prints it.
    /// COMPLETED is <see cref="SlurmPhase.Succeeded"/> only with exit code 0 and no signal; anything unrecognised
    /// is <see cref="SlurmPhase.Unknown"/>.</summary>
    public static SlurmPhase Map(string? state, int? exitCode = null, int? signal = null)
    {
        var name = Normalize(state);
        if (name.Length == 0 || !Table.TryGetValue(name, out var phase)) return SlurmPhase.Unknown;
        if (phase != SlurmPhase.Succeeded) return phase;
        if (exitCode is null) return SlurmPhase.CompletedUnverified;
        return exitCode == 0 && (signal ?? 0) == 0 ? SlurmPhase.Succeeded : SlurmPhase.Failed;
    }

    /// <summary>True when Slurm will not change the job's state again by itself.</summary>
    public static bool IsTerminal(SlurmPhase phase) => phase is SlurmPhase.Succeeded or SlurmPhase.CompletedUnverified
        or SlurmPhase.Failed or SlurmPhase.Cancelled or SlurmPhase.TimedOut or SlurmPhase.OutOfMemory
        or SlurmPhase.NodeFail or SlurmPhase.Preempted;

    // "CANCELLED by 0" (sacct, scontrol) and "CANCELLED+" (sacct truncating) both name CANCELLED.
    private static string Normalize(string? state)
    {
        var s = (state ?? "").Trim();
        int cut = s.IndexOfAny([' ', '+', '\t']);
        return cut < 0 ? s : s[..cut];
    }
}
