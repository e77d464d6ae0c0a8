using System.Text.Json.Nodes;

namespace Sparky.Core.Tasks;

/// <summary>What to run and under which rules. Immutable; stored as JSON beside the task.</summary>
public sealed record TaskSpec
{
    /// <summary>argv form: run directly, no shell. Exactly one of <see cref="Argv"/> and <see cref="Shell"/> is set.</summary>
    public IReadOnlyList<string>? Argv { get; init; }
    /// <summary>Shell string form: run by <c>/bin/sh -c</c>.</summary>
    public string? Shell { get; init; }
    public IReadOnlyDictionary<string, string> Env { get; init; } = new Dictionary<string, string>();
    public string? Cwd { get; init; }
    public string Class { get; init; } = Classes.CpuShort;
    public string? Name { get; init; }
    /// <summary>CPUs reserved; null or 0 reserves none (the class limit governs the task).</summary>
    public double? Cpus { get; init; }
    /// <summary>Memory reserved, MiB; 0 reserves none.</summary>
    public long MemoryMb { get; init; }
    /// <summary>Whole GPUs, each given to this task alone.</summary>
    public int Gpus { get; init; }
    /// <summary>A share of one GPU's memory, MiB: several such tasks may run on one GPU.</summary>
    public long GpuMemoryMb { get; init; }
    public int Retries { get; init; }
    public double? TimeoutSeconds { get; init; }
    public IReadOnlyList<string> After { get; init; } = [];
    public int? ArrayIndex { get; init; }
    /// <summary>Write <c>&lt;data&gt;/queue/done/&lt;id&gt;.json</c> when it ends: set for tasks that came through the
    /// replaced system's doors (<c>/queue/submit</c>, the drop directory), whose producers read results there.</summary>
    public bool DoneFile { get; init; }

    /// <summary>What the spec asks for, as named (before any class default).</summary>
    public Scheduling.ResourceRequest Asks =>
        new(Cpus is { } c and > 0 ? (int)Math.Min(int.MaxValue, Math.Ceiling(c * 1000)) : 0, MemoryMb, Gpus, GpuMemoryMb);

    /// <summary>The argv actually executed.</summary>
    public IReadOnlyList<string> CommandLine => Argv ?? ["/bin/sh", "-c", Shell!];
}

/// <summary>A submission as accepted: an optional client id, the spec, and the envelope as sent
/// (unknown fields included, so nothing the client sent is dropped).</summary>
public sealed record Submission(TaskId? Id, TaskSpec Spec, JsonObject Envelope, ArrayRange? Array);

public static class Classes
{
    public const string CpuShort = "cpu_short";
    public const string CpuLong = "cpu_long";
    public const string Gpu = "gpu";
    public const string GpuSlurm = "gpu_slurm";
}
