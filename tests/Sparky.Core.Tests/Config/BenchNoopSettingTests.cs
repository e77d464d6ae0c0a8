using Sparky.Core.Config;

namespace Sparky.Core.Tests.Config;

/// <summary><c>bench_noop_classes</c>, the benchmark's setting: off unless named, and only known classes.</summary>
public sealed class BenchNoopSettingTests
{
    private static readonly SettingContext Ctx = new(8, "/home/u/.local/share/sparky");
    private static Dictionary<string, string> D(params (string, string)[] kv) => kv.ToDictionary(x => x.Item1, x => x.Item2);

    [Fact]
    public void By_default_every_class_runs_its_tasks()
    {
        var (c, errors) = SparkyConfig.Resolve(D(), D(), D(), "sparky.toml", Ctx);
        Assert.Empty(errors);
        Assert.Empty(c!.BenchNoopClasses);
    }

    [Fact]
    public void The_classes_named_by_flag_or_environment_run_nothing()
    {
        var (byFlag, _) = SparkyConfig.Resolve(D(("bench_noop_classes", "cpu_short, cpu_long")), D(), D(), "sparky.toml", Ctx);
        Assert.Equal(["cpu_long", "cpu_short"], byFlag!.BenchNoopClasses.Order(StringComparer.Ordinal));
        var (byEnv, _) = SparkyConfig.Resolve(D(), D(("SPARKY_BENCH_NOOP_CLASSES", "gpu")), D(), "sparky.toml", Ctx);
        Assert.Equal(["gpu"], byEnv!.BenchNoopClasses);
    }

    [Fact]
    public void An_unknown_class_is_refused_with_the_setting_name()
    {
        var (c, errors) = SparkyConfig.Resolve(D(("bench_noop_classes", "cpu_shrt")), D(), D(), "sparky.toml", Ctx);
        Assert.Null(c);
        Assert.Contains(errors, e => e.Contains("bench_noop_classes") && e.Contains("cpu_shrt"));
    }
}
