using Sparky.Core.Lifecycle;
using Sparky.Core.Tasks;

namespace Sparky.Server.Executors;

/// <summary>An attempt in flight, wherever it runs (<see cref="Place"/>): a process of ours, a Slurm job, or a task on a
/// worker. The engine's loop owns it; its executor fills in <see cref="Place"/>.</summary>
internal sealed class Attempt
{
    public required TaskId Id;
    public required string Class;
    public required int N;
    public required int Retries;
    public required long StartedAt;
    /// <summary>Where it runs, with what only that executor knows of it.</summary>
    public required Placement Place;
    /// <summary>Why it is being stopped, if it is (<see cref="AttemptEnd.TryStop"/>): decides how its end is recorded,
    /// whatever its exit says.</summary>
    public StopReason Stop;
    public string StdoutPath = "";
    /// <summary>The payload file a handler reads (<c>$SPARKY_PAYLOAD_FILE</c>), removed when the attempt ends.</summary>
    public string? PayloadFile;
    public DateTimeOffset? Deadline;
    public DateTimeOffset? KillAt;
    public bool DoneFile;
    /// <summary>The spec's declared output artifacts and working directory: hashed when it ends.</summary>
    public IReadOnlyList<DeclaredOutput>? Outputs;
    public string? Cwd;
    /// <summary>The memory it asked for (MiB), for the reason an OOM kill gives.</summary>
    public long MemoryMb;
}

/// <summary>Where an attempt runs: each executor's own facts about it, and none of another's. Each executor's
/// placement lives in its folder.</summary>
internal abstract record Placement
{
    /// <summary>An attempt that ended before any executor took it (no handler, a start that threw): nothing to signal.</summary>
    public static readonly Placement NotStarted = new NotStartedPlacement();

    private sealed record NotStartedPlacement : Placement;
}

/// <summary>When a timeout fires. Submit refuses one past a year, but a task stored before that check may hold any
/// double: past what a date can hold it never fires rather than throwing on every start.</summary>
internal static class Deadlines
{
    public static DateTimeOffset? After(DateTimeOffset start, double? seconds)
    {
        if (seconds is not { } s || double.IsNaN(s)) return null;
        var room = (DateTimeOffset.MaxValue - start).TotalSeconds;
        return s >= room ? DateTimeOffset.MaxValue : start.AddSeconds(Math.Max(0, s));
    }
}
