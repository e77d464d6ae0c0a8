using System.Diagnostics;
using System.Text.Json.Nodes;
using Sparky.IntegrationTests.Support;
using Xunit.Abstractions;

namespace Sparky.IntegrationTests.Metrics;

/// <summary>A real Prometheus scrapes a real daemon: the exposition parses and the counts arrive intact.</summary>
[Collection(SerialCollection.Name)]
public sealed class PrometheusTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Prometheus_scrapes_the_completed_counts_by_class_and_outcome()
    {
        var binary = PrometheusServer.Find() ?? throw new Xunit.Sdk.XunitException(
            Environment.GetEnvironmentVariable("CI") == "true"
                ? "prometheus is not installed on this CI machine; test.sh installs it (apt-get install prometheus) when run as root"
                : "prometheus is not installed: run test.sh as root, or apt-get install --no-install-recommends prometheus (or set PROMETHEUS=/path/to/prometheus)");
        var clock = Stopwatch.StartNew();
        await using var d = await TestDaemon.StartAsync();
        await using var prom = await PrometheusServer.StartAsync(binary, new Uri(d.Daemon.Url).Authority);

        var ids = new List<string>
        {
            await d.SubmitShellAsync("true"),
            await d.SubmitShellAsync("true"),
            await d.SubmitShellAsync("exit 1"),
            await d.SubmitShellAsync("true", cls: "cpu_long"),
            await d.SubmitShellAsync("exit 4", cls: "cpu_long"),
            await d.SubmitShellAsync("exit 5", cls: "cpu_long"),
        };
        foreach (var id in ids) await d.WaitAsync(id);
        var expected = new Dictionary<(string, string), double>
        {
            [("cpu_short", "succeeded")] = 2,
            [("cpu_short", "failed")] = 1,
            [("cpu_long", "succeeded")] = 1,
            [("cpu_long", "failed")] = 2,
        };

        // Nonzero series only: every known class also has its outcomes at 0.
        Dictionary<(string, string), double> seen = [];
        JsonArray? last = null;
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (true)
        {
            last = await prom.QueryAsync("sparky_tasks_completed_total");
            seen = last.Select(r => r!).Where(r => (string?)r["metric"]!["job"] == "sparky")
                .Select(r => (Key: ((string)r["metric"]!["class"]!, (string)r["metric"]!["outcome"]!), Value: double.Parse((string)r["value"]![1]!, System.Globalization.CultureInfo.InvariantCulture)))
                .Where(x => x.Value != 0).ToDictionary(x => x.Key, x => x.Value);
            if (seen.Count == expected.Count && expected.All(e => seen.GetValueOrDefault(e.Key) == e.Value)) break;
            if (DateTime.UtcNow > deadline)
                Assert.Fail($"Prometheus did not see the expected counts in 60 s.\nexpected: {Show(expected)}\nseen: {Show(seen)}\n" +
                    $"last result: {last.ToJsonString()}\ntargets: {await prom.TargetsAsync()}\nprometheus stderr:\n{prom.Stderr}");
            await Task.Delay(250);
        }

        // The scrape itself was healthy, and the other families made it through the same parser.
        var up = await prom.QueryAsync("up{job=\"sparky\"}");
        Assert.Equal("1", (string?)Assert.Single(up)!["value"]![1]);
        var submitted = await prom.QueryAsync("sum(sparky_tasks_submitted_total)");
        Assert.Equal("6", (string?)Assert.Single(submitted)!["value"]![1]);
        var slurm = await prom.QueryAsync("sparky_slurm_jobs_completed_total");
        Assert.Equal(["cancelled", "failed", "succeeded", "timeout"], slurm.Select(r => (string)r!["metric"]!["outcome"]!).Order());
        output.WriteLine($"prometheus saw the counts {clock.Elapsed.TotalSeconds:F1} s after the daemon started");
    }

    private static string Show(Dictionary<(string, string), double> d) =>
        string.Join(", ", d.OrderBy(x => x.Key).Select(x => $"{x.Key.Item1}/{x.Key.Item2}={x.Value}"));
}
