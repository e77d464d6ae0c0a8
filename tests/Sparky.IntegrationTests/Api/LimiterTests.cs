using System.Text.Json.Nodes;
using Sparky.IntegrationTests.Support;

namespace Sparky.IntegrationTests.Api;

/// <summary>A class's adaptive limit, driven by real task outcomes and read back through /metrics.</summary>
public sealed class LimiterTests
{
    private static async Task<double> LimitAsync(TestDaemon d, string cls)
    {
        var line = (await d.Http.GetStringAsync("metrics")).Split('\n')
            .Single(l => l.StartsWith($"sparky_concurrency_limit{{class=\"{cls}\"}} ", StringComparison.Ordinal));
        return double.Parse(line.Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture);
    }

    [Fact]
    public async Task Failures_under_a_backlog_bring_the_limit_down_and_the_tasks_still_all_run()
    {
        await using var d = await TestDaemon.StartAsync(new() { ["cpu_long_slots"] = "8", ["cpu_long_min_slots"] = "2" });
        Assert.Equal(8, await LimitAsync(d, "cpu_long"));
        var body = new JsonArray();
        for (int i = 0; i < 60; i++)
            body.Add(new JsonObject { ["class"] = "cpu_long", ["payload"] = new JsonObject { ["command"] = "sleep 0.05; exit 1", ["cwd"] = d.WorkDir } });
        var ids = await d.SubmitAsync(body);
        foreach (var id in ids) Assert.Equal("failed", (string?)(await d.WaitAsync(id, 60))["state"]);
        double limit = await LimitAsync(d, "cpu_long");
        Assert.InRange(limit, 2, 7);
    }

    [Fact]
    public async Task A_fixed_limiter_does_not_move()
    {
        await using var d = await TestDaemon.StartAsync(new() { ["cpu_long_slots"] = "4", ["cpu_long_limiter"] = "fixed" });
        var body = new JsonArray();
        for (int i = 0; i < 30; i++)
            body.Add(new JsonObject { ["class"] = "cpu_long", ["payload"] = new JsonObject { ["command"] = "exit 1", ["cwd"] = d.WorkDir } });
        foreach (var id in await d.SubmitAsync(body)) await d.WaitAsync(id, 60);
        Assert.Equal(4, await LimitAsync(d, "cpu_long"));
    }
}
