using Sparky.Core.Config;

namespace Sparky.Core.Tests.Config;

/// <summary>The typed values a <see cref="SparkyConfig"/> is resolved into at load: what each string means, read once,
/// the same instance on every read (the engine reads some on every loop pass), and every bad value listed at once.</summary>
public sealed class TypedSettingsTests
{
    private static readonly SettingContext Ctx = new(8, "/data");
    private static Dictionary<string, string> D(params (string, string)[] kv) => kv.ToDictionary(x => x.Item1, x => x.Item2);

    private static SparkyConfig Resolve(params (string, string)[] flags)
    {
        var (c, errors) = SparkyConfig.Resolve(D(flags), D(), D(), "f", Ctx);
        Assert.Empty(errors);
        return c!;
    }

    [Fact]
    public void Typed_values_mean_what_their_strings_say()
    {
        var c = Resolve(
            ("drop_settle", "1m30s"), ("worker_timeout", "2m"), ("slurm_poll_seconds", "0.25"), ("slurm_submit_wait", "0"),
            ("max_queued", "50"), ("max_body_mb", "3"), ("max_connections", "7"), ("retry_base_seconds", "1.5"),
            ("reattach_classes", " gpu , cpu_long,"), ("worker_classes", "cpu_short"), ("pilot_classes", "gpu"),
            ("cpu_long_slots", "4"), ("cpu_long_min_slots", "2"), ("cpu_long_limiter", "vegas"),
            ("gpu_min_slots", "9"), ("gpu_slots", "3"),
            ("cpu_short_handler", "python3 -u 'my h.py'"), ("pilot_sbatch_options", "--qos=high  --exclusive"),
            ("log_level", "TRACE"), ("enable_gpu", "off"), ("token", ""), ("gpu_memory_default", "1G"));

        Assert.Equal(TimeSpan.FromSeconds(90), c.DropSettle);
        Assert.Equal(TimeSpan.FromMinutes(2), c.WorkerTimeout);
        Assert.Equal(TimeSpan.FromMilliseconds(250), c.SlurmPollInterval);
        Assert.Equal(TimeSpan.Zero, c.SlurmSubmitWait); // "0" is allowed there and means no wait
        Assert.Equal((50L, 3L * 1024 * 1024, 7, 1.5), (c.MaxQueued, c.MaxBodyBytes, c.MaxConnections, c.RetryBaseSeconds));
        Assert.Equal(["cpu_long", "gpu"], c.ReattachClasses.Order(StringComparer.Ordinal));
        Assert.Equal(["cpu_short", "gpu"], c.WorkerClasses.Order(StringComparer.Ordinal));
        Assert.Equal(["gpu"], c.PilotClasses);
        Assert.Equal(new ClassLimitSettings("vegas", 2, 4), c.ClassLimit("cpu_long"));
        // A ceiling below the floor is raised to it.
        Assert.Equal(new ClassLimitSettings("aimd", 9, 9), c.ClassLimit("gpu"));
        Assert.Equal(["cpu_short", "cpu_long", "gpu", "gpu_slurm"], c.ClassLimits.Keys); // in SparkyConfig.Classes order
        Assert.Equal([8, 4, 9, 64], c.ClassLimits.Values);
        Assert.Equal(["python3", "-u", "my h.py"], c.HandlerFor("cpu_short"));
        Assert.Null(c.HandlerFor("gpu"));
        Assert.Equal(["--qos=high", "--exclusive"], c.SbatchOptionsFor("pilot"));
        Assert.Empty(c.SbatchOptionsFor("cpu_short")); // no such setting: none
        Assert.Equal((Microsoft.Extensions.Logging.LogLevel.Trace, false, (string?)null, 1024L), (c.LogLevel, c.EnableGpu, c.Token, c.GpuMemoryDefaultMb));
    }

    [Fact]
    public void Each_read_returns_the_instance_built_at_load()
    {
        var c = Resolve(("pilot_classes", "cpu_long"), ("worker_classes", "gpu"), ("cpu_short_handler", "run it"),
            ("gpu_slurm_sbatch_options", "--qos=high"));
        Assert.Same(c.PilotClasses, c.PilotClasses);
        Assert.Same(c.WorkerClasses, c.WorkerClasses);
        Assert.Same(c.SlurmClasses, c.SlurmClasses);
        Assert.Same(c.ReattachClasses, c.ReattachClasses);
        Assert.Same(c.ClassLimits, c.ClassLimits);
        Assert.Same(c.ClassLimit("gpu"), c.ClassLimit("gpu"));
        Assert.Same(c.HandlerFor("cpu_short"), c.HandlerFor("cpu_short"));
        Assert.Same(c.SbatchOptionsFor("gpu_slurm"), c.SbatchOptionsFor("gpu_slurm"));
        // Shared by every reader, so none can change them for the others.
        Assert.Throws<NotSupportedException>(() => ((ICollection<string>)c.PilotClasses).Add("gpu"));
        Assert.Throws<NotSupportedException>(() => ((ICollection<string>)c.SlurmClasses).Clear());
        Assert.Throws<NotSupportedException>(() => ((IDictionary<string, int>)c.ClassLimits)["gpu"] = 1);
        Assert.Throws<NotSupportedException>(() => ((IList<string>)c.HandlerFor("cpu_short")!)[0] = "rm");
    }

    [Fact]
    public void Several_bad_values_are_all_listed_at_once()
    {
        var (c, errors) = SparkyConfig.Resolve(
            D(("max_queued", "lots"), ("drop_settle", "soon"), ("cpu_short_slots", "0"), ("gpu_limiter", "pid")),
            D(("SPARKY_ENABLE_SLURM", "sure"), ("SPARKY_CPU_LONG_HANDLER", "a | b"), ("SPARKY_SLURM_POLL_SECONDS", "NaN")),
            D(("pilot_classes", "cpu_huge"), ("pilot_sbatch_options", "-N 2"), ("max_connections", "2147483648")),
            "sparky.toml", Ctx);
        Assert.Null(c);
        string[] named = ["max_queued", "drop_settle", "cpu_short_slots", "gpu_limiter", "enable_slurm", "cpu_long_handler",
            "slurm_poll_seconds", "pilot_classes", "pilot_sbatch_options", "max_connections"];
        Assert.Equal(named.Order(StringComparer.Ordinal), errors.Select(e => e[..e.IndexOf(" = ", StringComparison.Ordinal)]).Order(StringComparer.Ordinal));
    }

    [Theory]
    [InlineData(Modes.Laptop)]
    [InlineData(Modes.Workstation)]
    [InlineData(Modes.Cluster)]
    public void Every_mode_resolves_its_defaults_and_presets_into_typed_values(string mode)
    {
        // The typed values are built as the config is: a default or preset that did not convert would fail here, not at a read.
        var c = Resolve(("mode", mode));
        Assert.Equal(mode, c.Mode);
        Assert.Equal(mode == Modes.Cluster, c.SlurmClasses.Contains("gpu"));
        Assert.All(SparkyConfig.Classes, cls => Assert.InRange(c.ClassLimit(cls).Max, c.ClassLimit(cls).Min, 100_000));
    }

    [Theory]
    [InlineData(null, DashboardMode.On)]
    [InlineData("on", DashboardMode.On)]
    [InlineData("read-only", DashboardMode.ReadOnly)]
    [InlineData("off", DashboardMode.Off)]
    public void The_dashboard_setting_is_on_read_only_or_off(string? value, DashboardMode expected)
    {
        var c = value is null ? Resolve() : Resolve(("dashboard", value));
        Assert.Equal(expected, c.Dashboard);
        Assert.Equal(value ?? "on", c.Dashboard.Name());
    }

    [Fact]
    public void A_dashboard_mode_it_does_not_know_is_refused_with_the_ones_it_does()
    {
        var (c, errors) = SparkyConfig.Resolve(D(), D(("SPARKY_DASHBOARD", "readonly")), D(), "f", Ctx);
        Assert.Null(c);
        Assert.Equal("dashboard = 'readonly' from SPARKY_DASHBOARD: allowed: on, read-only, off", Assert.Single(errors));
    }
}
