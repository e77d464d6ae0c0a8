using System.Text.Json.Nodes;

namespace Sparky.Core.Tasks;

/// <summary>What to run and under which rules. Immutable; stored as JSON beside the task.</summary>
public sealed record TaskSpec
{
    /// <summary>argv form: run directly, no shell. Exactly one of <see cref="Argv"/> and <see cref="Shell"/> is set.</summary>
    public IReadOnlyList<string>? Argv { get; init; }
    /// <summary>Shell string form: run by <c>/bin/sh -c</c>.</summary>
    public string? Shell { get; init; }
    /// <summary>A payload that names work instead of a command (any JSON value, as JSON text): neither
    /// <see cref="Argv"/> nor <see cref="Shell"/> is set, and the class's handler runs it when it starts
    /// (<c>&lt;class&gt;_handler</c> given it on stdin, or <c>&lt;class&gt;_sbatch_template</c> on Slurm).</summary>
    public string? HandlerPayload { get; init; }
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
    /// <summary>Tasks that must succeed before this one starts.</summary>
    public IReadOnlyList<TaskId> After { get; init; } = [];
    public int? ArrayIndex { get; init; }
    /// <summary>Write <c>&lt;queue_dir&gt;/done/&lt;id&gt;.json</c> when it ends: set for tasks that came through the
    /// replaced system's doors (<c>/queue/submit</c>, the drop directory), whose producers read results there.</summary>
    public bool DoneFile { get; init; }
    /// <summary>The files the task says it writes (<c>artifacts.outputs</c>): each one there when it succeeds is
    /// recorded with its size and SHA-256. Null when it declares none.</summary>
    public IReadOnlyList<DeclaredOutput>? Outputs { get; init; }
    /// <summary>Reserve a port (<c>MASTER_PORT</c>, <c>SPARKY_PORT</c>) though it has no GPU.</summary>
    public bool Port { get; init; }
    /// <summary>Nodes of a Slurm allocation, the command started once on each; null is one.</summary>
    public int? Nodes { get; init; }
    /// <summary>Whole GPUs on each node (Slurm's <c>--gpus-per-node</c>).</summary>
    public int? GpusPerNode { get; init; }
    /// <summary>Processes on each node, as the task's launcher is told (<c>SPARKY_PROCS_PER_NODE</c>); null: its GPUs.</summary>
    public int? ProcsPerNode { get; init; }
    /// <summary>Whole nodes for this task alone (sbatch <c>--exclusive</c>).</summary>
    public bool Exclusive { get; init; }

    /// <summary>Nodes it runs on: 1 unless it asks for more.</summary>
    public int NodeCount => Nodes ?? 1;
    /// <summary>Asks for anything only a Slurm allocation gives (several nodes, GPUs per node, whole nodes).</summary>
    public bool WantsAllocation => NodeCount > 1 || GpusPerNode is > 0 || Exclusive;

    /// <summary>The spec of a command (or of neither, for a handler's payload) under <paramref name="options"/>; what
    /// they leave unset is <see cref="TaskOptions.Daemon"/>'s.</summary>
    public static TaskSpec Of(IReadOnlyList<string>? argv, string? shell, TaskOptions options)
    {
        var o = options.Or(TaskOptions.Daemon);
        return new TaskSpec
        {
            Argv = argv, Shell = shell, Env = o.Env, Cwd = o.Cwd, Class = o.Class!, Cpus = o.Cpus, MemoryMb = o.MemoryMb!.Value,
            Gpus = o.Gpus!.Value, GpuMemoryMb = o.GpuMemoryMb!.Value, Retries = o.Retries!.Value, TimeoutSeconds = o.TimeoutSeconds,
            Port = o.Port ?? false, Nodes = o.Nodes, GpusPerNode = o.GpusPerNode, ProcsPerNode = o.ProcsPerNode, Exclusive = o.Exclusive ?? false,
        };
    }

    /// <summary>What the spec asks for, as named (before any class default).</summary>
    public Scheduling.ResourceRequest Asks =>
        new(Cpus is { } c and > 0 ? (int)Math.Min(int.MaxValue, Math.Ceiling(c * 1000)) : 0, MemoryMb, Gpus, GpuMemoryMb);

    /// <summary>The argv actually executed; empty for a task its class's handler runs (<see cref="HandlerPayload"/>).</summary>
    public IReadOnlyList<string> CommandLine => Argv ?? (Shell is { } shell ? ["/bin/sh", "-c", shell] : []);
}

/// <summary>One declared output artifact, as the replaced runner took it: <c>{"path", "type"?, "name"?}</c>. A
/// relative path is from the task's working directory.</summary>
public sealed record DeclaredOutput(string Path, string? Type = null, string? Name = null);

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

/// <summary>Tasks whose payload names work instead of a command, and the classes' handlers that run them.</summary>
public static class Handlers
{
    /// <summary>What a task run by no handler says (in its log, its done record, a refusal at the native API).</summary>
    public static string NoHandlerMessage(string cls) =>
        $"the payload has no command and class {cls} has no handler: set {cls}_handler (a command given the payload as JSON on stdin " +
        $"and in $SPARKY_PAYLOAD_FILE), or {cls}_sbatch_template (a batch script with {{{{payload.field}}}} placeholders, for a class that runs on Slurm), " +
        "or send payload.command";
}
