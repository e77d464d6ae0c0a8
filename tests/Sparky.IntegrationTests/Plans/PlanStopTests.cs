using System.Diagnostics;
using System.Text.Json.Nodes;
using Sparky.IntegrationTests.Support;

namespace Sparky.IntegrationTests.Plans;

/// <summary>Stopping a plan: a failed phase cancels the siblings it does not need, and <c>DELETE /api/v1/plans/{name}</c>
/// (<c>sparky plan delete</c>) stops a plan and forgets it.</summary>
public sealed class PlanStopTests
{
    private static async Task<string> TaskStateAsync(TestDaemon d, string id) => (string)(await d.GetTaskAsync(id))["state"]!;

    private static string TaskIdOf(JsonNode report, string phase, string workstream) =>
        (string)PlanHttp.Workstream(report, phase, workstream)["tasks"]![0]!["id"]!;

    [Fact]
    public async Task A_failed_workstream_stops_the_plan_at_once_and_cancels_its_running_continue_siblings()
    {
        await using var d = await TestDaemon.StartAsync();
        const string plan = """
            name: failfast
            phases:
              - name: one
                workstreams:
                  # A class of its own: the two run at once whatever cpu_short's limit is.
                  - {name: optional, run: sleep 60, on_failure: continue, class: cpu_long}
                  # It fails once the test has seen 'optional' run (0.3 s of sleep raced its start on a loaded machine).
                  - {name: bad, run: "while [ ! -e go ]; do sleep 0.05; done; exit 3"}
              - name: two
                workstreams:
                  - {name: later, run: echo later >> runs.log}
            """;
        Assert.Equal(202, (await PlanHttp.PostAsync(d.Http, plan, d.WorkDir)).Status);
        var running = await PlanHttp.UntilAsync(d.Http, "failfast", r => PlanHttp.Workstream(r, "one", "optional")["tasks"]![0]!["state"]?.ToString() == "running", 30);
        var optional = TaskIdOf(running, "one", "optional");
        File.WriteAllText(Path.Combine(d.WorkDir, "go"), "");

        // Not a minute later, when the optional sleep would end: as soon as 'bad' failed.
        var report = await PlanHttp.EndAsync(d.Http, "failfast", 40);
        Assert.Equal("stopped", (string?)report["status"]);
        Assert.Contains("'bad' failed", (string?)report["reason"]);
        var opt = PlanHttp.Workstream(report, "one", "optional");
        Assert.Equal("failed", (string?)opt["status"]);
        Assert.StartsWith("cancelled: workstream 'bad' failed", (string?)opt["reason"]);
        Assert.Equal("cancelled", (string?)(await d.WaitAsync(optional, 30))["state"]);
        Assert.Equal("blocked", (string?)PlanHttp.Phase(report, "two")["status"]);
        Assert.False(File.Exists(Path.Combine(d.WorkDir, "runs.log")));
    }

    private const string Held = """
        name: held
        phases:
          - name: one
            workstreams:
              - name: chain
                tasks:
                  - {name: first, run: "while [ ! -e release ]; do sleep 0.05; done; echo first >> runs.log"}
                  - {name: second, run: echo second >> runs.log, after: first}
          - name: two
            workstreams:
              - {name: last, run: echo last >> runs.log}
        """;

    [Fact]
    public async Task Deleting_a_plan_cancels_its_tasks_forgets_it_and_the_same_file_runs_again_from_nothing()
    {
        await using var d = await TestDaemon.StartAsync();
        Assert.Equal(202, (await PlanHttp.PostAsync(d.Http, Held, d.WorkDir)).Status);
        var running = await PlanHttp.UntilAsync(d.Http, "held", r => PlanHttp.Workstream(r, "one", "chain")["tasks"]![0]!["state"]?.ToString() == "running", 30);
        var first = (string)PlanHttp.Workstream(running, "one", "chain")["tasks"]![0]!["id"]!;
        var second = (string)PlanHttp.Workstream(running, "one", "chain")["tasks"]![1]!["id"]!;
        Assert.Equal("queued", await TaskStateAsync(d, second));
        Assert.True(File.Exists(Path.Combine(d.DataDir, "plans", "held", "report.json")));

        using (var resp = await d.Http.DeleteAsync("api/v1/plans/held"))
        {
            var body = JsonNode.Parse(await resp.Content.ReadAsStringAsync())!;
            Assert.Equal(200, (int)resp.StatusCode);
            Assert.Equal("held", (string?)body["name"]);
            Assert.True((int?)body["cancelled"] >= 1, body.ToJsonString());
        }
        Assert.Equal("cancelled", (string?)(await d.WaitAsync(first, 30))["state"]);
        Assert.Contains(await TaskStateAsync(d, second), new[] { "cancelled", "failed" }); // cancelled, or failed with its dependency
        using (var gone = await d.Http.GetAsync("api/v1/plans/held")) Assert.Equal(404, (int)gone.StatusCode);
        Assert.Empty((JsonArray)JsonNode.Parse(await d.Http.GetStringAsync("api/v1/plans"))!["plans"]!);
        Assert.False(Directory.Exists(Path.Combine(d.DataDir, "plans", "held")));
        using (var again = await d.Http.DeleteAsync("api/v1/plans/held"))
        {
            Assert.Equal(404, (int)again.StatusCode);
            Assert.Equal("application/problem+json", again.Content.Headers.ContentType?.MediaType);
        }

        // The same file again: a new run with fresh task ids, not the deleted run's cancelled tasks taken for its own.
        await File.WriteAllTextAsync(Path.Combine(d.WorkDir, "release"), "");
        Assert.Equal(202, (await PlanHttp.PostAsync(d.Http, Held, d.WorkDir)).Status);
        var report = await PlanHttp.EndAsync(d.Http, "held", 30);
        Assert.True((string?)report["status"] == "succeeded", report.ToJsonString());
        Assert.NotEqual(first, (string)PlanHttp.Workstream(report, "one", "chain")["tasks"]![0]!["id"]!);
        Assert.Equal(["first", "second", "last"], File.ReadAllLines(Path.Combine(d.WorkDir, "runs.log")));

        // A restart does not bring a deleted plan back.
        using (await d.Http.DeleteAsync("api/v1/plans/held")) { }
        Assert.Empty(d.Daemon.Store.LoadPlans());
    }

    [Fact]
    public async Task Deleting_a_plan_kills_its_running_gate_check()
    {
        await using var d = await TestDaemon.StartAsync();
        const string plan = """
            name: gated
            phases:
              - name: one
                workstreams:
                  - {name: w, run: "true"}
                gate:
                  - run: echo $$ > gate.pid; exec sleep 60
            """;
        Assert.Equal(202, (await PlanHttp.PostAsync(d.Http, plan, d.WorkDir)).Status);
        var pidFile = Path.Combine(d.WorkDir, "gate.pid");
        await Api.TaskLifecycleTests.WaitForAsync(() => File.Exists(pidFile) && File.ReadAllText(pidFile).Trim().Length > 0);
        int pid = int.Parse(File.ReadAllText(pidFile).Trim());
        Assert.True(Alive(pid));
        using (var resp = await d.Http.DeleteAsync("api/v1/plans/gated")) Assert.Equal(200, (int)resp.StatusCode);
        await Api.TaskLifecycleTests.WaitForAsync(() => !Alive(pid), 30);
    }

    /// <summary>Running and not a zombie (a zombie's stat says Z).</summary>
    private static bool Alive(int pid) => Hardening.ProcessTreeTests.Alive(pid);

    [Fact]
    public async Task The_cli_deletes_a_plan_and_one_that_follows_it_says_it_was_deleted()
    {
        await using var d = await TestDaemon.StartAsync();
        var file = Path.Combine(d.WorkDir, "held.yaml");
        await File.WriteAllTextAsync(file, Held);
        var server = new[] { "--server", d.Daemon.Url };

        using var follower = Process.Start(SparkyCli.StartInfo(["plan", "run", file, .. server]))!;
        follower.StandardInput.Close();
        var stdout = follower.StandardOutput.ReadToEndAsync();
        var stderr = follower.StandardError.ReadToEndAsync();
        try
        {
            await PlanHttp.UntilAsync(d.Http, "held", r => PlanHttp.Workstream(r, "one", "chain")["tasks"]![0]!["state"]?.ToString() == "running", 30);
            var deleted = await SparkyCli.RunAsync(["plan", "delete", "held", .. server]);
            Assert.True(deleted.ExitCode == 0, deleted.Stdout + deleted.Stderr);
            Assert.Contains("deleted plan held", deleted.Stdout);

            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            await follower.WaitForExitAsync(cts.Token);
            Assert.Equal(1, follower.ExitCode);
            Assert.Contains("plan held was deleted while it ran", await stderr);
        }
        finally
        {
            if (!follower.HasExited) follower.Kill(entireProcessTree: true);
        }
        _ = await stdout;

        var missing = await SparkyCli.RunAsync(["plan", "delete", "held", .. server]);
        Assert.Equal(1, missing.ExitCode);
        Assert.Contains("no plan 'held'", missing.Stderr);
    }
}
