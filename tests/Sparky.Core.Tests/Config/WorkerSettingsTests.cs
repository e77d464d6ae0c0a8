using Sparky.Core.Config;

namespace Sparky.Core.Tests.Config;

/// <summary>The settings of workers and pilots: worker_classes, pilot_classes and the pilot durations.</summary>
public sealed class WorkerSettingsTests
{
    private static readonly SettingContext Ctx = new(8, "/home/u/.local/share/sparky");
    private static Dictionary<string, string> D(params (string, string)[] kv) => kv.ToDictionary(x => x.Item1, x => x.Item2);

    [Fact]
    public void By_default_no_class_goes_to_workers_and_pilots_have_their_documented_times()
    {
        var (c, errors) = SparkyConfig.Resolve(D(), D(), D(), "sparky.toml", Ctx);
        Assert.Empty(errors);
        Assert.Empty(c!.WorkerClasses);
        Assert.Empty(c.PilotClasses);
        Assert.Equal(TimeSpan.FromSeconds(60), c.PilotIdleTimeout);
        Assert.Equal(TimeSpan.FromHours(1), c.PilotWalltime);
        Assert.Equal(TimeSpan.FromMinutes(2), c.PilotDrain);
    }

    [Fact]
    public void Worker_classes_are_those_of_worker_classes_and_pilot_classes_together()
    {
        var (c, errors) = SparkyConfig.Resolve(
            D(("worker_classes", "cpu_short, cpu_long")), D(("SPARKY_PILOT_CLASSES", "gpu,cpu_long")), D(), "sparky.toml", Ctx);
        Assert.Empty(errors);
        Assert.Equal(["cpu_long", "cpu_short", "gpu"], c!.WorkerClasses.Order(StringComparer.Ordinal));
        Assert.Equal(["cpu_long", "gpu"], c.PilotClasses.Order(StringComparer.Ordinal));

        // Pilot classes alone are worker classes too: the daemon sends their tasks to the pilots' workers.
        var (pilotsOnly, _) = SparkyConfig.Resolve(D(), D(), D(("pilot_classes", "cpu_short")), "sparky.toml", Ctx);
        Assert.Equal(["cpu_short"], pilotsOnly!.WorkerClasses);
    }

    [Theory]
    [InlineData("worker_classes")]
    [InlineData("pilot_classes")]
    public void An_unknown_class_is_refused_with_the_setting_name(string name)
    {
        var (c, errors) = SparkyConfig.Resolve(D(), D(), D((name, "cpu_short,cpu_huge")), "/data/sparky.toml", Ctx);
        Assert.Null(c);
        var e = Assert.Single(errors);
        Assert.StartsWith($"{name} = 'cpu_short,cpu_huge' from /data/sparky.toml", e);
        Assert.Contains("unknown class 'cpu_huge'", e);
        Assert.Contains("cpu_short, cpu_long, gpu, gpu_slurm", e);
    }

    [Fact]
    public void Both_class_lists_wrong_at_once_give_both_errors()
    {
        var (c, errors) = SparkyConfig.Resolve(D(("worker_classes", "a")), D(("SPARKY_PILOT_CLASSES", "b")), D(), "f", Ctx);
        Assert.Null(c);
        Assert.Equal(2, errors.Count);
        Assert.Contains(errors, e => e.StartsWith("worker_classes = 'a' from --worker-classes") && e.Contains("unknown class 'a'"));
        Assert.Contains(errors, e => e.StartsWith("pilot_classes = 'b' from SPARKY_PILOT_CLASSES") && e.Contains("unknown class 'b'"));
    }

    [Theory]
    [InlineData("pilot_idle_timeout", "5m", 300)]
    [InlineData("pilot_idle_timeout", "90", 90)]
    [InlineData("pilot_idle_timeout", "45s", 45)]
    [InlineData("pilot_walltime", "2h", 7200)]
    [InlineData("pilot_walltime", "1h30m", 5400)]
    [InlineData("pilot_walltime", "1d", 86400)]
    [InlineData("pilot_drain", "0", 0)]
    [InlineData("pilot_drain", "5m", 300)]
    public void Pilot_times_take_durations(string name, string value, double seconds)
    {
        var (c, errors) = SparkyConfig.Resolve(D((name, value)), D(), D(), "f", Ctx);
        Assert.Empty(errors);
        var got = name switch
        {
            "pilot_idle_timeout" => c!.PilotIdleTimeout,
            "pilot_walltime" => c!.PilotWalltime,
            _ => c!.PilotDrain,
        };
        Assert.Equal(TimeSpan.FromSeconds(seconds), got);
    }

    [Theory]
    [InlineData("1m", "2m")] // the default drain: the pilot would drain as it starts
    [InlineData("5m", "5m")]
    public void A_drain_not_shorter_than_the_walltime_is_refused_since_such_a_pilot_would_never_take_a_task(string walltime, string drain)
    {
        // Each pilot would connect, drain at once and leave, and the next would be submitted: Slurm jobs without end.
        var (c, errors) = SparkyConfig.Resolve(D(("pilot_walltime", walltime)), D(), D(("pilot_drain", drain)), "sparky.toml", Ctx);
        Assert.Null(c);
        var e = Assert.Single(errors);
        Assert.StartsWith($"pilot_drain = '{drain}' from ", e);
        Assert.Contains($"shorter than pilot_walltime ('{walltime}' from --pilot-walltime)", e);

        var (ok, none) = SparkyConfig.Resolve(D(("pilot_walltime", walltime)), D(), D(("pilot_drain", "30s")), "sparky.toml", Ctx);
        Assert.Empty(none);
        Assert.Equal(TimeSpan.FromSeconds(30), ok!.PilotDrain);
    }

    [Fact]
    public void Left_at_its_default_the_drain_shrinks_to_half_a_short_walltime()
    {
        var (c, errors) = SparkyConfig.Resolve(D(("pilot_walltime", "1m")), D(), D(), "sparky.toml", Ctx);
        Assert.Empty(errors);
        Assert.Equal(TimeSpan.FromSeconds(30), c!.PilotDrain);
        var (longer, _) = SparkyConfig.Resolve(D(("pilot_walltime", "2h")), D(), D(), "sparky.toml", Ctx);
        Assert.Equal(TimeSpan.FromMinutes(2), longer!.PilotDrain);
    }

    [Theory]
    [InlineData("pilot_idle_timeout", "soon")]
    [InlineData("pilot_idle_timeout", "5x")]
    [InlineData("pilot_idle_timeout", "-5m")]
    [InlineData("pilot_idle_timeout", "")]
    [InlineData("pilot_idle_timeout", "0")] // a pilot that ends before it could take a task
    [InlineData("pilot_walltime", "m")]
    [InlineData("pilot_walltime", "1h 30x")]
    [InlineData("pilot_walltime", "5")] // below its 10 s minimum
    [InlineData("pilot_walltime", "31d")] // above its 30 d maximum
    [InlineData("pilot_drain", "later")]
    [InlineData("pilot_drain", "-1")]
    public void Pilot_times_refuse_what_is_not_a_duration_in_range(string name, string value)
    {
        var (c, errors) = SparkyConfig.Resolve(D(), D(("SPARKY_" + name.ToUpperInvariant(), value)), D(), "f", Ctx);
        Assert.Null(c);
        var e = Assert.Single(errors);
        Assert.StartsWith($"{name} = '{value}' from SPARKY_{name.ToUpperInvariant()}: allowed: a duration", e);
    }
}
