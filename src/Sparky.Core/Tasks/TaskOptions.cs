namespace Sparky.Core.Tasks;

/// <summary>
/// The options a task may set beside its command, each one unset (null) until something sets it: what an envelope's
/// payload sends, what a plan's task, workstream or <c>defaults:</c> write. <see cref="Or"/> fills what is unset from a
/// fallback, and <see cref="TaskSpec.Of"/> resolves the rest to <see cref="Daemon"/>'s defaults.
/// </summary>
public sealed record TaskOptions
{
    public string? Class { get; init; }
    /// <summary>CPUs reserved; null or 0 reserves none.</summary>
    public double? Cpus { get; init; }
    /// <summary>Memory reserved, MiB.</summary>
    public long? MemoryMb { get; init; }
    /// <summary>Whole GPUs.</summary>
    public int? Gpus { get; init; }
    /// <summary>A share of one GPU's memory, MiB.</summary>
    public long? GpuMemoryMb { get; init; }
    public int? Retries { get; init; }
    public double? TimeoutSeconds { get; init; }
    /// <summary>Variables this level sets; <see cref="Or"/> keeps the fallback's others.</summary>
    public IReadOnlyDictionary<string, string> Env { get; init; } = Empty;
    public string? Cwd { get; init; }
    /// <summary>Reserve a port for the task (<c>MASTER_PORT</c>, <c>SPARKY_PORT</c>); a task given GPUs gets one anyway.</summary>
    public bool? Port { get; init; }
    /// <summary>Nodes of a Slurm allocation the task runs on, once per node (<c>NODE_RANK</c>); 1 is one node.</summary>
    public int? Nodes { get; init; }
    /// <summary>Whole GPUs on each node of a Slurm allocation.</summary>
    public int? GpusPerNode { get; init; }
    /// <summary>Processes each node starts (<c>SPARKY_PROCS_PER_NODE</c>, <c>LOCAL_WORLD_SIZE</c>); by default its GPU count.</summary>
    public int? ProcsPerNode { get; init; }
    /// <summary>Nodes given to this task alone (sbatch <c>--exclusive</c>).</summary>
    public bool? Exclusive { get; init; }

    private static readonly IReadOnlyDictionary<string, string> Empty = new Dictionary<string, string>(StringComparer.Ordinal);

    /// <summary>Nothing set.</summary>
    public static readonly TaskOptions None = new();

    /// <summary>What a task that sets nothing gets: class <c>cpu_short</c>, nothing reserved, no retries, no timeout,
    /// no variables of its own, the daemon's working directory.</summary>
    public static readonly TaskOptions Daemon = new() { Class = Classes.CpuShort, MemoryMb = 0, Gpus = 0, GpuMemoryMb = 0, Retries = 0 };

    /// <summary>
    /// These options, with every unset one taken from <paramref name="fallback"/>: a task's own over its workstream's,
    /// over the plan's defaults (<c>task.Or(workstream).Or(defaults)</c>). The variables are merged: the fallback's,
    /// then these over them, in that order (keys new here come after the fallback's).
    /// </summary>
    public TaskOptions Or(TaskOptions fallback)
    {
        IReadOnlyDictionary<string, string> env;
        if (fallback.Env.Count == 0) env = Env;
        else if (Env.Count == 0) env = fallback.Env;
        else
        {
            var merged = new Dictionary<string, string>(fallback.Env, StringComparer.Ordinal);
            foreach (var (k, v) in Env) merged[k] = v;
            env = merged;
        }
        return new TaskOptions
        {
            Class = Class ?? fallback.Class,
            Cpus = Cpus ?? fallback.Cpus,
            MemoryMb = MemoryMb ?? fallback.MemoryMb,
            Gpus = Gpus ?? fallback.Gpus,
            GpuMemoryMb = GpuMemoryMb ?? fallback.GpuMemoryMb,
            Retries = Retries ?? fallback.Retries,
            TimeoutSeconds = TimeoutSeconds ?? fallback.TimeoutSeconds,
            Env = env,
            Cwd = Cwd ?? fallback.Cwd,
            Port = Port ?? fallback.Port,
            Nodes = Nodes ?? fallback.Nodes,
            GpusPerNode = GpusPerNode ?? fallback.GpusPerNode,
            ProcsPerNode = ProcsPerNode ?? fallback.ProcsPerNode,
            Exclusive = Exclusive ?? fallback.Exclusive,
        };
    }
}
