using System.Globalization;

namespace Sparky.Core.Config;

public enum SettingSource { Flag, Env, File, Default }

/// <summary>One setting the user can set: by flag, by <c>SPARKY_&lt;NAME&gt;</c>, in sparky.toml, or left at its default.</summary>
public sealed record SettingDef(string Name, string Help, Func<SettingContext, string> Default, Func<string, string?> Validate, params string[] EnvAliases)
{
    public string EnvName => "SPARKY_" + Name.ToUpperInvariant();
}

/// <summary>What defaults depend on: facts about the machine, passed in so resolution stays pure.</summary>
public sealed record SettingContext(int Cores, string DefaultDataDir);

public sealed record ResolvedSetting(string Name, string Value, SettingSource Source, string Origin);

/// <summary>The settings in force, each with where it came from. Immutable.</summary>
public sealed class SparkyConfig
{
    public IReadOnlyDictionary<string, ResolvedSetting> Settings { get; }

    private SparkyConfig(IReadOnlyDictionary<string, ResolvedSetting> settings) => Settings = settings;

    public string this[string name] => Settings[name].Value;

    public string DataDir => this["data"];
    public string Http => this["http"];
    public string? Token => this["token"] is { Length: > 0 } t ? t : null;
    public long MaxQueued => long.Parse(this["max_queued"], CultureInfo.InvariantCulture);
    public long MaxBodyBytes => long.Parse(this["max_body_mb"], CultureInfo.InvariantCulture) * 1024 * 1024;
    public double RetryBaseSeconds => double.Parse(this["retry_base_seconds"], CultureInfo.InvariantCulture);
    public double KillGraceSeconds => double.Parse(this["kill_grace_seconds"], CultureInfo.InvariantCulture);

    /// <summary>Classes whose attempts run under a small shell shim that records the exit code in a file,
    /// so a task still running when the daemon dies can be re-attached and its true result kept. Short tasks
    /// skip the shim (it costs one more exec) and are retried instead.</summary>
    public IReadOnlySet<string> ReattachClasses => this["reattach_classes"].Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToHashSet();

    public IReadOnlyDictionary<string, int> ClassLimits => new Dictionary<string, int>
    {
        ["cpu_short"] = int.Parse(this["cpu_short_slots"], CultureInfo.InvariantCulture),
        ["cpu_long"] = int.Parse(this["cpu_long_slots"], CultureInfo.InvariantCulture),
        ["gpu"] = int.Parse(this["gpu_slots"], CultureInfo.InvariantCulture),
        ["gpu_slurm"] = int.Parse(this["gpu_slurm_slots"], CultureInfo.InvariantCulture),
    };

    public static readonly IReadOnlyList<SettingDef> Catalog =
    [
        new("data", "data directory: SQLite store, logs, drop directory", c => c.DefaultDataDir, NonEmpty, "ENV_QUEUE_DIR"),
        new("http", "HTTP listen address HOST:PORT", _ => "127.0.0.1:9097", HostPort),
        new("token", "bearer token, required on any non-loopback address", _ => "", _ => null),
        new("max_queued", "queued tasks before submissions get 429", _ => "1000000", Long(1, long.MaxValue)),
        new("max_body_mb", "largest HTTP request body, in MiB", _ => "16", Long(1, 1024)),
        new("cpu_short_slots", "concurrent cpu_short tasks", c => c.Cores.ToString(CultureInfo.InvariantCulture), Long(1, 100_000), "DSPY_MAX_CONCURRENCY"),
        new("cpu_long_slots", "concurrent cpu_long tasks", _ => "1", Long(1, 100_000)),
        new("gpu_slots", "concurrent gpu tasks", _ => "1", Long(1, 100_000)),
        new("gpu_slurm_slots", "concurrent gpu_slurm tasks", _ => "1", Long(1, 100_000)),
        new("retry_base_seconds", "first retry delay; doubles each attempt, with jitter", _ => "0.5", Double(0, 3600)),
        new("kill_grace_seconds", "time between SIGTERM and SIGKILL on cancel or timeout", _ => "5", Double(0, 3600)),
        new("reattach_classes", "classes whose running tasks survive a daemon restart", _ => "cpu_long,gpu,gpu_slurm", _ => null),
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
        foreach (var def in Catalog)
        {
            ResolvedSetting r;
            if (flags.TryGetValue(def.Name, out var f)) r = new(def.Name, f, SettingSource.Flag, "--" + def.Name.Replace('_', '-'));
            else if (env.TryGetValue(def.EnvName, out var e)) r = new(def.Name, e, SettingSource.Env, def.EnvName);
            else if (def.EnvAliases.FirstOrDefault(env.ContainsKey) is { } alias) r = new(def.Name, env[alias], SettingSource.Env, alias);
            else if (file.TryGetValue(def.Name, out var v)) r = new(def.Name, v, SettingSource.File, fileOrigin);
            else r = new(def.Name, def.Default(context), SettingSource.Default, "default");
            if (def.Validate(r.Value) is { } problem) errors.Add($"{def.Name} = '{r.Value}' from {r.Origin}: {problem}");
            resolved[def.Name] = r;
        }
        return errors.Count > 0 ? (null, errors) : (new SparkyConfig(resolved), errors);
    }

    private static string? NonEmpty(string v) => string.IsNullOrWhiteSpace(v) ? "must not be empty" : null;

    private static string? HostPort(string v)
    {
        int colon = v.LastIndexOf(':');
        if (colon <= 0) return "expected HOST:PORT, such as 127.0.0.1:9097";
        return int.TryParse(v[(colon + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out int port) && port is >= 0 and <= 65535
            ? null : "the port must be a number from 0 to 65535";
    }

    private static Func<string, string?> Long(long min, long max) => v =>
        long.TryParse(v, NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) && n >= min && n <= max ? null : $"allowed: an integer from {min} to {max}";

    private static Func<string, string?> Double(double min, double max) => v =>
        double.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out var n) && n >= min && n <= max ? null : $"allowed: a number from {min} to {max}";
}
