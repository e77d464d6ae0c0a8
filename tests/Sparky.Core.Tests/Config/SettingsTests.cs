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
        Assert.Equal(5, c.MaxConcurrency);
        Assert.Equal("DSPY_MAX_CONCURRENCY", c.Settings["max_concurrency"].Origin);
        var (m, _) = SparkyConfig.Resolve(D(), D(("DSPY_MODE", "workstation")), D(), "f", Ctx);
        Assert.Equal(("workstation", "DSPY_MODE"), (m!.Mode, m.Settings["mode"].Origin));
        // SPARKY_ wins over the replaced system's name.
        var (both, _) = SparkyConfig.Resolve(D(), D(("DSPY_MODE", "workstation"), ("SPARKY_MODE", "cluster")), D(), "f", Ctx);
        Assert.Equal("cluster", both!.Mode);
    }

    [Fact]
    public void A_mode_preset_sits_between_the_file_and_the_default()
    {
        var (laptop, _) = SparkyConfig.Resolve(D(), D(), D(), "f", Ctx);
        Assert.Equal("laptop", laptop!.Mode);
        Assert.Equal(("1", SettingSource.Default), (laptop.Settings["cpu_long_slots"].Value, laptop.Settings["cpu_long_slots"].Source));

        var (ws, _) = SparkyConfig.Resolve(D(("mode", "workstation")), D(), D(), "f", Ctx);
        Assert.Equal(("2", SettingSource.Preset, "mode workstation"), (ws!.Settings["cpu_long_slots"].Value, ws.Settings["cpu_long_slots"].Source, ws.Settings["cpu_long_slots"].Origin));
        Assert.Equal(2, ws.ClassLimits["cpu_long"]);

        // The file beats the preset, the preset beats the default.
        var (file, _) = SparkyConfig.Resolve(D(("mode", "cluster")), D(), D(("cpu_long_slots", "3")), "sparky.toml", Ctx);
        Assert.Equal(("3", SettingSource.File), (file!.Settings["cpu_long_slots"].Value, file.Settings["cpu_long_slots"].Source));
        Assert.Equal(("16", SettingSource.Preset), (file.Settings["cpu_short_slots"].Value, file.Settings["cpu_short_slots"].Source));
    }

    [Theory]
    [InlineData(true, 4, "cluster", "Slurm answers")]
    [InlineData(false, 2, "workstation", "2 GPU(s) found")]
    [InlineData(false, 0, "laptop", "no Slurm, no GPU")]
    public void Auto_picks_cluster_where_slurm_answers_workstation_where_a_gpu_is_found_else_laptop(bool slurm, int gpus, string mode, string why)
    {
        int probes = 0;
        var ctx = Ctx with { DetectMode = () => { probes++; return Modes.Pick(slurm, gpus); } };
        var (c, errors) = SparkyConfig.Resolve(D(), D(("SPARKY_MODE", "auto")), D(), "f", ctx);
        Assert.Empty(errors);
        Assert.Equal(mode, c!.Mode);
        Assert.Equal($"SPARKY_MODE (auto: {why})", c.Settings["mode"].Origin);
        Assert.Equal(1, probes);
        // Without auto, nothing is probed.
        SparkyConfig.Resolve(D(("mode", "laptop")), D(), D(), "f", ctx);
        Assert.Equal(1, probes);
    }

    [Fact]
    public void Limiters_are_set_per_class_and_checked()
    {
        var (c, _) = SparkyConfig.Resolve(D(("gpu_limiter", "gradient2"), ("gpu_min_slots", "2"), ("gpu_slots", "6")), D(), D(), "f", Ctx);
        Assert.Equal(new ClassLimitSettings("gradient2", 2, 6), c!.ClassLimit("gpu"));
        Assert.Equal("aimd", c.ClassLimit("cpu_short").Limiter);
        var (bad, errors) = SparkyConfig.Resolve(D(("gpu_limiter", "pid"), ("mode", "datacenter")), D(), D(), "f", Ctx);
        Assert.Null(bad);
        Assert.Contains(errors, e => e == "gpu_limiter = 'pid' from --gpu-limiter: allowed: aimd, vegas, gradient2, fixed");
        Assert.Contains(errors, e => e == "mode = 'datacenter' from --mode: allowed: laptop, workstation, cluster, auto");
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

    [Theory]
    [InlineData("tcp://127.0.0.1:5555", null)]
    [InlineData("tcp://127.0.0.1:0", null)]
    [InlineData("tcp://localhost:7000", null)]
    [InlineData("tcp://[::1]:7000", null)]
    [InlineData("tcp://10.0.0.5:7000", null)] // valid as a value; the daemon refuses it without CURVE
    [InlineData("127.0.0.1:5555", "tcp://HOST:PORT")]
    [InlineData("ipc:///tmp/sparky", "tcp://HOST:PORT")]
    [InlineData("tcp://:5555", "tcp://HOST:PORT")]
    [InlineData("tcp://127.0.0.1", "tcp://HOST:PORT")]
    [InlineData("tcp://127.0.0.1:*", "port must be")]
    [InlineData("tcp://127.0.0.1:65536", "port must be")]
    [InlineData("tcp://a b:1", "tcp://HOST:PORT")]
    public void Zmq_endpoints_are_tcp_host_port(string value, string? problem)
    {
        var defaults = SparkyConfig.Resolve(D(), D(), D(), "sparky.toml", Ctx).Config!;
        Assert.Equal(("tcp://127.0.0.1:5555", "tcp://127.0.0.1:5556"), (defaults.Zmq, defaults.ZmqEvents));
        foreach (var (name, env) in new[] { ("zmq", "SPARKY_ZMQ"), ("zmq_events", "SPARKY_ZMQ_EVENTS") })
        {
            var (c, errors) = SparkyConfig.Resolve(D(), D((env, value)), D(), "sparky.toml", Ctx);
            if (problem is null) Assert.Equal(value, c!.Settings[name].Value);
            else Assert.Contains(errors, e => e.StartsWith($"{name} = '{value}' from {env}") && e.Contains(problem));
        }
    }
}
