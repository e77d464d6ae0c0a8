using System.Collections.Frozen;
using System.Globalization;
using Sparky.Core.Tasks;

namespace Sparky.Core.Config;

public enum SettingSource { Flag, Env, File, Preset, Default }

/// <summary>
/// One setting the user can set: by flag, by <c>SPARKY_&lt;NAME&gt;</c> (or an alias), in sparky.toml, by the
/// mode's preset, or left at its default.
/// </summary>
public sealed record SettingDef(string Name, string Help, Func<SettingContext, string> Default, Func<string, string?> Validate, params string[] EnvAliases)
{
    public string EnvName => "SPARKY_" + Name.ToUpperInvariant();
    /// <summary>How a value read from one of <see cref="EnvAliases"/> (the replaced system's variables) is read: its
    /// spellings mapped to Sparky's. Null: as it is.</summary>
    public Func<string, string>? FromAlias { get; init; }
    /// <summary>Values that a mode sets instead of the default, by mode name.</summary>
    public IReadOnlyDictionary<string, Func<SettingContext, string>> Presets { get; init; } = new Dictionary<string, Func<SettingContext, string>>();
}

/// <summary>
/// What defaults depend on: facts about the machine, passed in so resolution stays pure.
/// <paramref name="DetectMode"/> is asked only for <c>mode = auto</c> (it may probe Slurm and GPUs) and
/// answers the mode with a short reason.
/// </summary>
public sealed record SettingContext(int Cores, string DefaultDataDir, Func<(string Mode, string Why)>? DetectMode = null);

public static class Modes
{
    public const string Laptop = "laptop", Workstation = "workstation", Cluster = "cluster", Auto = "auto";
    public static readonly string[] All = [Laptop, Workstation, Cluster, Auto];

    /// <summary>
    /// DSPY_MODE as the replaced system's files set it: its three modes are Sparky's (any case); the scripts that wrote
    /// its <c>.env</c> also wrote <c>development</c> and <c>production</c> (and its plan named <c>cloud</c>), which its
    /// code never read: a development box is a laptop, production and cloud hardware is found out (<c>auto</c>).
    /// Anything else is left as it is, and refused with the modes allowed.
    /// </summary>
    public static string FromDspy(string value) => value.Trim().ToLowerInvariant() switch
    {
        "development" or "dev" or "local" => Laptop,
        "production" or "prod" or "cloud" => Auto,
        var v when All.Contains(v) => v,
        _ => value,
    };

    /// <summary>auto's rule: cluster where Slurm answers, workstation where a GPU is found, else laptop.</summary>
    public static (string Mode, string Why) Pick(bool slurmAnswers, int gpus) =>
        slurmAnswers ? (Cluster, "Slurm answers") : gpus > 0 ? (Workstation, $"{gpus} GPU(s) found") : (Laptop, "no Slurm, no GPU");
}

/// <summary>What the <c>dashboard</c> setting allows.</summary>
public enum DashboardMode { On, ReadOnly, Off }

public static class DashboardModes
{
    public const string On = "on", ReadOnly = "read-only", Off = "off";
    public static readonly string[] All = [On, ReadOnly, Off];

    /// <summary>Reads a value its validator accepted.</summary>
    public static DashboardMode Parse(string v) => v switch
    {
        On => DashboardMode.On,
        ReadOnly => DashboardMode.ReadOnly,
        Off => DashboardMode.Off,
        _ => throw new ArgumentException($"'{v}' is no dashboard mode", nameof(v)),
    };

    public static string Name(this DashboardMode m) => m switch
    {
        DashboardMode.ReadOnly => ReadOnly,
        DashboardMode.Off => Off,
        _ => On,
    };
}

public sealed record ResolvedSetting(string Name, string Value, SettingSource Source, string Origin);

/// <summary>The embedding service's settings (<c>[embeddings]</c> in sparky.toml; SPEC §8). <see cref="Model"/> empty: the
/// daemon serves no embeddings (<c>sparky embed serve</c> then uses <c>minilm</c>).</summary>
public sealed record EmbeddingSettings(string Model, string Device, int Threads, int MaxBatchTokens, int MaxBatchSize, TimeSpan MaxBatchWait,
    int MaxConcurrentRequests, bool Truncate);

/// <summary>A class's limiter: algorithm name and the range [Min, Max] its limit moves in.</summary>
public sealed record ClassLimitSettings(string Limiter, int Min, int Max);

/// <summary>
/// The settings in force, each with where it came from, and the typed values they mean. Immutable: every typed value
/// is read once, when <see cref="Resolve"/> builds the config, so a property read (the engine reads some on every loop
/// pass) is a field read that parses nothing and returns the same instance each time.
/// </summary>
public sealed class SparkyConfig
{
    public IReadOnlyDictionary<string, ResolvedSetting> Settings { get; }

    /// <summary>Reads each typed value from <paramref name="settings"/>. Built only from settings that passed their
    /// validators, and each reading below parses with its validator's own rules, so none can fail here.</summary>
    private SparkyConfig(Dictionary<string, ResolvedSetting> settings)
    {
        Settings = settings.AsReadOnly();
        string V(string name) => settings[name].Value;

        DataDir = V("data");
        QueueDir = V("queue_dir");
        DropSettle = ReadDuration(V("drop_settle"));
        EnableGpu = IsTrue(V("enable_gpu"));
        GpuMemoryDefaultMb = MemorySizes.TryParseMb(V("gpu_memory_default"), out var mb) ? mb : 0; // empty: a whole GPU
        LogLevel = LogLevels[V("log_level").Trim().ToLowerInvariant()];
        Http = V("http");
        Zmq = V("zmq");
        ZmqEvents = V("zmq_events");
        ZmqCurve = V("zmq_curve");
        ZmqCurveKey = NullIfEmpty(V("zmq_curve_key"));
        Token = NullIfEmpty(V("token"));
        Dashboard = DashboardModes.Parse(V("dashboard"));
        MaxQueued = ReadLong(V("max_queued"));
        MaxBodyBytes = ReadLong(V("max_body_mb")) * 1024 * 1024;
        MaxConnections = ReadInt(V("max_connections"));
        RetryBaseSeconds = ReadDouble(V("retry_base_seconds"));
        KillGraceSeconds = ReadDouble(V("kill_grace_seconds"));
        Containment = V("containment");
        EnforceMemory = IsTrue(V("enforce_memory"));
        ReattachClasses = List(V("reattach_classes")).ToFrozenSet(StringComparer.Ordinal);
        Mode = V("mode");
        MaxConcurrency = ReadInt(V("max_concurrency"));
        VisibleGpus = NullIfEmpty(V("visible_gpus"));
        NvmlLibrary = NullIfEmpty(V("nvml_library"));
        NvidiaSmi = NullIfEmpty(V("nvidia_smi"));

        SlurmClasses = (IsTrue(V("enable_slurm")) ? new[] { Tasks.Classes.GpuSlurm, Tasks.Classes.Gpu } : new[] { Tasks.Classes.GpuSlurm })
            .ToFrozenSet(StringComparer.Ordinal);
        PilotClasses = List(V("pilot_classes")).ToFrozenSet(StringComparer.Ordinal);
        WorkerClasses = List(V("worker_classes")).Concat(PilotClasses).ToFrozenSet(StringComparer.Ordinal);
        BenchNoopClasses = List(V("bench_noop_classes")).ToFrozenSet(StringComparer.Ordinal);
        PilotMaxWorkers = ReadInt(V("pilot_max_workers"));
        PilotSlots = ReadInt(V("pilot_slots"));
        PilotPrefetch = ReadInt(V("pilot_prefetch"));
        PilotIdleTimeout = ReadDuration(V("pilot_idle_timeout"));
        PilotWalltime = ReadDuration(V("pilot_walltime"));
        var drain = ReadDuration(V("pilot_drain"));
        PilotDrain = settings["pilot_drain"].Source == SettingSource.Default && drain > PilotWalltime / 2 ? PilotWalltime / 2 : drain;
        PilotConnect = NullIfEmpty(V("pilot_connect"));
        PilotCommand = NullIfEmpty(V("pilot_command"));
        Embeddings = new EmbeddingSettings(V("embeddings_model").Trim(), V("embeddings_device"), ReadInt(V("embeddings_threads")),
            ReadInt(V("embeddings_max_batch_tokens")), ReadInt(V("embeddings_max_batch_size")), ReadWait(V("embeddings_max_batch_wait")),
            ReadInt(V("embeddings_max_concurrent_requests")), IsTrue(V("embeddings_truncate")));
        WorkerHeartbeat = ReadDuration(V("worker_heartbeat"));
        WorkerTimeout = ReadDuration(V("worker_timeout"));

        SlurmPartition = NullIfEmpty(V("slurm_partition"));
        SlurmAccount = NullIfEmpty(V("slurm_account"));
        SlurmPollInterval = TimeSpan.FromSeconds(ReadDouble(V("slurm_poll_seconds")));
        SlurmCommandTimeout = TimeSpan.FromSeconds(ReadDouble(V("slurm_command_timeout_seconds")));
        SlurmSubmitWait = ReadDuration(V("slurm_submit_wait"));

        // Keyed by what comes before the suffix: a class, or "pilot" (pilot_sbatch_options).
        const string OptionsSuffix = "_sbatch_options";
        _sbatchOptions = settings.Values.Where(s => s.Name.EndsWith(OptionsSuffix, StringComparison.Ordinal)).ToFrozenDictionary(
            s => s.Name[..^OptionsSuffix.Length], s => ReadOnly(s.Value.Split(' ', StringSplitOptions.RemoveEmptyEntries)), StringComparer.Ordinal);
        _handlers = Classes.Select(c => (Class: c, CommandWords.Split(V(c + "_handler")).Words))
            .Where(h => h.Words.Count > 0)
            .ToFrozenDictionary(h => h.Class, h => ReadOnly([.. h.Words]), StringComparer.Ordinal);
        // A template applies only where the class runs on Slurm, which enable_slurm decided above.
        _sbatchTemplates = SlurmClasses.Select(c => (Class: c, Path: settings.TryGetValue(c + "_sbatch_template", out var s) ? s.Value.Trim() : ""))
            .Where(t => t.Path.Length > 0)
            .ToFrozenDictionary(t => t.Class, t => t.Path, StringComparer.Ordinal);

        _classLimits = Classes.ToFrozenDictionary(c => c, c =>
        {
            int min = ReadInt(V(c + "_min_slots"));
            return new ClassLimitSettings(V(c + "_limiter"), min, Math.Max(min, ReadInt(V(c + "_slots"))));
        }, StringComparer.Ordinal);
        // A dictionary (not frozen) under the read-only view: it keeps the order of Classes, which the scheduler lists its classes in.
        ClassLimits = Classes.ToDictionary(c => c, c => _classLimits[c].Max, StringComparer.Ordinal).AsReadOnly();
    }

    private readonly FrozenDictionary<string, IReadOnlyList<string>> _sbatchOptions;
    private readonly FrozenDictionary<string, IReadOnlyList<string>> _handlers;
    private readonly FrozenDictionary<string, string> _sbatchTemplates;
    private readonly FrozenDictionary<string, ClassLimitSettings> _classLimits;

    public string this[string name] => Settings[name].Value;

    public string DataDir { get; }
    /// <summary>Where pending/, done/, accepted/ and rejected/ are (relative: to the daemon's working directory).</summary>
    public string QueueDir { get; }
    /// <summary>How long a file written in place that does not parse must stay unchanged, with no writer, before it is rejected.</summary>
    public TimeSpan DropSettle { get; }
    public bool EnableGpu { get; }
    /// <summary>The share of one GPU (MiB) a gpu task that asks for none gets; 0: a whole GPU.</summary>
    public long GpuMemoryDefaultMb { get; }
    /// <summary>The least severe message the daemon writes (<c>log_level</c>).</summary>
    public Microsoft.Extensions.Logging.LogLevel LogLevel { get; }
    public string Http { get; }
    /// <summary>The ZeroMQ command (ROUTER) and event (PUB) endpoints, tcp://HOST:PORT.</summary>
    public string Zmq { get; }
    public string ZmqEvents { get; }
    /// <summary>CURVE on the ZeroMQ sockets: on, off, or auto (on for an endpoint off loopback).</summary>
    public string ZmqCurve { get; }
    /// <summary>The server's secret key file; empty: <c>&lt;data&gt;/sparky.key</c> where it exists.</summary>
    public string? ZmqCurveKey { get; }
    public string? Token { get; }
    /// <summary>The web dashboard at <c>/</c>: on, read-only (no cancel or retry from it), or off (404).</summary>
    public DashboardMode Dashboard { get; }
    public long MaxQueued { get; }
    public long MaxBodyBytes { get; }
    public int MaxConnections { get; }
    public double RetryBaseSeconds { get; }
    public double KillGraceSeconds { get; }

    /// <summary>auto: a cgroup per attempt where the host allows; marker: processes found by their environment marker.</summary>
    public string Containment { get; }
    public bool EnforceMemory { get; }

    /// <summary>Classes whose attempts run under a small shell shim that records the exit code in a file,
    /// so a task still running when the daemon dies can be re-attached and its true result kept. Short tasks
    /// skip the shim (it costs one more exec) and are retried instead.</summary>
    public IReadOnlySet<string> ReattachClasses { get; }

    /// <summary>The mode in force: laptop, workstation or cluster (auto is resolved at load).</summary>
    public string Mode { get; }

    /// <summary>Most tasks running at once across all classes; 0: only the class limits bound them.</summary>
    public int MaxConcurrency { get; }
    public string? VisibleGpus { get; }
    public string? NvmlLibrary { get; }
    public string? NvidiaSmi { get; }

    /// <summary>Classes whose tasks run as Slurm jobs: <c>gpu_slurm</c> always, <c>gpu</c> where <c>enable_slurm</c> is on
    /// (its cluster mode preset).</summary>
    public IReadOnlySet<string> SlurmClasses { get; }

    /// <summary>Classes whose tasks run on workers over ZeroMQ (<c>sparky worker --connect</c>): those of
    /// <c>worker_classes</c> and of <c>pilot_classes</c>.</summary>
    public IReadOnlySet<string> WorkerClasses { get; }
    /// <summary>Worker classes for which Sparky itself starts workers, as pilot jobs on Slurm.</summary>
    public IReadOnlySet<string> PilotClasses { get; }
    /// <summary>For benchmarks only (<c>bench/overhead</c>): classes whose tasks run nothing; every attempt ends at once with
    /// exit 0 through the same lifecycle, store writes and events as a real one, so the daemon's own cost is measured.</summary>
    public IReadOnlySet<string> BenchNoopClasses { get; }
    public int PilotMaxWorkers { get; }
    public int PilotSlots { get; }
    public int PilotPrefetch { get; }
    public TimeSpan PilotIdleTimeout { get; }
    public TimeSpan PilotWalltime { get; }
    /// <summary>Left at its default, the drain is at most half the walltime, so a short walltime needs no drain setting.</summary>
    public TimeSpan PilotDrain { get; }
    public string? PilotConnect { get; }
    public string? PilotCommand { get; }
    public TimeSpan WorkerHeartbeat { get; }
    public EmbeddingSettings Embeddings { get; }
    public TimeSpan WorkerTimeout { get; }

    public string? SlurmPartition { get; }
    public string? SlurmAccount { get; }
    public TimeSpan SlurmPollInterval { get; }
    public TimeSpan SlurmCommandTimeout { get; }

    /// <summary>Extra sbatch options for a class, from <c>&lt;class&gt;_sbatch_options</c>.</summary>
    public IReadOnlyList<string> SbatchOptionsFor(string cls) => _sbatchOptions.TryGetValue(cls, out var o) ? o : [];

    /// <summary>The argv of <c>&lt;class&gt;_handler</c>, which runs the class's tasks whose payload names work instead of a
    /// command; null where none is set. The value was checked at load (<see cref="CommandWords"/>).</summary>
    public IReadOnlyList<string>? HandlerFor(string cls) => _handlers.TryGetValue(cls, out var h) ? h : null;

    /// <summary>The file of <c>&lt;class&gt;_sbatch_template</c>, where the class runs on Slurm and one is set.</summary>
    public string? SbatchTemplateFor(string cls) => _sbatchTemplates.TryGetValue(cls, out var t) ? t : null;

    /// <summary>How long <c>POST /queue/submit</c> waits for a gpu_slurm task's job id.</summary>
    public TimeSpan SlurmSubmitWait { get; }

    /// <summary>Each class's concurrency: the ceiling (<c>&lt;class&gt;_slots</c>), where it is a fixed limit.</summary>
    public IReadOnlyDictionary<string, int> ClassLimits { get; }

    /// <summary>A class's limiter: its algorithm and the range it moves in.</summary>
    public ClassLimitSettings ClassLimit(string cls) => _classLimits[cls];

    // How each kind of value is read: with the rules its validator accepted it by (Long, Double, Duration below).
    private static IEnumerable<string> List(string v) => v.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
    private static long ReadLong(string v) => long.Parse(v, NumberStyles.Integer, CultureInfo.InvariantCulture);
    // Every integer setting read as an int is bounded well inside int's range by its validator.
    private static int ReadInt(string v) => checked((int)ReadLong(v));
    private static double ReadDouble(string v) => double.Parse(v, NumberStyles.Float, CultureInfo.InvariantCulture);
    // "0" is a valid duration where the minimum is 0, but Durations reads only positive ones.
    private static TimeSpan ReadDuration(string v) =>
        v.Trim() == "0" ? TimeSpan.Zero
        : Tasks.Durations.TryParseSeconds(v, out var s) ? TimeSpan.FromSeconds(s)
        : throw new InvalidOperationException($"'{v}' passed the duration check but is no duration");
    private static string? NullIfEmpty(string v) => v.Length > 0 ? v : null;
    // A short wait is written in milliseconds ("5ms"), or as any duration.
    private static TimeSpan ReadWait(string v) =>
        v.Trim().EndsWith("ms", StringComparison.Ordinal) ? TimeSpan.FromMilliseconds(ReadDouble(v.Trim()[..^2])) : ReadDuration(v);
    // Shared by every reader, so wrapped: none can change it for the others.
    private static IReadOnlyList<string> ReadOnly(string[] words) => Array.AsReadOnly(words);

    public static readonly IReadOnlyList<string> Classes = [Tasks.Classes.CpuShort, Tasks.Classes.CpuLong, Tasks.Classes.Gpu, Tasks.Classes.GpuSlurm];

    /// <summary>The names a limiter setting accepts (the algorithms live in Sparky.Core.Limiting).</summary>
    public static IReadOnlyList<string> LimiterNames => Limiting.Limiters.Names;

    public static readonly IReadOnlyList<SettingDef> Catalog =
    [
        // First: every other setting's preset depends on it.
        new("mode", "laptop, workstation, cluster, or auto (cluster where Slurm answers, workstation where a GPU is found, else laptop)",
            _ => Modes.Laptop, OneOf(Modes.All), "DSPY_MODE") { FromAlias = Modes.FromDspy },
        new("data", "data directory: SQLite store, logs, and the queue directory unless queue_dir says otherwise", c => c.DefaultDataDir, NonEmpty),
        // The replaced system's ENV_QUEUE_DIR named this directory itself (default logs/env_queue), pending/ and done/ in it.
        new("queue_dir", "the queue directory of the replaced system's clients: pending/ (the drop directory), done/, accepted/, rejected/ sit directly in it; " +
            "relative to the daemon's working directory; default <data>/queue", _ => "", NoNewline, "ENV_QUEUE_DIR"),
        new("drop_settle", "a file written in place in pending/ that is not valid JSON is read again until no writer holds it open and it has " +
            "not changed for this long, then rejected (a file renamed in is rejected at once)", _ => "2", Duration(0.05, 3600)),
        new("http", "HTTP listen address HOST:PORT", _ => "127.0.0.1:9097", HostPort),
        new("zmq", "ZeroMQ command socket (ROUTER) tcp://HOST:PORT; port 0 picks a free one", _ => "tcp://127.0.0.1:5555", ZmqEndpoint),
        new("zmq_events", "ZeroMQ event socket (PUB) tcp://HOST:PORT; port 0 picks a free one", _ => "tcp://127.0.0.1:5556", ZmqEndpoint),
        new("zmq_curve", "CURVE encryption on the ZeroMQ sockets: on, off, or auto (on for an endpoint off loopback, which requires it)",
            _ => "auto", OneOf(["auto", "on", "off"])),
        new("zmq_curve_key", "the daemon's CURVE secret key file (sparky keys writes one); empty: <data>/sparky.key if it exists", _ => "", NoNewline),
        new("zmq_client_keys", "allow-list of client public keys on the CURVE command socket (sparky keys --client NAME adds one); empty: <data>/clients.keys", _ => "", NoNewline),
        new("zmq_worker_keys", "allow-list of worker public keys on the CURVE command socket (sparky keys --worker NAME adds one); empty: <data>/workers.keys", _ => "", NoNewline),
        new("token", "bearer token, required on any non-loopback address", _ => "", _ => null),
        new("dashboard", "the web dashboard at /: on, read-only (it shows everything and changes nothing: no cancel or retry, and the daemon refuses " +
            "the dashboard's state-changing requests with 403), or off (/ answers 404)", _ => DashboardModes.On, OneOf(DashboardModes.All)),
        new("max_queued", "queued tasks before submissions get 429", _ => "1000000", Long(1, long.MaxValue)),
        new("max_body_mb", "largest HTTP request body, in MiB", _ => "16", Long(1, 1024)),
        new("max_connections", "open HTTP connections at once; past it a new one gets 503 and is closed", _ => "1024", Long(1, 1_000_000)),
        new("max_concurrency", "most tasks running at once across all classes; 0: only the class limits bound them",
            _ => "0", Long(0, 1_000_000), "DSPY_MAX_CONCURRENCY"),
        .. ClassSettings(Tasks.Classes.CpuShort, "short CPU tasks",
            slots: c => Cores(c), min: c => Cores(c, 0.5), limiter: "aimd",
            presets: new() { [Modes.Workstation] = c => Cores(c), [Modes.Cluster] = c => Cores(c, 2) }),
        .. ClassSettings(Tasks.Classes.CpuLong, "long CPU tasks",
            slots: _ => "1", min: _ => "1", limiter: "aimd",
            presets: new() { [Modes.Workstation] = c => Cores(c, 0.25), [Modes.Cluster] = c => Cores(c, 0.5) }),
        // GPU tasks reserve their GPUs, so the GPU pool bounds them; the slots only cap them further.
        .. ClassSettings(Tasks.Classes.Gpu, "GPU tasks (each holds its GPUs, or a share of one)",
            slots: _ => "8", min: _ => "1", limiter: "aimd",
            presets: new() { [Modes.Workstation] = _ => "64", [Modes.Cluster] = _ => "256" }),
        // Slurm queues and schedules these jobs itself: the slots bound only how many Sparky hands it at once, and the
        // replaced orchestrator handed it every one at once (its clients expect a job id in the submit's answer).
        .. ClassSettings(Tasks.Classes.GpuSlurm, "gpu_slurm tasks",
            slots: _ => "64", min: _ => "1", limiter: "fixed",
            presets: new() { [Modes.Cluster] = _ => "256" }),
        new("enable_slurm", "gpu tasks run as Slurm jobs (gpu_slurm tasks always do); true in cluster mode",
            _ => "false", Bool, "DSPY_ENABLE_SLURM") { Presets = new Dictionary<string, Func<SettingContext, string>> { [Modes.Cluster] = _ => "true" } },
        new("slurm_partition", "Slurm partition for Slurm-bound classes; empty: the cluster's default", _ => "", NoNewline, "DSPY_SLURM_PARTITION"),
        new("slurm_account", "Slurm account to charge; empty: the user's default", _ => "", NoNewline),
        new("slurm_poll_seconds", "how often one batched squeue asks for the state of every job", _ => "2", Double(0.05, 600)),
        new("slurm_command_timeout_seconds", "how long an sbatch, squeue or scancel may take before it counts as failed", _ => "30", Double(1, 600)),
        new("gpu_sbatch_options", "extra sbatch options for gpu tasks on Slurm, such as --qos=high --constraint=a100", _ => "", SbatchOptions),
        new("gpu_slurm_sbatch_options", "extra sbatch options for gpu_slurm tasks", _ => "", SbatchOptions),
        // Payloads that name work instead of a command (the replaced system's clients send such): run by their class's handler.
        .. Classes.Select(c => new SettingDef(c + "_handler",
            $"the command that runs a {c} task whose payload names work instead of a command: one line of words (quotes as in a shell, no shell features), given the payload as JSON on stdin and in $SPARKY_PAYLOAD_FILE; empty: none",
            _ => "", CommandWords.Problem)),
        new("gpu_sbatch_template", "a batch script for gpu tasks on Slurm (cluster mode) whose payload names work: {{payload.field}} placeholders, each value checked; wins over gpu_handler there; empty: none", _ => "", NoNewline),
        new("gpu_slurm_sbatch_template", "a batch script for gpu_slurm tasks whose payload names work: {{payload.field}} placeholders, each value checked; wins over gpu_slurm_handler; empty: none", _ => "", NoNewline),
        new("slurm_submit_wait", "how long POST /queue/submit waits for sbatch to take a gpu_slurm task, to answer with its job id (past it: status queued)", _ => "10", Duration(0, 600)),
        new("worker_classes", "classes whose tasks go to workers (sparky worker --connect) instead of running here; comma-separated",
            _ => "", ClassList),
        new("pilot_classes", "classes whose tasks go to pilot workers that Sparky starts as Slurm jobs when work is queued; comma-separated",
            _ => "", ClassList),
        new("bench_noop_classes", "FOR BENCHMARKS ONLY (bench/overhead): classes whose tasks run NOTHING: each attempt ends at once with exit 0, " +
            "recorded and announced as a real one, so the daemon's own cost per task is measured apart from the processes'; the daemon warns at start; comma-separated",
            _ => "", ClassList),
        new("pilot_max_workers", "most pilot jobs at once (pilot.max_workers in sparky.toml)", _ => "4", Long(0, 100_000)),
        new("pilot_slots", "tasks one pilot runs at once (it asks Slurm for as many CPUs)", _ => "4", Long(1, 4096)),
        new("pilot_prefetch", "tasks a pilot holds beyond its slots so the next starts without a round trip; for many short tasks (a held task waits behind a long one)",
            _ => "0", Long(0, 100_000)),
        new("pilot_idle_timeout", "a pilot with nothing to do for this long ends its job, such as 60 or 5m", _ => "60", Duration(1, 7 * 86400)),
        new("pilot_walltime", "a pilot job's time limit (sbatch --time), such as 1h", _ => "1h", Duration(10, 30 * 86400)),
        new("pilot_drain", "how long before its walltime a pilot stops taking tasks, so the ones it runs can finish (left unset: at most half the walltime)", _ => "2m", Duration(0, 30 * 86400)),
        new("pilot_connect", "the command endpoint pilots connect to; empty: the one the daemon bound (0.0.0.0 becomes this host's name)",
            _ => "", v => v.Length == 0 ? null : ZmqEndpoint(v)),
        new("pilot_command", "how a pilot job starts sparky, such as /opt/sparky/bin/sparky; empty: this daemon's own executable", _ => "", NoNewline),
        new("pilot_sbatch_options", "extra sbatch options for pilot jobs", _ => "", SbatchOptions),
        new("worker_heartbeat", "how often workers say they are alive", _ => "1", Duration(0.05, 3600)),
        new("worker_timeout", "a worker not heard from for this long is lost and its tasks are queued again", _ => "10", Duration(0.2, 86400)),
        new("visible_gpus", "GPUs Sparky may hand out: indices and/or UUIDs, comma-separated; empty: all found", _ => "", _ => null),
        new("enable_gpu", "hand this machine's GPUs out to tasks; false: none is (a task that needs one here is refused; gpu tasks sent to Slurm still go)",
            _ => "true", Bool, "DSPY_ENABLE_GPU"),
        new("gpu_memory_default", "a gpu task that asks for no GPU nor a share gets a share of one GPU of this much memory, such as 20G " +
            "(SPARKY_GPU_MEMORY_MB tells it; a GPU smaller than this is given whole); empty: one whole GPU", _ => "", GpuMemory, "DSPY_GPU_MEMORY_LIMIT"),
        new("nvml_library", "NVML library tried first for GPU discovery; empty: skip NVML", _ => "libnvidia-ml.so.1", _ => null),
        new("nvidia_smi", "nvidia-smi used where NVML is missing; empty: skip it", _ => "nvidia-smi", _ => null),
        new("retry_base_seconds", "first retry delay; doubles each attempt, with jitter", _ => "0.5", Double(0, 3600)),
        new("kill_grace_seconds", "time between SIGTERM and SIGKILL on cancel or timeout", _ => "5", Double(0, 3600)),
        new("reattach_classes", "classes whose running tasks survive a daemon restart", _ => "cpu_long,gpu,gpu_slurm", _ => null),
        new("log_level", "the least severe message the daemon writes to stderr: trace, debug (and each file the drop directory waits on, and the HTTP server's " +
            "requests), information, warning, error, critical or none", _ => "information", LogLevelName, "DSPY_LOG_LEVEL"),
        new("enable_demo", "read from the replaced system's .env files, where it started demo tasks in its orchestrator; Sparky's daemon never runs demo tasks " +
            "(sparky demo is a verb of its own): shown here, no effect", _ => "false", Bool, "DSPY_ENABLE_DEMO"),
        new("containment", "how each attempt's processes are kept together so cancel, timeout and recovery end all of them: auto (a cgroup v2 per attempt where the host allows, else marker), marker (every process carrying the attempt's environment marker)",
            _ => "auto", OneOf(["auto", "marker"])),
        // The embedding service (SPEC §8): in the daemon where embeddings_model is set, and in `sparky embed serve`.
        new("embeddings_model", "the daemon serves POST /v1/embeddings and GET /v1/models with this model: a model directory (model.onnx, vocab.txt or tokenizer.json, " +
            "sentence-transformers' settings files) or minilm (all-MiniLM-L6-v2 from the model cache, fetched there if missing); empty: none ([embeddings] model in sparky.toml)",
            _ => "", NoNewline),
        new("embeddings_device", "where the model runs: auto (CUDA where an NVIDIA GPU and ONNX Runtime's CUDA provider are both here, else the CPU), cpu or cuda",
            _ => "auto", OneOf(["auto", "cpu", "cuda"])),
        new("embeddings_threads", "threads one call of the model may use; on a CPU as many calls run at once as this divides into the cores; 0: one thread a call, one call a core, up to 8 calls at once", _ => "0", Long(0, 1024)),
        new("embeddings_max_batch_tokens", "most tokens in one batch (inputs × the longest one's tokens, padding included); on a CPU, batches past a few thousand tokens are slower per input, not faster", _ => "2048", Long(1, 1_000_000)),
        new("embeddings_max_batch_size", "most inputs in one batch; 1: batching off", _ => "16", Long(1, 4096)),
        new("embeddings_max_batch_wait", "how long the first input waiting is held for others to join its batch, such as 5ms", _ => "5ms", MillisOrDuration(0, 10)),
        new("embeddings_max_concurrent_requests", "embedding requests queued or running at once; past it a request gets 429 with Retry-After", _ => "512", Long(1, 1_000_000)),
        new("embeddings_truncate", "an input over the model's token limit is cut to it (true) or refused with 400 (false, as OpenAI does)", _ => "false", Bool),
        new("enforce_memory", "hold a local task that asks for memory (--mem, resources.memory_mb) to it, as Slurm does: past it the kernel's OOM killer ends the task, which fails with reason out_of_memory " +
            "(a cgroup v2 memory.max where the memory controller is delegated, else a cgroup v1 memory cgroup; never with containment = marker)", _ => "true", Bool),
    ];

    /// <summary>Resolves every setting: flag &gt; environment &gt; file &gt; default. Returns every error at once.</summary>
    public static (SparkyConfig? Config, IReadOnlyList<string> Errors) Resolve(
        IReadOnlyDictionary<string, string> flags,
        IReadOnlyDictionary<string, string> env,
        IReadOnlyDictionary<string, string> file,
        string fileOrigin,
        SettingContext context)
    {
        var errors = new List<string>();
        var resolved = new Dictionary<string, ResolvedSetting>(StringComparer.Ordinal);
        foreach (var key in file.Keys.Where(k => Catalog.All(d => d.Name != k)))
            errors.Add($"{fileOrigin}: unknown setting '{key}' (known: {string.Join(", ", Catalog.Select(d => d.Name))})");

        // The mode comes first: its preset fills in what the user left unset.
        var mode = Pick(Catalog[0], null, null);
        resolved[mode.Name] = mode;
        string? preset = null, presetOrigin = null;
        if (mode.Value == Modes.Auto)
        {
            // Shown as what auto picked, and why: the mode in force is never "auto".
            var (picked, why) = context.DetectMode?.Invoke() ?? (Modes.Laptop, "nothing probed");
            mode = mode with { Value = picked, Origin = $"{mode.Origin} (auto: {why})" };
            resolved[mode.Name] = mode;
        }
        if (Modes.All.Contains(mode.Value)) (preset, presetOrigin) = (mode.Value, $"mode {mode.Value}");
        foreach (var def in Catalog.Skip(1)) resolved[def.Name] = Pick(def, preset, presetOrigin);
        // Left unset, the queue directory is the data directory's queue/, wherever the data directory came from.
        if (resolved["queue_dir"] is { Source: SettingSource.Default } q)
            resolved["queue_dir"] = q with { Value = System.IO.Path.Combine(resolved["data"].Value, "queue") };
        // A pilot that drains for its whole walltime connects, takes nothing and leaves, and the next one is submitted:
        // Slurm jobs without end and no task run. Checked only between two valid values (a bad one is reported above).
        var (wall, drain) = (resolved["pilot_walltime"], resolved["pilot_drain"]);
        if (!errors.Any(e => e.StartsWith(wall.Name + " = ", StringComparison.Ordinal) || e.StartsWith(drain.Name + " = ", StringComparison.Ordinal))
            && Tasks.Durations.TryParseSeconds(wall.Value, out var wallSeconds)
            && drain.Source != SettingSource.Default // the default shrinks to half the walltime (PilotDrain)
            && Tasks.Durations.TryParseSeconds(drain.Value, out var drainSeconds) && drainSeconds >= wallSeconds)
            errors.Add($"pilot_drain = '{drain.Value}' from {drain.Origin}: must be shorter than pilot_walltime ('{wall.Value}' from {wall.Origin})");
        return errors.Count > 0 ? (null, errors) : (new SparkyConfig(resolved), errors);

        ResolvedSetting Pick(SettingDef def, string? preset, string? presetOrigin)
        {
            ResolvedSetting r;
            if (flags.TryGetValue(def.Name, out var f)) r = new(def.Name, f, SettingSource.Flag, "--" + def.Name.Replace('_', '-'));
            else if (env.TryGetValue(def.EnvName, out var e)) r = new(def.Name, e, SettingSource.Env, def.EnvName);
            else if (def.EnvAliases.FirstOrDefault(env.ContainsKey) is { } alias)
            {
                var given = env[alias];
                var read = def.FromAlias?.Invoke(given) ?? given;
                r = new(def.Name, read, SettingSource.Env, read == given ? alias : $"{alias}={given}, read as {read}");
            }
            else if (file.TryGetValue(def.Name, out var v)) r = new(def.Name, v, SettingSource.File, fileOrigin);
            else if (preset is not null && def.Presets.TryGetValue(preset, out var p)) r = new(def.Name, p(context), SettingSource.Preset, presetOrigin!);
            else r = new(def.Name, def.Default(context), SettingSource.Default, "default");
            if (def.Validate(r.Value) is { } problem) errors.Add($"{def.Name} = '{r.Value}' from {r.Origin}: {problem}");
            return r;
        }
    }

    private static IEnumerable<SettingDef> ClassSettings(string cls, string what, Func<SettingContext, string> slots, Func<SettingContext, string> min,
        string limiter, Dictionary<string, Func<SettingContext, string>> presets) =>
    [
        new(cls + "_slots", $"most {what} at once (the limiter's ceiling, or the limit when it is fixed)", slots, Long(1, 100_000)) { Presets = presets },
        new(cls + "_min_slots", $"fewest {what} at once the limiter may go down to", min, Long(1, 100_000)),
        new(cls + "_limiter", $"how {cls}'s limit adapts: {string.Join(", ", LimiterNames)}", _ => limiter, OneOf(LimiterNames)),
    ];

    private static string Cores(SettingContext c, double factor = 1) =>
        Math.Max(1, (int)Math.Round(c.Cores * factor)).ToString(CultureInfo.InvariantCulture);

    private static Func<string, string?> OneOf(IReadOnlyList<string> allowed) => v =>
        allowed.Contains(v) ? null : $"allowed: {string.Join(", ", allowed)}";

    private static string? NoNewline(string v) => v.Contains('\n') || v.Contains('\r') ? "must be one line" : null;

    private static string? SbatchOptions(string v) =>
        NoNewline(v) ?? (v.Split(' ', StringSplitOptions.RemoveEmptyEntries).FirstOrDefault(o => !o.StartsWith("--", StringComparison.Ordinal)) is { } bad
            ? $"each option must start with -- (got '{bad}'); write --opt=value" : null);

    private static string? ClassList(string v)
    {
        foreach (var c in v.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            if (!Classes.Contains(c)) return $"unknown class '{c}' (classes: {string.Join(", ", Classes)})";
        return null;
    }

    private static Func<string, string?> MillisOrDuration(double min, double max) => v =>
        (v.Trim().EndsWith("ms", StringComparison.Ordinal)
            ? double.TryParse(v.Trim()[..^2], NumberStyles.Float, CultureInfo.InvariantCulture, out var ms) && ms >= min * 1000 && ms <= max * 1000
            : Duration(min, max)(v) is null)
        ? null : $"allowed: from {min * 1000} ms to {max} s, such as 5ms or 0.01";

    private static Func<string, string?> Duration(double min, double max) => v =>
        (min == 0 && v.Trim() == "0") || (Tasks.Durations.TryParseSeconds(v, out var s) && s >= min && s <= max) ? null : $"allowed: a duration from {min} s to {max} s, such as 30, 90s, 5m or 1h";

    /// <summary>The values a boolean takes, in any case: the replaced system's .env files wrote true and false.</summary>
    private static readonly string[] TrueWords = ["true", "1", "yes", "on"], FalseWords = ["false", "0", "no", "off"];

    private static bool IsTrue(string v) => TrueWords.Contains(v.Trim().ToLowerInvariant());

    private static string? Bool(string v) =>
        TrueWords.Contains(v.Trim().ToLowerInvariant()) || FalseWords.Contains(v.Trim().ToLowerInvariant()) ? null : "allowed: true or false (also 1/0, yes/no, on/off)";

    /// <summary>Each accepted spelling of a log level (any case) and the level it means: Microsoft.Extensions.Logging's
    /// names, and the shorter ones the replaced system's .env files and Python's logging use (info, warn, fatal).</summary>
    private static readonly Dictionary<string, Microsoft.Extensions.Logging.LogLevel> LogLevels = new(StringComparer.Ordinal)
    {
        ["trace"] = Microsoft.Extensions.Logging.LogLevel.Trace,
        ["debug"] = Microsoft.Extensions.Logging.LogLevel.Debug,
        ["information"] = Microsoft.Extensions.Logging.LogLevel.Information, ["info"] = Microsoft.Extensions.Logging.LogLevel.Information,
        ["warning"] = Microsoft.Extensions.Logging.LogLevel.Warning, ["warn"] = Microsoft.Extensions.Logging.LogLevel.Warning,
        ["error"] = Microsoft.Extensions.Logging.LogLevel.Error,
        ["critical"] = Microsoft.Extensions.Logging.LogLevel.Critical, ["fatal"] = Microsoft.Extensions.Logging.LogLevel.Critical,
        ["none"] = Microsoft.Extensions.Logging.LogLevel.None,
    };

    private static string? LogLevelName(string v) =>
        LogLevels.ContainsKey(v.Trim().ToLowerInvariant()) ? null
            : "allowed: trace, debug, information, warning, error, critical, none (any case; also info, warn, fatal)";

    private static string? GpuMemory(string v) =>
        v.Trim().Length == 0 || (MemorySizes.TryParseMb(v, out var mb) && mb > 0) ? null : "allowed: a size such as 20G or 512M, or empty";

    private static string? NonEmpty(string v) => string.IsNullOrWhiteSpace(v) ? "must not be empty" : null;

    private static string? HostPort(string v)
    {
        int colon = v.LastIndexOf(':');
        if (colon <= 0) return "expected HOST:PORT, such as 127.0.0.1:9097";
        return int.TryParse(v[(colon + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out int port) && port is >= 0 and <= 65535
            ? null : "the port must be a number from 0 to 65535";
    }

    /// <summary>tcp://HOST:PORT, where HOST is an IP address, a name or [IPv6]; port 0 means "pick a free one".</summary>
    private static string? ZmqEndpoint(string v)
    {
        const string Example = "expected tcp://HOST:PORT, such as tcp://127.0.0.1:5555";
        if (!v.StartsWith("tcp://", StringComparison.Ordinal)) return Example;
        var hostPort = v["tcp://".Length..];
        int colon = hostPort.LastIndexOf(':');
        if (colon <= 0 || hostPort[..colon].Any(c => char.IsWhiteSpace(c) || c is '/' or '?' or '#')) return Example;
        return int.TryParse(hostPort[(colon + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out int port) && port is >= 0 and <= 65535
            ? null : "the port must be a number from 0 to 65535";
    }

    private static Func<string, string?> Long(long min, long max) => v =>
        long.TryParse(v, NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) && n >= min && n <= max ? null : $"allowed: an integer from {min} to {max}";

    private static Func<string, string?> Double(double min, double max) => v =>
        double.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out var n) && n >= min && n <= max ? null : $"allowed: a number from {min} to {max}";
}
