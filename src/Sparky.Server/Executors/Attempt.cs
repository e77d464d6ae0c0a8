using Sparky.Core.Lifecycle;
using Sparky.Core.Tasks;
using Sparky.Execution.Processes;

namespace Sparky.Server.Executors;

/// <summary>An attempt in flight, wherever it runs (<see cref="Place"/>): a process of ours, a Slurm job, or a task on a
/// worker. The engine's loop owns it; its executor fills in <see cref="Place"/>.</summary>
internal sealed class Attempt
{
    public required TaskId Id;
    public required string Class;
    public required int N;
    /// <summary>Its task's life: its stop, timers and budgets (<see cref="TaskLife"/>), which decide what its end means.</summary>
    public required TaskLife Life;
    public required long StartedAt;
    /// <summary>Where it runs, with what only that executor knows of it.</summary>
    public required Placement Place;
    public string StdoutPath = "";
    /// <summary>The payload file a handler reads (<c>$SPARKY_PAYLOAD_FILE</c>), removed when the attempt ends.</summary>
    public string? PayloadFile;
    public bool DoneFile;
    /// <summary>The spec's declared output artifacts and working directory: hashed when it ends.</summary>
    public IReadOnlyList<DeclaredOutput>? Outputs;
    public string? Cwd;
    /// <summary>The memory it asked for (MiB), for the reason an OOM kill gives.</summary>
    public long MemoryMb;
    /// <summary>What it used, as its end reported it (a worker's cgroups; a local attempt's are read at release).</summary>
    public AttemptUsage Reported;
    /// <summary>What its executor gave back when it let go of it: usage, outputs, result.</summary>
    public Released Released;
}

/// <summary>Where an attempt runs: each executor's own facts about it, and none of another's. Each executor's
/// placement lives in its folder.</summary>
internal abstract record Placement
{
    /// <summary>An attempt that ended before any executor took it (no handler, a start that threw): nothing to signal.</summary>
    public static readonly Placement NotStarted = new NotStartedPlacement();

    private sealed record NotStartedPlacement : Placement;
}
