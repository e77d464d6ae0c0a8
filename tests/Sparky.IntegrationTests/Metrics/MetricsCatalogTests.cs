using System.Globalization;
using System.Text;
using Sparky.IntegrationTests.Support;

namespace Sparky.IntegrationTests.Metrics;

/// <summary>GET /metrics against the metric list in SPEC.md section 4: names, types and label names.</summary>
public sealed class MetricsCatalogTests
{
    /// <summary>SPEC.md section 4, as written there.</summary>
    private static readonly Dictionary<string, (string Type, string[] Labels)> Spec = new()
    {
        ["sparky_queue_depth"] = ("gauge", ["class"]),
        ["sparky_tasks_running"] = ("gauge", ["class"]),
        ["sparky_tasks_submitted_total"] = ("counter", ["class"]),
        ["sparky_tasks_completed_total"] = ("counter", ["class", "outcome"]),
        ["sparky_task_duration_seconds"] = ("histogram", ["class"]),
        ["sparky_queue_wait_seconds"] = ("histogram", ["class"]),
        ["sparky_concurrency_limit"] = ("gauge", ["class"]),
        ["sparky_gpu_utilization_ratio"] = ("gauge", ["gpu"]),
        ["sparky_gpu_memory_used_bytes"] = ("gauge", ["gpu"]),
        ["sparky_gpu_memory_total_bytes"] = ("gauge", ["gpu"]),
        ["sparky_slurm_jobs_submitted_total"] = ("counter", []),
        ["sparky_slurm_jobs_completed_total"] = ("counter", ["outcome"]),
        ["sparky_slurm_poll_errors_total"] = ("counter", []),
        ["sparky_workers_connected"] = ("gauge", []),
    };

    /// <summary>Beyond the SPEC's list: the replaced orchestrator's names (SPEC §4 names them; docs/compatibility.md),
    /// and the log readers (issue 13: many followers of one log share one reader). Listed here so the catalogue stays whole.</summary>
    private static readonly Dictionary<string, (string Type, string[] Labels)> Extra = new()
    {
        ["sparky_log_readers"] = ("gauge", []),
        ["env_queue_depth"] = ("gauge", []),
        ["orchestrator_concurrency_limit"] = ("gauge", []),
        ["orchestrator_inflight_tasks"] = ("gauge", []),
        // Issue 18: what the alert rules need (deploy/prometheus/alerts.yml).
        ["sparky_workers_lost_total"] = ("counter", []),
        ["sparky_data_disk_free_bytes"] = ("gauge", []),
        ["sparky_data_disk_total_bytes"] = ("gauge", []),
    };

    [Fact]
    public async Task Every_spec_metric_has_its_type_and_labels_and_no_label_holds_a_task_id()
    {
        await using var d = await TestDaemon.StartAsync();
        var ok = await d.SubmitShellAsync("true");
        var bad = await d.SubmitShellAsync("exit 3", cls: "cpu_long");
        Assert.Equal("succeeded", (string?)(await d.WaitAsync(ok))["state"]);
        Assert.Equal("failed", (string?)(await d.WaitAsync(bad))["state"]);
        // No GPU sampler in a test daemon: feed the GPU view as the sampler will.
        d.Daemon.Metrics.SetGpus([("0", 0.25, 1L << 30, 80L << 30), ("GPU-5f1c2a7e-0000-4d2b-9a51-3c1d2e4f6a7b", 1.0, 2L << 30, 80L << 30)]);

        var text = await d.Http.GetStringAsync("metrics");
        var m = PromText.Parse(text);

        foreach (var (name, (type, labels)) in Spec.Concat(Extra))
        {
            Assert.True(m.Types.TryGetValue(name, out var declared), $"{name}: no # TYPE line\n{text}");
            Assert.True(type == declared, $"{name}: # TYPE {declared}, the SPEC says {type}");
            var samples = m.SamplesOf(name, type).ToList();
            Assert.True(samples.Count > 0, $"{name}: no samples\n{text}");
            foreach (var s in samples)
            {
                var expected = s.Name.EndsWith("_bucket") && type == "histogram" ? labels.Append("le") : labels;
                Assert.True(expected.Order().SequenceEqual(s.Labels.Keys.Order()),
                    $"{s.Name}: labels {{{string.Join(",", s.Labels.Keys)}}}, the SPEC says {{{string.Join(",", labels)}}}");
            }
        }
        // Nothing the SPEC (or the list beside it) does not name, so the catalogue stays whole.
        Assert.Empty(m.Types.Keys.Where(n => n.StartsWith("sparky_") && !Spec.ContainsKey(n) && !Extra.ContainsKey(n)));

        var ids = new[] { ok, bad };
        var leaks = m.Samples.Where(s => s.Labels.Values.Any(v => ids.Contains(v))).Select(s => s.Line).ToList();
        Assert.True(leaks.Count == 0, "label values hold task ids:\n" + string.Join("\n", leaks));

        // The values behind those labels.
        Assert.Equal(1, m.Value("sparky_tasks_completed_total", ("class", "cpu_short"), ("outcome", "succeeded")));
        Assert.Equal(1, m.Value("sparky_tasks_completed_total", ("class", "cpu_long"), ("outcome", "failed")));
        Assert.Equal(1, m.Value("sparky_tasks_submitted_total", ("class", "cpu_long")));
        Assert.Equal(1, m.Value("sparky_task_duration_seconds_count", ("class", "cpu_short")));
        Assert.Equal(0.25, m.Value("sparky_gpu_utilization_ratio", ("gpu", "0")));
        Assert.Equal(80L << 30, m.Value("sparky_gpu_memory_total_bytes", ("gpu", "0")));
        foreach (var o in new[] { "succeeded", "failed", "cancelled", "timeout" })
            Assert.Equal(0, m.Value("sparky_slurm_jobs_completed_total", ("outcome", o)));
        Assert.Equal(0, m.Value("sparky_slurm_jobs_submitted_total"));
    }

    [Fact]
    public async Task A_fresh_daemon_declares_every_family_before_anything_happened()
    {
        await using var d = await TestDaemon.StartAsync();
        var m = PromText.Parse(await d.Http.GetStringAsync("metrics"));
        // Counters without labels, and the Slurm outcomes, are there at 0 from the start.
        Assert.Equal(0, m.Value("sparky_slurm_jobs_submitted_total"));
        Assert.Equal(0, m.Value("sparky_slurm_poll_errors_total"));
        Assert.Equal(0, m.Value("sparky_workers_connected"));
        Assert.Equal(0, m.Value("sparky_slurm_jobs_completed_total", ("outcome", "timeout")));
        Assert.Equal(0, m.Value("sparky_workers_lost_total"));
        // The data dir's file system, as the alert on a nearly full disk reads it.
        var drive = new DriveInfo(d.DataDir);
        Assert.Equal(drive.TotalSize, m.Value("sparky_data_disk_total_bytes"));
        var free = m.Value("sparky_data_disk_free_bytes");
        Assert.True(free > 0 && free <= drive.TotalSize && Math.Abs(free - drive.AvailableFreeSpace) < 256L << 20,
            $"free {free} against {drive.AvailableFreeSpace} of {drive.TotalSize}");
        // The configured classes show their limits before any task.
        Assert.Equal(1, m.Value("sparky_concurrency_limit", ("class", "cpu_long")));
        // Families with no series yet (histograms before a task, GPUs before the sampler) are still declared.
        foreach (var (name, (type, _)) in Spec)
            Assert.True(m.Types.GetValueOrDefault(name) == type, $"{name}: no # TYPE {type} line on a fresh daemon");
    }

    [Fact]
    public async Task Gpus_that_disappear_are_removed_and_unknown_readings_are_not_reported_as_zero()
    {
        await using var d = await TestDaemon.StartAsync();
        d.Daemon.Metrics.SetGpus([("0", 0.5, 100, 1000), ("1", 0.75, 200, 1000)]);
        var m = PromText.Parse(await d.Http.GetStringAsync("metrics"));
        Assert.Equal(0.75, m.Value("sparky_gpu_utilization_ratio", ("gpu", "1")));
        Assert.Equal(200, m.Value("sparky_gpu_memory_used_bytes", ("gpu", "1")));

        d.Daemon.Metrics.SetGpus([("0", null, null, 1000)]);
        m = PromText.Parse(await d.Http.GetStringAsync("metrics"));
        Assert.Empty(m.Samples.Where(s => s.Labels.GetValueOrDefault("gpu") == "1"));
        Assert.Null(m.Find("sparky_gpu_utilization_ratio", ("gpu", "0")));
        Assert.Null(m.Find("sparky_gpu_memory_used_bytes", ("gpu", "0")));
        Assert.Equal(1000, m.Value("sparky_gpu_memory_total_bytes", ("gpu", "0")));
    }

    [Fact]
    public async Task Slurm_counters_count()
    {
        await using var d = await TestDaemon.StartAsync();
        var metrics = d.Daemon.Metrics;
        metrics.SlurmJobSubmitted();
        metrics.SlurmJobSubmitted();
        metrics.SlurmJobCompleted("timeout");
        metrics.SlurmPollError();
        Assert.Throws<ArgumentOutOfRangeException>(() => metrics.SlurmJobCompleted("job-1234"));
        var m = PromText.Parse(await d.Http.GetStringAsync("metrics"));
        Assert.Equal(2, m.Value("sparky_slurm_jobs_submitted_total"));
        Assert.Equal(1, m.Value("sparky_slurm_jobs_completed_total", ("outcome", "timeout")));
        Assert.Equal(0, m.Value("sparky_slurm_jobs_completed_total", ("outcome", "succeeded")));
        Assert.Equal(1, m.Value("sparky_slurm_poll_errors_total"));
        Assert.Equal(4, m.SamplesOf("sparky_slurm_jobs_completed_total", "counter").Count());
    }

    [Fact]
    public void The_parser_reads_escapes_timestamps_and_special_values()
    {
        var m = PromText.Parse("""
            # HELP x_total A "help" line.
            # TYPE x_total counter
            x_total{a="q\"uote",b="back\\slash",c="new\nline",d="comma, brace}"} 3 1700000000000
            x_total{a=""} +Inf
            # TYPE y gauge
            y NaN
            """);
        Assert.Equal("counter", m.Types["x_total"]);
        Assert.Equal(3, m.Value("x_total", ("a", "q\"uote"), ("b", "back\\slash"), ("c", "new\nline"), ("d", "comma, brace}")));
        Assert.Equal(double.PositiveInfinity, m.Value("x_total", ("a", "")));
        Assert.True(double.IsNaN(m.Value("y")));
        Assert.Throws<FormatException>(() => PromText.Parse("z{a=\"unterminated} 1"));
    }
}

/// <summary>A small parser for the Prometheus text exposition format (0.0.4).</summary>
internal sealed class PromText
{
    public sealed record Sample(string Name, Dictionary<string, string> Labels, double Value, string Line);

    public Dictionary<string, string> Types { get; } = [];
    public List<Sample> Samples { get; } = [];

    public static PromText Parse(string text)
    {
        var r = new PromText();
        foreach (var raw in text.Split('\n'))
        {
            var line = raw.TrimEnd('\r');
            if (line.Trim().Length == 0) continue;
            if (line.StartsWith('#'))
            {
                var parts = line.Split(' ', 4, StringSplitOptions.RemoveEmptyEntries);
                if (parts.Length >= 4 && parts[1] == "TYPE") r.Types[parts[2]] = parts[3].Trim();
                continue;
            }
            r.Samples.Add(ParseSample(line));
        }
        return r;
    }

    private static Sample ParseSample(string line)
    {
        int i = 0;
        while (i < line.Length && line[i] != '{' && line[i] != ' ') i++;
        var name = line[..i];
        var labels = new Dictionary<string, string>();
        if (i < line.Length && line[i] == '{')
        {
            i++;
            while (true)
            {
                while (i < line.Length && line[i] is ' ' or ',') i++;
                if (i >= line.Length) throw new FormatException($"unterminated labels: {line}");
                if (line[i] == '}') { i++; break; }
                int eq = line.IndexOf('=', i);
                if (eq < 0 || eq + 1 >= line.Length || line[eq + 1] != '"') throw new FormatException($"bad label: {line}");
                var key = line[i..eq].Trim();
                i = eq + 2;
                var value = new StringBuilder();
                while (true)
                {
                    if (i >= line.Length) throw new FormatException($"unterminated label value: {line}");
                    char c = line[i++];
                    if (c == '"') break;
                    if (c != '\\') { value.Append(c); continue; }
                    if (i >= line.Length) throw new FormatException($"bad escape: {line}");
                    char e = line[i++];
                    value.Append(e switch { 'n' => '\n', '\\' => '\\', '"' => '"', _ => throw new FormatException($"bad escape \\{e}: {line}") });
                }
                if (!labels.TryAdd(key, value.ToString())) throw new FormatException($"label {key} twice: {line}");
            }
        }
        var rest = line[i..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (name.Length == 0 || rest.Length is < 1 or > 2) throw new FormatException($"bad sample: {line}");
        var v = rest[0] switch
        {
            "+Inf" => double.PositiveInfinity,
            "-Inf" => double.NegativeInfinity,
            "NaN" => double.NaN,
            var s => double.Parse(s, NumberStyles.Float, CultureInfo.InvariantCulture),
        };
        return new Sample(name, labels, v, line);
    }

    /// <summary>The samples of a family: a histogram's are its _bucket, _sum and _count series.</summary>
    public IEnumerable<Sample> SamplesOf(string family, string type) => type == "histogram"
        ? Samples.Where(s => s.Name == family + "_bucket" || s.Name == family + "_sum" || s.Name == family + "_count")
        : Samples.Where(s => s.Name == family);

    public Sample? Find(string name, params (string Key, string Value)[] labels) =>
        Samples.SingleOrDefault(s => s.Name == name && s.Labels.Count == labels.Length && labels.All(l => s.Labels.GetValueOrDefault(l.Key) == l.Value));

    public double Value(string name, params (string Key, string Value)[] labels) =>
        (Find(name, labels) ?? throw new Xunit.Sdk.XunitException($"no sample {name}{{{string.Join(",", labels.Select(l => $"{l.Key}=\"{l.Value}\""))}}}")).Value;
}
