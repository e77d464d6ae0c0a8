using System.Text;
using System.Text.Json.Nodes;
using Sparky.IntegrationTests.Support;

namespace Sparky.IntegrationTests.Plans;

/// <summary>Plans (SPEC §5) on a real daemon with real processes: end to end, a failing gate, resume, bad files, kill -9.</summary>
[Collection(SerialCollection.Name)]
public sealed class PlanRunTests
{
    private static async Task<(int Status, JsonNode? Body)> PostPlanAsync(HttpClient http, string text, string baseDir, string? path = null, string? from = null)
    {
        var body = new JsonObject { ["text"] = text, ["base_dir"] = baseDir, ["path"] = path ?? Path.Combine(baseDir, "plan.yaml") };
        if (from is not null) body["from"] = from;
        using var resp = await http.PostAsync("api/v1/plans", new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json"));
        var s = await resp.Content.ReadAsStringAsync();
        return ((int)resp.StatusCode, s.Length > 0 ? JsonNode.Parse(s) : null);
    }

    private static async Task<JsonNode> WaitPlanAsync(HttpClient http, string name, double seconds = 60)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (true)
        {
            var r = JsonNode.Parse(await http.GetStringAsync($"api/v1/plans/{name}"))!;
            if ((string?)r["status"] is "succeeded" or "stopped") return r;
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"plan {name} still running: {r.ToJsonString()}");
            await Task.Delay(50);
        }
    }

    private static string[] Runs(string dir) =>
        File.Exists(Path.Combine(dir, "runs.log")) ? File.ReadAllLines(Path.Combine(dir, "runs.log")).Where(l => l.Length > 0).Order().ToArray() : [];

    private static JsonNode Phase(JsonNode report, string name) => ((JsonArray)report["phases"]!).First(p => (string?)p!["name"] == name)!;

    [Fact]
    public async Task A_plan_runs_two_phases_with_a_fan_out_and_a_metric_gate_and_writes_its_report()
    {
        await using var d = await TestDaemon.StartAsync();
        const string plan = """
            name: e2e
            phases:
              - name: prep
                workstreams:
                  - {name: a, run: echo a >> runs.log}
                  - {name: b, run: echo b >> runs.log}
                  - name: metrics
                    run: "mkdir -p out && echo '{\"eval\": {\"acc\": 0.9}}' > out/eval.json && echo m >> runs.log"
                gate:
                  - metric: {file: out/eval.json, path: eval.acc, min: 0.8}
              - name: train
                workstreams:
                  - name: t
                    tasks:
                      - {name: one, run: echo t1 >> runs.log}
                      - {name: two, run: echo t2 >> runs.log, after: one}
                gate:
                  - run: test -s runs.log && echo gate-ok
            """;
        using var events = d.Daemon.Events.Subscribe(filter: e => e.Topic is "plan.phase" or "gate.result");
        var (status, body) = await PostPlanAsync(d.Http, plan, d.WorkDir);
        Assert.Equal(202, status);
        Assert.Equal("e2e", (string?)body!["name"]);
        var report = await WaitPlanAsync(d.Http, "e2e");
        Assert.Equal("succeeded", (string?)report["status"]);

        // plan.phase for each phase's steps and gate.result per gate, in order.
        var seen = new List<string>();
        while (events.Reader.TryRead(out var e))
            seen.Add(e.Topic == "gate.result"
                ? $"gate {(string?)e.Body["phase"]} {((bool)e.Body["passed"]! ? "passed" : "failed")}"
                : $"phase {(string?)e.Body["phase"]} {(string?)e.Body["status"]}");
        Assert.Equal(["phase prep started", "phase prep gating", "gate prep passed", "phase prep passed",
                      "phase train started", "phase train gating", "gate train passed", "phase train passed"],
            seen.Where(x => !x.EndsWith("running")).ToList());
        Assert.Equal(["a", "b", "m", "t1", "t2"], Runs(d.WorkDir));
        var prep = Phase(report, "prep");
        Assert.Equal("passed", (string?)prep["status"]);
        Assert.True((bool)prep["gate"]!["checks"]![0]!["passed"]!);
        var task = prep["workstreams"]![0]!["tasks"]![0]!;
        Assert.Equal("succeeded", (string?)task["state"]);
        Assert.NotNull(task["duration_seconds"]);
        Assert.Contains("gate-ok", (string?)Phase(report, "train")["gate"]!["checks"]![0]!["output"]);

        var file = Path.Combine(d.DataDir, "plans", "e2e", "report.json");
        Assert.True(File.Exists(file));
        Assert.Equal("succeeded", (string?)JsonNode.Parse(await File.ReadAllTextAsync(file))!["status"]);

        var list = JsonNode.Parse(await d.Http.GetStringAsync("api/v1/plans"))!;
        Assert.Equal("succeeded", (string?)list["plans"]![0]!["status"]);
        using var missing = await d.Http.GetAsync("api/v1/plans/nope");
        Assert.Equal(404, (int)missing.StatusCode);
    }

    private const string Gated = """
        name: gated
        phases:
          - name: one
            workstreams:
              - {name: a, run: echo a >> runs.log}
              - {name: b, run: echo b >> runs.log}
            gate:
              - file: {path: ready.txt, non_empty: true}
          - name: two
            workstreams:
              - {name: c, run: echo c >> runs.log}
        """;

    [Fact]
    public async Task A_failing_gate_stops_the_plan_and_a_second_run_resumes_from_the_failed_phase()
    {
        await using var d = await TestDaemon.StartAsync();
        Assert.Equal(202, (await PostPlanAsync(d.Http, Gated, d.WorkDir)).Status);
        var report = await WaitPlanAsync(d.Http, "gated");
        Assert.Equal("stopped", (string?)report["status"]);
        Assert.Equal("one", (string?)report["current_phase"]);
        Assert.Contains("ready.txt", (string?)report["reason"]);
        Assert.Equal("failed", (string?)Phase(report, "one")["status"]);
        Assert.Equal("blocked", (string?)Phase(report, "two")["status"]);
        Assert.Equal(["a", "b"], Runs(d.WorkDir));

        await File.WriteAllTextAsync(Path.Combine(d.WorkDir, "ready.txt"), "yes\n");
        Assert.Equal(202, (await PostPlanAsync(d.Http, Gated, d.WorkDir)).Status);
        report = await WaitPlanAsync(d.Http, "gated");
        Assert.Equal("succeeded", (string?)report["status"]);
        Assert.Equal(["a", "b", "c"], Runs(d.WorkDir)); // a and b not run again

        // --from forces the phase and everything after it.
        Assert.Equal(202, (await PostPlanAsync(d.Http, Gated, d.WorkDir, from: "two")).Status);
        report = await WaitPlanAsync(d.Http, "gated");
        Assert.Equal("succeeded", (string?)report["status"]);
        Assert.Equal(["a", "b", "c", "c"], Runs(d.WorkDir));
    }

    [Fact]
    public async Task A_failed_workstream_stops_the_phase_and_a_running_plan_is_refused()
    {
        await using var d = await TestDaemon.StartAsync();
        const string plan = """
            name: failing
            phases:
              - name: one
                workstreams:
                  - {name: slow, run: sleep 1}
                  - {name: bad, run: exit 3}
              - name: two
                workstreams:
                  - {name: c, run: echo c >> runs.log}
            """;
        Assert.Equal(202, (await PostPlanAsync(d.Http, plan, d.WorkDir)).Status);
        var (again, _) = await PostPlanAsync(d.Http, plan, d.WorkDir);
        Assert.Equal(409, again);
        var report = await WaitPlanAsync(d.Http, "failing");
        Assert.Equal("stopped", (string?)report["status"]);
        Assert.Contains("'bad' failed", (string?)report["reason"]);
        Assert.Equal("blocked", (string?)Phase(report, "two")["status"]);
        Assert.Empty(Runs(d.WorkDir));
    }

    [Fact]
    public async Task A_bad_plan_file_is_refused_with_every_error_at_its_line_and_column()
    {
        await using var d = await TestDaemon.StartAsync();
        const string plan = """
            name: bad
            colour: blue
            phases:
              - name: one
                workstreams:
                  - {name: a, run: echo a, class: no_such_class}
              - name: empty
                workstreams: []
            """;
        var (status, body) = await PostPlanAsync(d.Http, plan, d.WorkDir, path: Path.Combine(d.WorkDir, "bad.yaml"));
        Assert.Equal(400, status);
        var detail = (string)body!["detail"]!;
        Assert.Matches(@"bad\.yaml:2:1: .*colour", detail);
        Assert.True(detail.Contains("bad.yaml:8:"), detail); // the empty phase
        Assert.True(((JsonArray)body["errors"]!).Count >= 2, detail);

        // Classes are checked against the daemon's once the file itself is fine.
        var (s2, b2) = await PostPlanAsync(d.Http, "name: cls\nphases:\n  - name: one\n    workstreams:\n      - {name: a, run: echo a, class: no_such_class}\n", d.WorkDir);
        Assert.Equal(400, s2);
        Assert.Matches(@"plan\.yaml:5:\d+: unknown class 'no_such_class'", (string)b2!["detail"]!);
    }

    [Fact]
    public async Task A_restart_mid_plan_resumes_without_running_a_finished_workstream_again()
    {
        var root = TestDaemon.NewRoot();
        var work = Path.Combine(root, "work");
        const string plan = """
            name: crash
            phases:
              - name: one
                workstreams:
                  - {name: a, run: echo a >> runs.log}
              - name: two
                workstreams:
                  - {name: slow, run: "sleep 2 && echo slow >> runs.log", retries: 2}
              - name: three
                workstreams:
                  - {name: c, run: echo c >> runs.log}
            """;
        int port = SparkyCli.FreePort();
        var p = await DaemonProcess.StartAsync(Path.Combine(root, "data"), port);
        try
        {
            Assert.Equal(202, (await PostPlanAsync(p.Http, plan, work)).Status);
            var deadline = DateTime.UtcNow.AddSeconds(30);
            while (!Runs(work).Contains("a"))
            {
                Assert.True(DateTime.UtcNow < deadline, "phase one never ran");
                await Task.Delay(20);
            }
            await Task.Delay(300); // phase two's task is running
            p.KillHard();
        }
        finally { await p.DisposeAsync(); }

        p = await DaemonProcess.StartAsync(Path.Combine(root, "data"), port);
        try
        {
            JsonNode report;
            try { report = await WaitPlanAsync(p.Http, "crash", 30); }
            catch (Exception e) when (e is TimeoutException or HttpRequestException) { throw new TimeoutException(e.Message + "\nstderr: " + p.Stderr); }
            Assert.True((string?)report["status"] == "succeeded", report.ToJsonString() + "\nstderr: " + p.Stderr);
            var runs = Runs(work);
            Assert.Equal(1, runs.Count(r => r == "a"));
            Assert.Equal(1, runs.Count(r => r == "c"));
            Assert.Contains("slow", runs);
        }
        finally
        {
            await p.DisposeAsync();
            try { Directory.Delete(root, true); } catch (IOException) { }
        }
    }

    [Fact]
    public async Task The_cli_runs_a_plan_follows_it_and_shows_its_status()
    {
        await using var d = await TestDaemon.StartAsync();
        var file = Path.Combine(d.WorkDir, "gated.yaml");
        await File.WriteAllTextAsync(file, Gated);
        var server = new[] { "--server", d.Daemon.Url };

        var stopped = await SparkyCli.RunAsync(["plan", "run", file, .. server]);
        Assert.True(stopped.ExitCode == 1, stopped.Stdout + stopped.Stderr);
        Assert.Contains("stopped at phase one:", stopped.Stderr);
        Assert.Contains("phase two: blocked", stopped.Stdout);

        await File.WriteAllTextAsync(Path.Combine(d.WorkDir, "ready.txt"), "yes\n");
        var ok = await SparkyCli.RunAsync(["plan", "run", file, .. server]);
        Assert.True(ok.ExitCode == 0, ok.Stdout + ok.Stderr);
        Assert.Equal(["a", "b", "c"], Runs(d.WorkDir));

        var status = await SparkyCli.RunAsync(["plan", "status", "gated", .. server]);
        Assert.Equal(0, status.ExitCode);
        Assert.Contains("phase one", status.Stdout);
        Assert.Contains("pass", status.Stdout);
        var table = await SparkyCli.RunAsync(["plan", "status", "--json", .. server]);
        Assert.Equal("succeeded", (string?)JsonNode.Parse(table.Stdout)!["plans"]![0]!["status"]);

        var bad = Path.Combine(d.WorkDir, "bad.yaml");
        await File.WriteAllTextAsync(bad, "name: bad\ncolour: blue\nphases: []\n");
        var refused = await SparkyCli.RunAsync(["plan", "run", bad, .. server]);
        Assert.Equal(2, refused.ExitCode);
        Assert.Contains("bad.yaml:2:1:", refused.Stderr);
    }

    [Fact]
    public async Task A_gate_runs_with_the_plans_env_and_not_the_daemons_own_settings()
    {
        // A SPARKY_ variable of the daemon's (such as its token) must not reach a gate, as it does not reach a task.
        Environment.SetEnvironmentVariable("SPARKY_GATE_PROBE", "secret");
        try
        {
            await using var d = await TestDaemon.StartAsync();
            const string plan = """
                name: gate-env
                env:
                  STAGE: checked
                phases:
                  - name: one
                    workstreams:
                      - {name: w, run: "true"}
                    gate:
                      - run: test -z "$SPARKY_GATE_PROBE" && test "$STAGE" = checked
                """;
            Assert.Equal(202, (await PostPlanAsync(d.Http, plan, d.WorkDir)).Status);
            Assert.Equal("succeeded", (string?)(await WaitPlanAsync(d.Http, "gate-env"))["status"]);
        }
        finally { Environment.SetEnvironmentVariable("SPARKY_GATE_PROBE", null); }
    }
}
