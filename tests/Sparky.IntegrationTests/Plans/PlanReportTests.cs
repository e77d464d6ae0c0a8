using System.Text.Json.Nodes;
using Sparky.IntegrationTests.Support;

namespace Sparky.IntegrationTests.Plans;

/// <summary>The plan report (<c>GET /api/v1/plans/{name}</c>, which <c>plan run</c> polls every 300 ms) reads its tasks at once.</summary>
public sealed class PlanReportTests
{
    [Fact]
    public async Task The_report_reads_all_its_tasks_in_one_store_read_not_one_per_task()
    {
        await using var d = await TestDaemon.StartAsync();
        const string plan = """
            name: wide
            phases:
              - name: one
                workstreams:
                  - {name: fan, run: "true", array: 0-39}
                  - name: chain
                    tasks:
                      - {name: a, run: "true"}
                      - {name: b, run: "exit 0", after: a}
                  - {name: solo, run: "true"}
            """;
        Assert.Equal(202, (await PlanHttp.PostAsync(d.Http, plan, d.WorkDir)).Status);
        Assert.Equal("succeeded", (string?)(await PlanHttp.EndAsync(d.Http, "wide"))["status"]);

        long before = d.Daemon.Store.Reads;
        var report = await PlanHttp.GetAsync(d.Http, "wide");
        long reads = d.Daemon.Store.Reads - before;
        // 43 tasks; one read for all of them (a little room for a read of the daemon's own at the same moment).
        Assert.True(reads <= 3, $"{reads} store reads for one report");

        // And the report still says what each task did.
        var fan = PlanHttp.Workstream(report, "one", "fan")["tasks"]![0]!;
        Assert.Equal("succeeded", (string?)fan["state"]);
        var elements = (JsonArray)fan["elements"]!;
        Assert.Equal(40, elements.Count);
        Assert.All(elements, e => Assert.Equal("succeeded", (string?)e!["state"]));
        Assert.All(elements, e => Assert.Equal(1, (int?)e!["attempts"]));
        Assert.All(elements, e => Assert.Equal(0, (int?)e!["exit_code"]));
        Assert.All(elements, e => Assert.NotNull(e!["duration_seconds"]));
        var chain = (JsonArray)PlanHttp.Workstream(report, "one", "chain")["tasks"]!;
        Assert.Equal(["succeeded", "succeeded"], chain.Select(t => (string?)t!["state"]));
        Assert.All(chain, t => Assert.StartsWith("wide.one.chain.", (string?)t!["id"]));
    }
}
