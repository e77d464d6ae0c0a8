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
        // ENV_QUEUE_DIR names the queue directory itself (pending/ and done/ in it), not the data directory.
        Assert.Equal(("/q", "ENV_QUEUE_DIR"), (c!.QueueDir, c.Settings["queue_dir"].Origin));
        Assert.Equal("/home/u/.local/share/sparky", c.DataDir);
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

    [Fact]
    public void The_queue_dir_defaults_to_the_data_dirs_queue_and_sparky_queue_dir_beats_env_queue_dir()
    {
        var (c, _) = SparkyConfig.Resolve(D(), D(), D(), "f", Ctx);
        Assert.Equal(("/home/u/.local/share/sparky/queue", SettingSource.Default), (c!.QueueDir, c.Settings["queue_dir"].Source));
        // Wherever the data directory came from.
        var (flag, _) = SparkyConfig.Resolve(D(("data", "/srv/sparky")), D(), D(), "f", Ctx);
        Assert.Equal("/srv/sparky/queue", flag!.QueueDir);
        var (both, _) = SparkyConfig.Resolve(D(), D(("ENV_QUEUE_DIR", "logs/env_queue"), ("SPARKY_QUEUE_DIR", "/q2")), D(), "f", Ctx);
        Assert.Equal(("/q2", "SPARKY_QUEUE_DIR"), (both!.QueueDir, both.Settings["queue_dir"].Origin));
        // Relative as given: the daemon resolves it against its working directory, as the replaced system did.
        var (rel, _) = SparkyConfig.Resolve(D(), D(("ENV_QUEUE_DIR", "logs/env_queue")), D(), "f", Ctx);
        Assert.Equal("logs/env_queue", rel!.QueueDir);
        Assert.Equal(TimeSpan.FromSeconds(2), rel.DropSettle);
    }

    /// <summary>The replaced system's three .env files, exactly as its plan gives them: each variable maps to a setting,
    /// each setting says which variable it came from, and no value of theirs is refused.</summary>
    [Fact]
    public void The_replaced_systems_env_files_map_to_settings()
    {
        var laptop = Env(("DSPY_MODE", "laptop"), ("DSPY_MAX_CONCURRENCY", "1"), ("DSPY_ENABLE_DEMO", "false"),
            ("ENV_QUEUE_DIR", "/tmp/dspy_queue"), ("DSPY_LOG_LEVEL", "debug"));
        Assert.Equal(Modes.Laptop, laptop.Mode);
        Assert.Equal(1, laptop.MaxConcurrency);
        Assert.Equal("/tmp/dspy_queue", laptop.QueueDir);
        Assert.Equal(Microsoft.Extensions.Logging.LogLevel.Debug, laptop.LogLevel);
        Assert.Equal("false", laptop["enable_demo"]);
        AssertFrom(laptop, ("mode", "DSPY_MODE"), ("max_concurrency", "DSPY_MAX_CONCURRENCY"), ("enable_demo", "DSPY_ENABLE_DEMO"),
            ("queue_dir", "ENV_QUEUE_DIR"), ("log_level", "DSPY_LOG_LEVEL"));
        Assert.DoesNotContain("gpu", laptop.SlurmClasses);

        var workstation = Env(("DSPY_MODE", "workstation"), ("DSPY_MAX_CONCURRENCY", "4"), ("DSPY_ENABLE_GPU", "true"),
            ("ENV_QUEUE_DIR", "logs/env_queue"), ("DSPY_GPU_MEMORY_LIMIT", "20G"));
        Assert.Equal((Modes.Workstation, 4, true, "logs/env_queue", 20480L),
            (workstation.Mode, workstation.MaxConcurrency, workstation.EnableGpu, workstation.QueueDir, workstation.GpuMemoryDefaultMb));
        AssertFrom(workstation, ("mode", "DSPY_MODE"), ("max_concurrency", "DSPY_MAX_CONCURRENCY"), ("enable_gpu", "DSPY_ENABLE_GPU"),
            ("queue_dir", "ENV_QUEUE_DIR"), ("gpu_memory_default", "DSPY_GPU_MEMORY_LIMIT"));
        Assert.DoesNotContain("gpu", workstation.SlurmClasses);

        var cluster = Env(("DSPY_MODE", "cluster"), ("DSPY_MAX_CONCURRENCY", "16"), ("DSPY_ENABLE_SLURM", "true"),
            ("ENV_QUEUE_DIR", "/shared/dspy_queue"), ("DSPY_SLURM_PARTITION", "gpu"));
        Assert.Equal((Modes.Cluster, 16, "/shared/dspy_queue", "gpu"), (cluster.Mode, cluster.MaxConcurrency, cluster.QueueDir, cluster.SlurmPartition));
        Assert.Contains("gpu", cluster.SlurmClasses);
        AssertFrom(cluster, ("mode", "DSPY_MODE"), ("max_concurrency", "DSPY_MAX_CONCURRENCY"), ("enable_slurm", "DSPY_ENABLE_SLURM"),
            ("queue_dir", "ENV_QUEUE_DIR"), ("slurm_partition", "DSPY_SLURM_PARTITION"));
    }

    [Fact]
    public void Dspy_enable_slurm_sends_gpu_to_slurm_in_any_mode_and_false_keeps_it_here_even_in_cluster_mode()
    {
        Assert.Contains("gpu", Env(("DSPY_ENABLE_SLURM", "true")).SlurmClasses);
        Assert.Contains("gpu", Env(("DSPY_ENABLE_SLURM", "True")).SlurmClasses);
        var off = Env(("DSPY_MODE", "cluster"), ("DSPY_ENABLE_SLURM", "false"));
        Assert.DoesNotContain("gpu", off.SlurmClasses);
        Assert.Contains("gpu_slurm", off.SlurmClasses);
        // Unset, the mode decides: cluster's preset turns it on.
        var preset = Env(("DSPY_MODE", "cluster"));
        Assert.Equal(("true", SettingSource.Preset), (preset["enable_slurm"], preset.Settings["enable_slurm"].Source));
        Assert.Contains("gpu", preset.SlurmClasses);
        Assert.DoesNotContain("gpu", Env().SlurmClasses);
    }

    [Theory]
    [InlineData("DSPY_ENABLE_GPU", "false", "enable_gpu", "false")]
    [InlineData("DSPY_ENABLE_GPU", "FALSE", "enable_gpu", "FALSE")]
    [InlineData("DSPY_ENABLE_GPU", "0", "enable_gpu", "0")]
    [InlineData("DSPY_ENABLE_DEMO", "True", "enable_demo", "True")]
    [InlineData("DSPY_LOG_LEVEL", "INFO", "log_level", "INFO")]
    [InlineData("DSPY_LOG_LEVEL", "warn", "log_level", "warn")]
    [InlineData("DSPY_GPU_MEMORY_LIMIT", "20GB", "gpu_memory_default", "20GB")]
    [InlineData("DSPY_GPU_MEMORY_LIMIT", "512M", "gpu_memory_default", "512M")]
    public void The_replaced_systems_spellings_are_accepted(string variable, string value, string setting, string shown)
    {
        var c = Env((variable, value));
        Assert.Equal((shown, variable), (c[setting], c.Settings[setting].Origin));
    }

    [Fact]
    public void Each_mapped_value_means_what_the_replaced_system_meant()
    {
        Assert.False(Env(("DSPY_ENABLE_GPU", "False")).EnableGpu);
        Assert.True(Env().EnableGpu);
        Assert.Equal(Microsoft.Extensions.Logging.LogLevel.Information, Env(("DSPY_LOG_LEVEL", "INFO")).LogLevel);
        Assert.Equal(Microsoft.Extensions.Logging.LogLevel.Warning, Env(("DSPY_LOG_LEVEL", "WARN")).LogLevel);
        Assert.Equal(Microsoft.Extensions.Logging.LogLevel.Information, Env().LogLevel);
        Assert.Equal(20480, Env(("DSPY_GPU_MEMORY_LIMIT", "20GB")).GpuMemoryDefaultMb);
        Assert.Equal(0, Env().GpuMemoryDefaultMb);
    }

    [Theory]
    [InlineData("DSPY_ENABLE_GPU", "maybe", "enable_gpu", "true or false")]
    [InlineData("DSPY_ENABLE_SLURM", "sure", "enable_slurm", "true or false")]
    [InlineData("DSPY_LOG_LEVEL", "loud", "log_level", "trace, debug, information, warning, error, critical, none")]
    [InlineData("DSPY_GPU_MEMORY_LIMIT", "lots", "gpu_memory_default", "20G")]
    [InlineData("DSPY_GPU_MEMORY_LIMIT", "0G", "gpu_memory_default", "20G")]
    public void A_value_that_means_nothing_is_refused_with_the_variable_named(string variable, string value, string setting, string allowed)
    {
        var (c, errors) = SparkyConfig.Resolve(D(), D((variable, value)), D(), "f", Ctx);
        Assert.Null(c);
        var e = Assert.Single(errors);
        Assert.StartsWith($"{setting} = '{value}' from {variable}", e);
        Assert.Contains(allowed, e);
    }

    private static SparkyConfig Env(params (string, string)[] env)
    {
        var (c, errors) = SparkyConfig.Resolve(D(), D(env), D(), "f", Ctx);
        Assert.Empty(errors);
        return c!;
    }

    private static void AssertFrom(SparkyConfig c, params (string Setting, string Variable)[] expected)
    {
        foreach (var (setting, variable) in expected)
            Assert.Equal((SettingSource.Env, variable), (c.Settings[setting].Source, c.Settings[setting].Origin));
    }

    /// <summary>The scripts that wrote the replaced system's .env wrote DSPY_MODE=development and production (its code
    /// never read the variable): they start Sparky as a laptop, and as whatever auto finds.</summary>
    [Theory]
    [InlineData("development", "laptop", "DSPY_MODE=development, read as laptop")]
    [InlineData("production", "workstation", "DSPY_MODE=production, read as auto (auto: 2 GPU(s) found)")]
    [InlineData("cloud", "workstation", "DSPY_MODE=cloud, read as auto (auto: 2 GPU(s) found)")]
    [InlineData("Cluster", "cluster", "DSPY_MODE=Cluster, read as cluster")]
    [InlineData("laptop", "laptop", "DSPY_MODE")]
    public void Dspy_mode_takes_the_modes_the_replaced_systems_scripts_wrote(string value, string mode, string origin)
    {
        var ctx = Ctx with { DetectMode = () => Modes.Pick(false, 2) };
        var (c, errors) = SparkyConfig.Resolve(D(), D(("DSPY_MODE", value)), D(), "f", ctx);
        Assert.Empty(errors);
        Assert.Equal((mode, origin), (c!.Mode, c.Settings["mode"].Origin));
        // Sparky's own variable keeps its own spellings.
        Assert.NotEmpty(SparkyConfig.Resolve(D(), D(("SPARKY_MODE", "production")), D(), "f", ctx).Errors);
    }
}
