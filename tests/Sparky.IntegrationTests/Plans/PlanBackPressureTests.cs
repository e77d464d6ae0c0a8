using System.Text.Json.Nodes;
using Sparky.IntegrationTests.Support;
using Xunit.Abstractions;

namespace Sparky.IntegrationTests.Plans;

/// <summary>
/// A plan whose submission the daemon refuses for now (429: its queue is full; 503: its store cannot write) waits and
/// tries again with a bounded backoff: the workstream stays pending, the plan says what it waits for, and nothing
/// fails. A workstream that could never fit the queue still fails at once.
/// </summary>
public sealed class PlanBackPressureTests(ITestOutputHelper output)
{
    [Fact]
    public async Task A_full_queue_makes_a_plan_wait_and_retry_instead_of_failing_the_workstream()
    {
        await using var d = await TestDaemon.StartAsync(new() { ["max_queued"] = "2" });
        // Two tasks queued behind a running one: the queue is at its bound.
        var blocker = await d.SubmitShellAsync("sleep 60");
        await Api.TaskLifecycleTests.WaitForAsync(async () => (string?)(await d.GetTaskAsync(blocker))["state"] == "running");
        var fillers = new[] { await d.SubmitShellAsync("true", after: [blocker]), await d.SubmitShellAsync("true", after: [blocker]) };

        const string plan = """
            name: patient
            phases:
              - name: one
                workstreams:
                  - {name: w, run: echo w >> runs.log}
              - name: two
                workstreams:
                  - {name: x, run: echo x >> runs.log}
            """;
        Assert.Equal(202, (await PlanHttp.PostAsync(d.Http, plan, d.WorkDir)).Status);
        var waiting = await PlanHttp.UntilAsync(d.Http, "patient", r => r["waiting"] is not null || (string?)r["status"] != "running", 30);
        output.WriteLine(waiting.ToJsonString());
        Assert.Equal("running", (string?)waiting["status"]);
        Assert.Contains("queue is full", (string?)waiting["waiting"]);
        Assert.Contains("(429)", (string?)waiting["waiting"]);
        var w = PlanHttp.Workstream(waiting, "one", "w");
        Assert.Equal("pending", (string?)w["status"]);
        Assert.Equal(429, (int?)w["waiting"]!["status"]);
        Assert.True((long?)w["waiting"]!["retry_at"] > (long?)w["waiting"]!["since"]);
        Assert.Equal("not_submitted", (string?)w["tasks"]![0]!["state"]);
        var summary = JsonNode.Parse(await d.Http.GetStringAsync("api/v1/plans"))!["plans"]![0]!;
        Assert.Contains("queue is full", (string?)summary["waiting"]);

        // It keeps waiting (tries again, still refused) without failing ...
        var again = await PlanHttp.UntilAsync(d.Http, "patient", r => (int?)PlanHttp.Workstream(r, "one", "w")["waiting"]?["tries"] >= 2, 30);
        Assert.Equal("running", (string?)again["status"]);

        // ... and once the queue drains, it goes on, with the same attempt (the workstream never failed).
        using (await d.Http.DeleteAsync($"api/v1/tasks/{blocker}")) { }
        foreach (var f in fillers) await d.WaitAsync(f);
        var done = await PlanHttp.EndAsync(d.Http, "patient", 60);
        Assert.True((string?)done["status"] == "succeeded", done.ToJsonString());
        Assert.Null(done["waiting"]);
        Assert.Equal(1, (int?)PlanHttp.Workstream(done, "one", "w")["attempt"]);
        Assert.Equal(["w", "x"], File.ReadAllLines(Path.Combine(d.WorkDir, "runs.log")));
    }

    [Fact]
    public async Task A_workstream_larger_than_the_queue_bound_fails_at_once_since_waiting_cannot_help()
    {
        await using var d = await TestDaemon.StartAsync(new() { ["max_queued"] = "2" });
        const string plan = """
            name: toobig
            phases:
              - name: one
                workstreams:
                  - {name: wide, run: "true", array: 0-4}
            """;
        Assert.Equal(202, (await PlanHttp.PostAsync(d.Http, plan, d.WorkDir)).Status);
        var report = await PlanHttp.EndAsync(d.Http, "toobig", 30);
        Assert.Equal("stopped", (string?)report["status"]);
        Assert.Contains("more than the queue's bound of 2", (string?)report["reason"]);
        Assert.Null(report["waiting"]);
    }

    [Fact]
    public async Task A_store_that_cannot_write_makes_a_plan_wait_and_it_goes_on_once_it_can()
    {
        var root = TestDaemon.NewRoot();
        var data = Path.Combine(root, "data");
        if (!Tmpfs.TryMount(data, "8m", output)) return;
        try
        {
            await using (var d = await TestDaemon.StartAsync(root: root))
            {
                // Phase one's task fills the data disk to all but ~150 KB as it ends (its small end still commits);
                // phase two's task carries 300 KB of env, which the store cannot take then: 503.
                var pad = new string('x', 100_000);
                var plan = $$"""
                    name: full
                    phases:
                      - name: one
                        workstreams:
                          - name: fill
                            run: 'head -c $(( $(df --output=avail -B1 "{{data}}" | tail -1) - 150000 )) /dev/zero > "{{data}}/filler"'
                      - name: two
                        workstreams:
                          - name: big
                            run: echo big >> runs.log
                            env: {PAD1: {{pad}}, PAD2: {{pad}}, PAD3: {{pad}}}
                    """;
                Assert.Equal(202, (await PlanHttp.PostAsync(d.Http, plan, d.WorkDir)).Status);
                var waiting = await PlanHttp.UntilAsync(d.Http, "full", r => r["waiting"] is not null || (string?)r["status"] != "running", 30);
                output.WriteLine(waiting.ToJsonString());
                Assert.Equal("running", (string?)waiting["status"]);
                var big = PlanHttp.Workstream(waiting, "two", "big");
                Assert.Equal("pending", (string?)big["status"]);
                Assert.Equal(503, (int?)big["waiting"]!["status"]);
                Assert.Contains("store", (string?)big["waiting"]!["reason"]);

                File.Delete(Path.Combine(data, "filler"));
                var done = await PlanHttp.EndAsync(d.Http, "full", 60);
                Assert.True((string?)done["status"] == "succeeded", done.ToJsonString());
                Assert.Equal(["big"], File.ReadAllLines(Path.Combine(d.WorkDir, "runs.log")));
            }
        }
        finally
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            Tmpfs.Unmount(data);
            try { Directory.Delete(root, true); } catch (IOException) { }
        }
    }
}
