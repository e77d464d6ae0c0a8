using System.Diagnostics;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Sparky.IntegrationTests.Metrics;
using Sparky.IntegrationTests.Support;

namespace Sparky.IntegrationTests.Deploy;

/// <summary>
/// What operators watch Sparky with (deploy/), checked without Grafana but with the real promtool and a live daemon:
/// the alert rules compile and pass their unit tests, the Grafana dashboard is well formed, every PromQL expression in
/// it compiles, every metric it or the alerts name is one a daemon serves, and the daemon's /metrics passes promtool's lint.
/// </summary>
public sealed partial class MonitoringTests
{
    private static string Deploy => Path.Combine(SlurmCluster.RepoRoot(), "deploy");
    private static string Dashboard => Path.Combine(Deploy, "grafana", "sparky.json");
    private static string Alerts => Path.Combine(Deploy, "prometheus", "alerts.yml");

    [Fact]
    public async Task The_alert_rules_compile_and_pass_their_unit_tests()
    {
        var check = await PromtoolAsync(["check", "rules", Alerts]);
        Assert.True(check.Code == 0, check.Output);
        Assert.Contains("SUCCESS: 7 rules found", check.Output);
        var test = await PromtoolAsync(["test", "rules", Path.Combine(Deploy, "prometheus", "alerts.test.yml")]);
        Assert.True(test.Code == 0, test.Output);
        // The scrape config, with its token file (a secret compose mounts) made here: promtool checks that it exists.
        var dir = Path.Combine(Path.GetTempPath(), "sparky-prometheus-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(dir);
        try
        {
            var token = Path.Combine(dir, "sparky-token");
            File.WriteAllText(token, "not-a-real-token\n");
            var yml = File.ReadAllText(Path.Combine(Deploy, "prometheus", "prometheus.yml"));
            Assert.Contains("credentials_file: /etc/prometheus/sparky-token", yml);
            File.WriteAllText(Path.Combine(dir, "prometheus.yml"), yml.Replace("/etc/prometheus/sparky-token", token));
            File.Copy(Alerts, Path.Combine(dir, "alerts.yml"));
            var config = await PromtoolAsync(["check", "config", Path.Combine(dir, "prometheus.yml")]);
            Assert.True(config.Code == 0, config.Output);
            Assert.Contains("SUCCESS: 7 rules found", config.Output);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void The_dashboard_has_a_uid_a_title_and_panels_with_unique_ids_on_the_grid_without_overlap()
    {
        var d = JsonNode.Parse(File.ReadAllText(Dashboard))!;
        Assert.False(string.IsNullOrWhiteSpace((string?)d["uid"]));
        Assert.False(string.IsNullOrWhiteSpace((string?)d["title"]));
        var panels = d["panels"]!.AsArray().Select(p => p!).ToList();
        Assert.True(panels.Count >= 10, $"{panels.Count} panels");
        Assert.Equal(panels.Count, panels.Select(p => (int)p["id"]!).Distinct().Count());
        var cells = new HashSet<(int, int)>();
        foreach (var p in panels)
        {
            var g = p["gridPos"]!;
            int x = (int)g["x"]!, y = (int)g["y"]!, w = (int)g["w"]!, h = (int)g["h"]!;
            Assert.True(x >= 0 && w > 0 && x + w <= 24 && y >= 0 && h > 0, $"panel {p["id"]}: gridPos {g.ToJsonString()} is off Grafana's 24 columns");
            for (int i = x; i < x + w; i++)
                for (int j = y; j < y + h; j++)
                    Assert.True(cells.Add((i, j)), $"panel {p["id"]} ({p["title"]}) overlaps another at column {i}, row {j}");
            Assert.False(string.IsNullOrWhiteSpace((string?)p["title"]), $"panel {p["id"]} has no title");
            Assert.NotEmpty(p["targets"]!.AsArray());
        }
        // What the issue asks the dashboard to show.
        var titles = string.Join(" | ", panels.Select(p => ((string)p["title"]!).ToLowerInvariant()));
        foreach (var topic in new[] { "queued", "running", "throughput", "queue wait", "run time", "concurrency limit", "gpu utilisation", "gpu memory", "slurm", "workers" })
            Assert.Contains(topic, titles);
    }

    [Fact]
    public async Task Every_dashboard_query_compiles_as_a_recording_rule()
    {
        var rules = new StringBuilder("groups:\n  - name: dashboard\n    rules:\n");
        int n = 0;
        foreach (var expr in DashboardExpressions())
        {
            // Grafana's variables, as Grafana would fill them in.
            var promql = expr.Replace("$__rate_interval", "5m").Replace("$instance", ".*");
            rules.Append($"      - record: dashboard:panel_{++n}\n        expr: {JsonValue.Create(promql).ToJsonString()}\n");
        }
        Assert.True(n >= 15, $"{n} expressions");
        var file = Path.Combine(Path.GetTempPath(), $"sparky-dashboard-rules-{Guid.NewGuid():N}.yml");
        File.WriteAllText(file, rules.ToString());
        try
        {
            var check = await PromtoolAsync(["check", "rules", file]);
            Assert.True(check.Code == 0, check.Output + "\n" + rules);
            Assert.Contains($"SUCCESS: {n} rules found", check.Output);
        }
        finally { File.Delete(file); }
    }

    [Fact]
    public async Task Every_metric_the_dashboard_and_the_alerts_name_is_served_and_the_metrics_pass_promtools_lint()
    {
        await using var d = await TestDaemon.StartAsync();
        // A task and GPU readings, so that every family has series (histograms, GPUs).
        var id = await d.SubmitShellAsync("true");
        Assert.Equal("succeeded", (string?)(await d.WaitAsync(id))["state"]);
        d.Daemon.Metrics.SetGpus([("0", 0.5, 1L << 30, 80L << 30)]);
        var text = await d.Http.GetStringAsync("metrics");
        var served = PromText.Parse(text).Types.Keys.ToHashSet();

        var named = DashboardExpressions().Concat(AlertExpressions())
            .SelectMany(e => MetricName().Matches(e).Select(m => m.Value))
            .Select(name => Regex.Replace(name, "_(bucket|count|sum)$", ""))
            .ToHashSet();
        Assert.True(named.Count >= 14, string.Join(", ", named));
        var missing = named.Where(n => !served.Contains(n)).ToList();
        Assert.True(missing.Count == 0, $"named but not served: {string.Join(", ", missing)}");

        var lint = await PromtoolAsync(["check", "metrics"], stdin: text);
        Assert.True(lint.Code == 0 && lint.Output.Trim().Length == 0, $"promtool check metrics:\n{lint.Output}");
    }

    private static IEnumerable<string> DashboardExpressions() =>
        JsonNode.Parse(File.ReadAllText(Dashboard))!["panels"]!.AsArray()
            .SelectMany(p => p!["targets"]!.AsArray()).Select(t => (string)t!["expr"]!);

    /// <summary>The alert rules' expressions (YAML: each `expr:` line, or the indented block under `expr: |`).</summary>
    private static IEnumerable<string> AlertExpressions()
    {
        var lines = File.ReadAllLines(Alerts);
        for (int i = 0; i < lines.Length; i++)
        {
            var t = lines[i].Trim();
            if (!t.StartsWith("expr:", StringComparison.Ordinal)) continue;
            var rest = t["expr:".Length..].Trim();
            if (rest != "|") { yield return rest; continue; }
            var block = new StringBuilder();
            while (i + 1 < lines.Length && lines[i + 1].StartsWith("          ", StringComparison.Ordinal)) block.AppendLine(lines[++i]);
            yield return block.ToString();
        }
    }

    [GeneratedRegex(@"\b(sparky|env|orchestrator)_[a-z_]+\b")]
    private static partial Regex MetricName();

    private static async Task<(int Code, string Output)> PromtoolAsync(string[] args, string? stdin = null)
    {
        var binary = (Environment.GetEnvironmentVariable("PATH") ?? "/usr/bin").Split(':').Select(d => Path.Combine(d, "promtool")).FirstOrDefault(File.Exists)
            ?? throw new Xunit.Sdk.XunitException(Environment.GetEnvironmentVariable("CI") == "true"
                ? "promtool is not installed on this CI machine; test.sh installs it (Debian's prometheus) when run as root"
                : "promtool is not installed: run test.sh as root, or apt-get install --no-install-recommends prometheus");
        var psi = new ProcessStartInfo(binary) { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = stdin is not null };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        if (stdin is not null)
        {
            await p.StandardInput.WriteAsync(stdin);
            p.StandardInput.Close();
        }
        var output = p.StandardOutput.ReadToEndAsync();
        var error = p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync();
        return (p.ExitCode, await output + await error);
    }
}
