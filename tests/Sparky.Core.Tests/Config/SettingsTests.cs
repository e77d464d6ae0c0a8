using Sparky.Core.Config;

namespace Sparky.Core.Tests.Config;

public sealed class SettingsTests
{
    private static readonly SettingContext Ctx = new(8, "/home/u/.local/share/sparky");
    private static Dictionary<string, string> D(params (string, string)[] kv) => kv.ToDictionary(x => x.Item1, x => x.Item2);

    [Fact]
    public void Flag_beats_env_beats_file_beats_default_and_each_says_where_it_came_from()
    {
        var (c, errors) = SparkyConfig.Resolve(
            D(("http", "127.0.0.1:7000")),
            D(("SPARKY_HTTP", "127.0.0.1:7001"), ("SPARKY_MAX_QUEUED", "50")),
            D(("http", "127.0.0.1:7002"), ("max_queued", "60"), ("cpu_long_slots", "3")),
            "/data/sparky.toml", Ctx);
        Assert.Empty(errors);
        Assert.Equal(("127.0.0.1:7000", SettingSource.Flag), (c!.Settings["http"].Value, c.Settings["http"].Source));
        Assert.Equal(("50", SettingSource.Env, "SPARKY_MAX_QUEUED"), (c.Settings["max_queued"].Value, c.Settings["max_queued"].Source, c.Settings["max_queued"].Origin));
        Assert.Equal(("3", "/data/sparky.toml"), (c.Settings["cpu_long_slots"].Value, c.Settings["cpu_long_slots"].Origin));
        Assert.Equal(("8", SettingSource.Default), (c.Settings["cpu_short_slots"].Value, c.Settings["cpu_short_slots"].Source));
        Assert.Equal("/home/u/.local/share/sparky", c.DataDir);
    }

    [Fact]
    public void The_replaced_systems_variables_are_read_as_aliases()
    {
        var (c, _) = SparkyConfig.Resolve(D(), D(("ENV_QUEUE_DIR", "/q"), ("DSPY_MAX_CONCURRENCY", "5")), D(), "f", Ctx);
        Assert.Equal("/q", c!.DataDir);
        Assert.Equal(5, c.ClassLimits["cpu_short"]);
        Assert.Equal("DSPY_MAX_CONCURRENCY", c.Settings["cpu_short_slots"].Origin);
    }

    [Fact]
    public void Invalid_values_are_all_refused_with_the_setting_name_and_what_is_allowed()
    {
        var (c, errors) = SparkyConfig.Resolve(D(("http", "nowhere")), D(("SPARKY_MAX_QUEUED", "lots")), D(("bogus", "1")), "sparky.toml", Ctx);
        Assert.Null(c);
        Assert.Equal(3, errors.Count);
        Assert.Contains(errors, e => e.StartsWith("http = 'nowhere' from --http") && e.Contains("HOST:PORT"));
        Assert.Contains(errors, e => e.StartsWith("max_queued = 'lots' from SPARKY_MAX_QUEUED") && e.Contains("allowed"));
        Assert.Contains(errors, e => e.Contains("unknown setting 'bogus'"));
    }
}
