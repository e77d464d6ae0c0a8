using System.Text.Json.Nodes;
using NetMQ;
using Sparky.IntegrationTests.Support;

namespace Sparky.IntegrationTests.Api;

/// <summary>
/// A task's progress lines (SPEC §3) on a real daemon: the latest in the task's JSON while it runs and after it ends, in
/// <c>sparky ls</c> and <c>sparky status</c>, announced as <c>task.progress</c> at most every 500 ms with the last value
/// last, kept across a retry until the new attempt reports its own, and hostile lines ignored or kept as plain text.
/// Run alone: its events are timed (at least 450 ms apart), and its worker runs on a 0.2 s heartbeat.
/// </summary>
[Collection(SerialCollection.Name)]
public sealed class ProgressTests
{
    /// <summary>Prints one progress line as it is (printf: sh's echo would read the backslashes).</summary>
    private static string Line(string json) => $"printf '%s\\n' '__SPARKY_PROGRESS__:{json}'";

    /// <summary>Waits in the task until the test creates <paramref name="file"/> in the work dir.</summary>
    private static string WaitFor(string file) => $"while [ ! -e {file} ]; do sleep 0.05; done";

    [Fact]
    public async Task The_latest_progress_shows_while_the_task_runs_and_after_it_ends_in_the_api_and_the_cli()
    {
        await using var d = await TestDaemon.StartAsync();
        var id = await d.SubmitShellAsync(string.Join("; ",
            "echo starting", Line("""{"done": 1, "total": 4, "message": "epoch 1"}"""), "sleep 0.3",
            Line("""{"done": 2, "total": 4, "message": "epoch 2"}"""), "echo a log line", "sleep 0.3",
            Line("""{"done": 3, "total": 4, "message": "epoch 3"}"""), WaitFor("go"),
            Line("""{"done": 4, "total": 4, "message": "all done"}"""), "echo bye"));

        var running = await ProgressOf(d, id, p => (long?)p["done"] == 3);
        Assert.Equal("running", (string?)running["state"]);
        var progress = running["progress"]!;
        Assert.Equal(4, (long)progress["total"]!);
        Assert.Equal("epoch 3", (string?)progress["message"]);
        Assert.True(DateTimeOffset.TryParse((string?)progress["updated_at"], out var at) && at > DateTimeOffset.UtcNow.AddMinutes(-1));
        // The list shows it too.
        var listed = (await d.Http.GetStringAsync("api/v1/tasks?state=running"));
        Assert.Contains("epoch 3", listed);

        // sparky ls and sparky status, in a pipe: plain text, a percent and the message.
        string[] server = ["--server", d.Daemon.Url];
        var ls = await SparkyCli.RunAsync(["ls", .. server]);
        Assert.Equal(0, ls.ExitCode);
        Assert.Contains("75% epoch 3", ls.Stdout);
        var status = await SparkyCli.RunAsync(["status", .. server, id]);
        Assert.Contains("75% epoch 3", status.Stdout);

        File.WriteAllText(Path.Combine(d.WorkDir, "go"), "");
        var ended = await d.WaitAsync(id);
        Assert.Equal("succeeded", (string?)ended["state"]);
        // The line printed just before the end is read within a look of it.
        var final = await ProgressOf(d, id, p => (long?)p["done"] == 4);
        Assert.Equal("all done", (string?)final["progress"]!["message"]);
        var lsJson = JsonNode.Parse((await SparkyCli.RunAsync(["ls", .. server, "--json"])).Stdout)!;
        Assert.Equal("all done", (string?)lsJson["tasks"]![0]!["progress"]!["message"]);
        // A task that prints none has none.
        var quiet = await d.SubmitShellAsync("echo quiet");
        Assert.Null((await d.WaitAsync(quiet))["progress"]);
    }

    [Fact]
    public async Task Task_progress_events_are_rate_limited_per_task_and_the_last_one_has_the_final_value()
    {
        await using var d = await TestDaemon.StartAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        using var resp = await d.Http.GetAsync("api/v1/events", HttpCompletionOption.ResponseHeadersRead, cts.Token);
        using var reader = new StreamReader(await resp.Content.ReadAsStreamAsync(cts.Token));
        // 200 lines in about a second, in bursts of 20.
        var id = await d.SubmitShellAsync("""for i in $(seq 1 200); do echo "__SPARKY_PROGRESS__:{\"done\": $i, \"total\": 200, \"message\": \"step $i\"}"; """
            + """[ $((i % 20)) -eq 0 ] && sleep 0.1; done; true""");

        var events = new List<JsonNode>();
        while (events.Count == 0 || (long?)events[^1]["body"]!["progress"]!["done"] != 200)
        {
            var name = await reader.ReadLineAsync(cts.Token);
            if (name is null || !name.StartsWith("event: ")) continue;
            var e = JsonNode.Parse((await reader.ReadLineAsync(cts.Token))![6..])!;
            if (name == "event: task.progress" && (string?)e["body"]!["id"] == id) events.Add(e);
        }
        // A handful for 200 lines (about 3 in a second; room for a slow machine): the gaps below are the rate itself.
        Assert.InRange(events.Count, 1, 10);
        var last = events[^1]["body"]!;
        Assert.Equal("cpu_short", (string?)last["class"]);
        Assert.Equal("step 200", (string?)last["progress"]!["message"]);
        Assert.Equal(200, (long)last["progress"]!["total"]!);
        Assert.NotNull(last["progress"]!["updated_at"]);
        for (int i = 1; i < events.Count; i++)
            Assert.True((long)events[i]["ts"]! - (long)events[i - 1]["ts"]! >= 450, "task.progress came faster than one per 500 ms");
        // Nothing more follows: the final value was the last.
        var more = await MoreProgressEvents(reader, id, TimeSpan.FromSeconds(1));
        Assert.Equal(0, more);
    }

    [Fact]
    public async Task A_retry_keeps_the_last_progress_until_its_attempt_reports_its_own()
    {
        await using var d = await TestDaemon.StartAsync();
        // The first attempt reports and fails; the second waits, then reports its own.
        var id = await d.SubmitShellAsync(string.Join("; ",
            "if [ ! -e tried ]; then touch tried; " + Line("""{"done": 1, "total": 2, "message": "first try"}""") + "; exit 3; fi",
            WaitFor("go2"), Line("""{"message": "second try"}""")), retries: 1);
        await ProgressOf(d, id, p => (string?)p["message"] == "first try");
        for (var until = DateTime.UtcNow.AddSeconds(10); ; await Task.Delay(50))
        {
            var t = await d.GetTaskAsync(id);
            if ((int?)t["attempts"] == 2 && (string?)t["state"] == "running")
            {
                Assert.Equal("first try", (string?)t["progress"]!["message"]);
                break;
            }
            Assert.True(DateTime.UtcNow < until, t.ToJsonString());
        }
        File.WriteAllText(Path.Combine(d.WorkDir, "go2"), "");
        var second = await ProgressOf(d, id, p => (string?)p["message"] == "second try");
        Assert.Null(second["progress"]!["done"]); // its own: only a message
        Assert.Equal("succeeded", (string?)(await d.WaitAsync(id))["state"]);
    }

    [Fact]
    public async Task Hostile_lines_are_ignored_or_kept_as_plain_text_and_break_nothing()
    {
        await using var d = await TestDaemon.StartAsync();
        var id = await d.SubmitShellAsync(string.Join("; ",
            Line("""{"done": 1, "total": 2, "message": "<script>alert(1)</script>\u001b[2J"}"""),
            // A 1 MB progress line, broken JSON, numbers out of range, a marker within a line.
            """printf '__SPARKY_PROGRESS__:{"done": 2, "message": "'; head -c 1000000 /dev/zero | tr '\0' a; printf '"}\n'""",
            Line("""{"done": 2, "total": 2"""), Line("""{"done": -1}"""), Line("""{"done": 1e400}"""), Line("""{"total": 0}"""),
            Line("""[1, 2]"""), "echo 'x __SPARKY_PROGRESS__:{\"done\": 2}'", "printf '__SPARKY_PROGRESS__:{\"done\": 2, \"message\": \"\\377\"}\\n'"));
        Assert.Equal("succeeded", (string?)(await d.WaitAsync(id))["state"]);
        // The first line is read (at a look during the run, or the one after its end, however late a loaded machine
        // makes it); then more than two looks more: every line after it has been read, and none changed it.
        await ProgressOf(d, id, p => (long?)p["done"] == 1);
        await Task.Delay(600);

        using var raw = await d.Http.GetAsync($"api/v1/tasks/{id}");
        var text = await raw.Content.ReadAsStringAsync();
        Assert.DoesNotContain("<script>", text); // escaped on the wire
        var p = JsonNode.Parse(text)!["progress"]!;
        Assert.Equal(1, (long)p["done"]!);
        Assert.Equal(2, (long)p["total"]!);
        Assert.Equal("<script>alert(1)</script>[2J", (string?)p["message"]); // the escape character dropped, the rest as text
        using (var ready = await d.Http.GetAsync("readyz")) Assert.True(ready.IsSuccessStatusCode);
        var ls = await SparkyCli.RunAsync(["ls", "--server", d.Daemon.Url]);
        Assert.Equal(0, ls.ExitCode);
        Assert.Contains("50% <script>alert(1)</script>", ls.Stdout);
        Assert.DoesNotContain("\u001b[2J", ls.Stdout);
    }

    [Fact]
    public async Task The_zeromq_doors_carry_the_same_progress_and_event()
    {
        await using var d = await TestDaemon.StartAsync();
        using var sub = new NetMQ.Sockets.SubscriberSocket();
        sub.Options.Linger = TimeSpan.Zero;
        sub.Connect(d.Daemon.ZmqEventsEndpoint);
        sub.Subscribe("task.progress");
        await EventSubscriptions.WaitAsync(d.Http, sub);
        var id = await d.SubmitShellAsync(Line("""{"done": 2, "total": 8, "message": "over zmq"}""") + "; " + WaitFor("go"));
        var task = await ProgressOf(d, id, p => (long?)p["done"] == 2);
        Assert.Equal("running", (string?)task["state"]); // progress shows once the start is stored: a list by state finds it
        var http = task["progress"]!;

        using var client = new Zmq.ZmqTestClient(d.Daemon.ZmqEndpoint);
        var status = client.Ok("status", new JsonObject { ["id"] = id })!;
        Assert.Equal("running", (string?)status["state"]);
        Assert.Equal(http.ToJsonString(), status["progress"]!.ToJsonString());
        var listed = client.Ok("list", new JsonObject { ["state"] = "running" })!["tasks"]!.AsArray().Single(t => (string?)t!["id"] == id)!;
        Assert.Equal("over zmq", (string?)listed["progress"]!["message"]);

        var frames = new NetMQMessage();
        Assert.True(sub.TryReceiveMultipartMessage(TimeSpan.FromSeconds(10), ref frames));
        Assert.Equal("task.progress", frames[0].ConvertToString());
        var e = Zmq.ZmqTestClient.Unpack(frames[1].ToByteArray());
        Assert.Equal(id, (string?)e["body"]!["id"]);
        Assert.Equal(http.ToJsonString(), e["body"]!["progress"]!.ToJsonString());
        File.WriteAllText(Path.Combine(d.WorkDir, "go"), "");
        await d.WaitAsync(id);
    }

    /// <summary>
    /// A task's start is committed a moment after its process starts, so its first progress can come before the store
    /// has it running (under load, as in a full test run). Here the store's write lock is held while the task starts:
    /// its progress is announced, but the task, still queued in the store, shows none, in both doors; once the start is
    /// stored the progress shows with the running state, and the list by state holds the task.
    /// </summary>
    [Fact]
    public async Task Progress_shows_only_with_the_stored_start_so_a_list_by_state_holds_the_task()
    {
        await using var d = await TestDaemon.StartAsync(new() { ["cpu_short_slots"] = "1", ["cpu_short_limiter"] = "fixed" });
        using var sub = new NetMQ.Sockets.SubscriberSocket();
        sub.Options.Linger = TimeSpan.Zero;
        sub.Connect(d.Daemon.ZmqEventsEndpoint);
        sub.Subscribe("task.progress");
        await EventSubscriptions.WaitAsync(d.Http, sub);
        var first = await d.SubmitShellAsync(WaitFor("first"));
        var second = await d.SubmitShellAsync(Line("""{"done": 1, "total": 2, "message": "ahead of the store"}""") + "; " + WaitFor("go"));
        for (var until = DateTime.UtcNow.AddSeconds(15); (string?)(await d.GetTaskAsync(first))["state"] != "running"; await Task.Delay(50))
            Assert.True(DateTime.UtcNow < until, "the first task did not start");
        using var client = new Zmq.ZmqTestClient(d.Daemon.ZmqEndpoint);

        using (var hold = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={Path.Combine(d.DataDir, "sparky.db")};Pooling=False"))
        {
            hold.Open();
            using (var begin = hold.CreateCommand())
            {
                begin.CommandText = "BEGIN IMMEDIATE"; // the daemon's writer waits (reads go on): the second task's start is not stored
                begin.ExecuteNonQuery();
            }
            File.WriteAllText(Path.Combine(d.WorkDir, "first"), ""); // its end frees the slot: the second starts and prints
            var frames = new NetMQMessage();
            Assert.True(sub.TryReceiveMultipartMessage(TimeSpan.FromSeconds(15), ref frames), "the second task's progress was not announced");
            Assert.Equal(second, (string?)Zmq.ZmqTestClient.Unpack(frames[1].ToByteArray())["body"]!["id"]);

            var http = await d.GetTaskAsync(second);
            var status = client.Ok("status", new JsonObject { ["id"] = second })!;
            foreach (var t in new[] { http, status })
            {
                Assert.Equal("queued", (string?)t["state"]);
                Assert.Null(t["progress"]);
            }
            using var rollback = hold.CreateCommand();
            rollback.CommandText = "ROLLBACK";
            rollback.ExecuteNonQuery();
        }
        var running = await ProgressOf(d, second, p => (long?)p["done"] == 1);
        Assert.Equal("running", (string?)running["state"]);
        var listed = client.Ok("list", new JsonObject { ["state"] = "running" })!["tasks"]!.AsArray();
        Assert.Equal("ahead of the store", (string?)listed.Single(t => (string?)t!["id"] == second)!["progress"]!["message"]);
        File.WriteAllText(Path.Combine(d.WorkDir, "go"), "");
        await d.WaitAsync(second);
    }

    [Fact]
    public async Task A_plan_report_shows_its_tasks_progress()
    {
        await using var d = await TestDaemon.StartAsync();
        const string plan = """
            name: prog
            phases:
              - name: one
                workstreams:
                  - {name: train, run: "printf '%s\\n' '__SPARKY_PROGRESS__:{\"done\": 3, \"total\": 6, \"message\": \"half\"}'"}
            """;
        Assert.Equal(202, (await Plans.PlanHttp.PostAsync(d.Http, plan, d.WorkDir)).Status);
        var report = await Plans.PlanHttp.UntilAsync(d.Http, "prog",
            r => Plans.PlanHttp.Workstream(r, "one", "train")["tasks"]![0]!["progress"] is JsonObject, seconds: 30);
        var progress = Plans.PlanHttp.Workstream(report, "one", "train")["tasks"]![0]!["progress"]!;
        Assert.Equal(3, (long)progress["done"]!);
        Assert.Equal("half", (string?)progress["message"]);
        var status = await SparkyCli.RunAsync(["plan", "status", "prog", "--server", d.Daemon.Url]);
        Assert.Contains("50% half", status.Stdout);
    }

    [Fact]
    public async Task A_worker_s_task_on_this_host_reports_its_progress_too()
    {
        await using var d = await TestDaemon.StartAsync(new() { ["worker_classes"] = "cpu_short", ["worker_heartbeat"] = "0.2" });
        await using var w = WorkerProcess.Start(d.Daemon.ZmqEndpoint, "w1", slots: 1);
        var id = await d.SubmitShellAsync(Line("""{"done": 1, "total": 3, "message": "on a worker"}""") + "; " + WaitFor("go")
            + "; " + Line("""{"done": 3, "total": 3, "message": "worker done"}"""));
        var running = await ProgressOf(d, id, p => (string?)p["message"] == "on a worker", seconds: 30);
        Assert.Equal("w1", (string?)running["host"]);
        File.WriteAllText(Path.Combine(d.WorkDir, "go"), "");
        Assert.Equal("succeeded", (string?)(await d.WaitAsync(id))["state"]);
        await ProgressOf(d, id, p => (long?)p["done"] == 3);
    }

    /// <summary>Polls the task until its progress satisfies <paramref name="done"/>; returns the task.</summary>
    internal static async Task<JsonNode> ProgressOf(TestDaemon d, string id, Func<JsonNode, bool> done, double seconds = 15)
    {
        for (var until = DateTime.UtcNow.AddSeconds(seconds); ; await Task.Delay(50))
        {
            var t = await d.GetTaskAsync(id);
            if (t["progress"] is JsonObject p && done(p)) return t;
            Assert.True(DateTime.UtcNow < until, $"task {id} never got there: {t.ToJsonString()}");
        }
    }

    /// <summary>How many task.progress events of <paramref name="id"/> arrive within <paramref name="wait"/>.</summary>
    private static async Task<int> MoreProgressEvents(StreamReader reader, string id, TimeSpan wait)
    {
        using var cts = new CancellationTokenSource(wait);
        int n = 0;
        try
        {
            while (await reader.ReadLineAsync(cts.Token) is { } line)
                if (line == "event: task.progress" && (string?)JsonNode.Parse((await reader.ReadLineAsync(cts.Token))![6..])!["body"]!["id"] == id) n++;
        }
        catch (OperationCanceledException) { }
        return n;
    }
}
