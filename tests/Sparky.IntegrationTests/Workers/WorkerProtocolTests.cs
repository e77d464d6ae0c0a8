using System.Text.Json.Nodes;
using NetMQ;
using NetMQ.Sockets;
using Sparky.IntegrationTests.Support;
using Sparky.IntegrationTests.Zmq;

namespace Sparky.IntegrationTests.Workers;

/// <summary>
/// The worker protocol spoken by hand (a DEALER written for the tests, not Sparky's worker), the worker events on the
/// PUB socket, and CURVE: a worker without the server's key never gets in.
/// </summary>
[Collection(SerialCollection.Name)] // workers on this host: one class at a time (see SerialCollection)
public sealed class WorkerProtocolTests
{
    /// <summary>A hand-written worker heartbeats only when the test says so: 4 s of silence lose it, a few steps of the
    /// test on a loaded machine do not.</summary>
    private static Dictionary<string, string> Settings() => new()
    {
        ["worker_classes"] = "cpu_short", ["worker_heartbeat"] = "0.2", ["worker_timeout"] = "4",
    };

    private static JsonObject Receive(ZmqTestClient c, double seconds = 30)
    {
        var frames = new List<byte[]>();
        Assert.True(c.Socket.TryReceiveMultipartBytes(TimeSpan.FromSeconds(seconds), ref frames), "nothing came from the daemon");
        Assert.Equal(2, frames.Count);
        Assert.Empty(frames[0]);
        return ZmqTestClient.Unpack(frames[1]);
    }

    /// <summary>The task's state once its start is in the store: the engine sends a task to its worker before the
    /// store's writer commits the start, so a read right after the worker got it can still say queued. Polls well
    /// inside the worker timeout (4 s), so a lost worker cannot turn it back to queued meanwhile.</summary>
    private static async Task<string?> StateOnceRecordedAsync(TestDaemon d, string id)
    {
        string? state = null;
        for (var until = DateTime.UtcNow.AddMilliseconds(2000); DateTime.UtcNow < until; await Task.Delay(20))
            if ((state = (string?)(await d.GetTaskAsync(id))["state"]) != "queued") break;
        return state;
    }

    private static void Send(ZmqTestClient c, string type, JsonNode body) =>
        c.Socket.SendMoreFrameEmpty().SendFrame(ZmqTestClient.Pack(ZmqTestClient.Envelope(type, body, 1)));

    [Fact]
    public async Task A_hand_written_worker_gets_a_task_reports_its_end_and_is_lost_when_it_stops_heartbeating()
    {
        await using var d = await TestDaemon.StartAsync(Settings());
        using var events = new SubscriberSocket();
        events.Connect(d.Daemon.ZmqEventsEndpoint);
        events.Subscribe("worker.");
        await EventSubscriptions.WaitAsync(d.Http, events, cls: "cpu_long"); // cpu_short is the workers'

        using var c = new ZmqTestClient(d.Daemon.ZmqEndpoint);
        int cases = 0;
        // Malformed hellos and unknown sessions: an error, nothing joins.
        foreach (var (body, status, words) in new (JsonNode, int, string)[]
        {
            (new JsonObject { ["name"] = "../etc/passwd", ["slots"] = 1 }, 400, "name"),
            (new JsonObject { ["name"] = "ok", ["slots"] = 0 }, 400, "slots"),
            (new JsonObject { ["name"] = "ok", ["slots"] = "two" }, 400, "slots"),
            (new JsonObject { ["name"] = "ok", ["slots"] = 1, ["running"] = new JsonArray(1, 2) }, 400, "running"),
            (new JsonArray(1, 2), 400, "map"),
        })
        {
            var (s, detail) = c.Error("hello", body);
            Assert.Equal(status, s);
            Assert.Contains(words, detail);
            cases++;
        }
        foreach (var type in new[] { "heartbeat", "finished", "credit", "draining", "bye" })
        {
            var (s, detail) = c.Error(type, new JsonObject { ["session"] = "nope", ["id"] = "x", ["attempt"] = 1 });
            Assert.Equal(410, s);
            Assert.Contains("hello", detail);
            cases++;
        }
        Assert.Contains("sparky_workers_connected 0", await d.Http.GetStringAsync("metrics"));

        var welcome = c.Ok("hello", new JsonObject { ["name"] = "hand", ["host"] = "bench-7", ["slots"] = 1, ["credits"] = 1 })!;
        var session = (string)welcome["session"]!;
        Assert.Equal(200, (int)welcome["heartbeat_ms"]!);
        Assert.Equal(4000, (int)welcome["timeout_ms"]!);
        Assert.Empty(welcome["kill"]!.AsArray());
        var (topic, joined) = NextEvent(events);
        Assert.Equal("worker.joined", topic);
        Assert.Equal(("hand", "bench-7", 1), ((string?)joined["body"]!["name"], (string?)joined["body"]!["host"], (int?)joined["body"]!["slots"]));

        var id = await d.SubmitShellAsync("echo hi", retries: 0);
        var task = Receive(c);
        Assert.Equal("task", (string?)task["type"]);
        var t = task["body"]!;
        Assert.Equal((id, 1), ((string?)t["id"], (int?)t["attempt"]));
        Assert.Equal("/bin/sh", (string?)t["command"]![0]);
        Assert.Equal(id, (string?)t["env"]!["SPARKY_TASK_ID"]);
        Assert.EndsWith($"{id}.1.out", (string?)t["stdout"]);
        Assert.Equal("running", await StateOnceRecordedAsync(d, id));
        // A second task waits: the one credit is spent. Two heartbeats answered in turn: the engine handles the second
        // in a later pass of its loop than the one that queued the task, so a task sent to this worker would come first.
        var second = await d.SubmitShellAsync("true");
        for (int i = 0; i < 2; i++)
        {
            Send(c, "heartbeat", new JsonObject { ["session"] = session });
            var beat = Receive(c);
            Assert.True((string?)beat["type"] == "heartbeat.ok", beat.ToJsonString());
        }

        Send(c, "finished", new JsonObject { ["session"] = session, ["id"] = id, ["attempt"] = 1, ["exit_code"] = 0, ["result"] = "{\"acc\":1}", ["credit"] = 1 });
        var done = await d.WaitAsync(id, 30);
        Assert.Equal("succeeded", (string?)done["state"]);
        Assert.Equal("hand", (string?)done["host"]); // the worker's name is where it ran
        Assert.Equal("{\"acc\":1}", done["result"]!.ToJsonString());
        // The credit came back with the end: the second task follows. A stale end (wrong attempt) changes nothing.
        Assert.Equal(second, (string?)Receive(c)["body"]!["id"]);
        Send(c, "finished", new JsonObject { ["session"] = session, ["id"] = second, ["attempt"] = 7, ["exit_code"] = 0 });
        c.Ok("heartbeat", new JsonObject { ["session"] = session });
        Assert.Equal("running", await StateOnceRecordedAsync(d, second));

        // Silent past worker_timeout: lost, and its task queued again (a worker_lost attempt, no retry used).
        var (lostTopic, lost) = NextEvent(events);
        Assert.Equal("worker.lost", lostTopic);
        Assert.Equal([second], lost["body"]!["tasks"]!.AsArray().Select(x => (string?)x));
        var again = await d.GetTaskAsync(second);
        Assert.Equal("queued", (string?)again["state"]);
        Assert.Equal("worker_lost", (string?)again["attempt_list"]![0]!["reason"]);
        var metrics = await d.Http.GetStringAsync("metrics");
        Assert.Contains("sparky_workers_connected 0", metrics);
        Assert.Contains("sparky_workers_lost_total 1", metrics); // what the WorkerLost alert counts
        Console.WriteLine($"worker protocol: {cases} malformed or unknown-session messages refused");
    }

    /// <summary>Issue 15, point 4: a worker's body is read into its typed record by the command socket; what does not
    /// fit is answered 400 naming the key and what it must be, and the records' own checks answer as before.</summary>
    [Fact]
    public async Task A_worker_message_of_the_wrong_shape_gets_a_400_that_says_what_is_wrong()
    {
        await using var d = await TestDaemon.StartAsync(Settings());
        using var c = new ZmqTestClient(d.Daemon.ZmqEndpoint);
        Assert.Equal((400, "hello: slots must be an integer"), c.Error("hello", new JsonObject { ["name"] = "ok", ["slots"] = "two" }));
        Assert.Equal((400, "hello: slots must be from 1 to 100000"), c.Error("hello", new JsonObject { ["name"] = "ok", ["slots"] = 0 }));
        Assert.Equal((400, "hello: running must be a list of {id, attempt}"),
            c.Error("hello", new JsonObject { ["name"] = "ok", ["running"] = new JsonArray(new JsonObject { ["id"] = "t-1" }) }));
        Assert.Equal((400, "credit: n must be an integer"), c.Error("credit", new JsonObject { ["session"] = "x", ["n"] = "3" }));

        // A body is held to the rules of every request first: here a key given twice.
        var raw = new System.Buffers.ArrayBufferWriter<byte>();
        var w = new MessagePack.MessagePackWriter(raw);
        w.WriteMapHeader(4);
        w.Write("v"); w.Write(1);
        w.Write("type"); w.Write("hello");
        w.Write("corr"); w.Write("dup");
        w.Write("body"); w.WriteMapHeader(2); w.Write("name"); w.Write("a"); w.Write("name"); w.Write("b");
        w.Flush();
        c.SendFrames([], raw.WrittenSpan.ToArray());
        var reply = c.Receive();
        Assert.Equal(("error", 400, "body: duplicate key 'name'"), ((string?)reply["type"], (int)reply["body"]!["status"]!, (string?)reply["body"]!["detail"]));

        var session = (string)c.Ok("hello", new JsonObject { ["name"] = "hand", ["slots"] = 1 })!["session"]!;
        Assert.Equal((400, "finished needs id and attempt"), c.Error("finished", new JsonObject { ["session"] = session, ["id"] = "t-1" }));
        Assert.Equal((400, "finished: exit_code must be an integer"),
            c.Error("finished", new JsonObject { ["session"] = session, ["id"] = "t-1", ["attempt"] = 1, ["exit_code"] = "0" }));
    }

    [Fact]
    public async Task A_task_its_worker_has_seen_but_no_longer_holds_was_lost_on_the_way_and_is_queued_again()
    {
        var settings = Settings();
        settings["worker_timeout"] = "30"; // this hand-written worker heartbeats only when the test says so
        await using var d = await TestDaemon.StartAsync(settings);
        using var c = new ZmqTestClient(d.Daemon.ZmqEndpoint);
        var session = (string)c.Ok("hello", new JsonObject { ["name"] = "hand", ["slots"] = 1 })!["session"]!;
        var id = await d.SubmitShellAsync("true");
        var first = Receive(c)["body"]!;
        Assert.Equal((id, 1, session), ((string?)first["id"], (int?)first["attempt"], (string?)first["session"]));

        // It says it has seen that task and holds nothing: the end was lost across a reconnect.
        var ok = c.Ok("heartbeat", new JsonObject { ["session"] = session, ["held"] = new JsonArray(), ["seen"] = (long)first["seq"]! })!;
        Assert.Empty(ok["acked"]!.AsArray());
        // Queued again at once, no retry used, and sent again: the worker's credit came back with it.
        var second = Receive(c)["body"]!;
        Assert.Equal((id, 2), ((string?)second["id"], (int?)second["attempt"]));
        Assert.True((long)second["seq"]! > (long)first["seq"]!);
        var t = await d.GetTaskAsync(id);
        Assert.Equal("worker_lost", (string?)t["attempt_list"]![0]!["reason"]);

        // Holding it (seen, running) is no loss; its end is acknowledged in the next heartbeat's answer.
        var still = c.Ok("heartbeat", new JsonObject { ["session"] = session, ["held"] = new JsonArray(new JsonObject { ["id"] = id, ["attempt"] = 2 }), ["seen"] = (long)second["seq"]! })!;
        Assert.Empty(still["acked"]!.AsArray());
        Send(c, "finished", new JsonObject { ["session"] = session, ["id"] = id, ["attempt"] = 2, ["exit_code"] = 0, ["credit"] = 1 });
        var acked = c.Ok("heartbeat", new JsonObject { ["session"] = session, ["held"] = new JsonArray(), ["seen"] = (long)second["seq"]! })!["acked"]!.AsArray();
        Assert.Equal(id, (string?)Assert.Single(acked)!["id"]);
        Assert.Equal("succeeded", (string?)(await d.WaitAsync(id, 30))["state"]);
    }

    /// <summary>Issue 15, point 8: the count of requeues a lost worker earned stayed in the engine for good when the task
    /// was cancelled during a later backoff (or before a start): one entry per such task, never removed.</summary>
    [Fact]
    public async Task A_task_cancelled_during_its_backoff_leaves_no_lost_requeue_behind()
    {
        var settings = Settings();
        settings["worker_timeout"] = "30";
        settings["retry_base_seconds"] = "30"; // the backoff outlasts the test: it is cancelled during it
        await using var d = await TestDaemon.StartAsync(settings);
        using var c = new ZmqTestClient(d.Daemon.ZmqEndpoint);
        var session = (string)c.Ok("hello", new JsonObject { ["name"] = "hand", ["slots"] = 1 })!["session"]!;
        var id = await d.SubmitShellAsync("false", retries: 1);
        var first = Receive(c)["body"]!;
        // Lost on the way: queued again at once, without a retry.
        c.Ok("heartbeat", new JsonObject { ["session"] = session, ["held"] = new JsonArray(), ["seen"] = (long)first["seq"]! });
        var second = Receive(c)["body"]!;
        Assert.Equal(1, d.Daemon.Engine.Bookkeeping.Lives);
        // It fails: its retry waits out a 30 s backoff; cancelled meanwhile.
        Send(c, "finished", new JsonObject { ["session"] = session, ["id"] = id, ["attempt"] = (int)second["attempt"]!, ["exit_code"] = 1, ["credit"] = 1 });
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while ((await d.GetTaskAsync(id))["attempt_list"]!.AsArray().Count(a => a!["ended_at"] is not null) < 2)
        {
            Assert.True(DateTime.UtcNow < deadline, "the second attempt's end was never recorded");
            await Task.Delay(20);
        }
        Assert.Equal("queued", (string?)(await d.GetTaskAsync(id))["state"]);
        using (var resp = await d.Http.DeleteAsync($"api/v1/tasks/{id}")) Assert.True(resp.IsSuccessStatusCode);
        Assert.Equal("cancelled", (string?)(await d.WaitAsync(id, 30))["state"]);
        Assert.Equal((0, 0), d.Daemon.Engine.Bookkeeping);
    }

    /// <summary>A cancel takes back a worker task that is on no worker: one waiting for a credit ends cancelled without an
    /// attempt (and the credit that comes later sends nothing); one whose worker has not said hello again since a restart
    /// ends cancelled at once, and its worker is told to kill it when it does come back.</summary>
    [Fact]
    public async Task A_worker_task_on_no_worker_is_cancelled_at_once_waiting_for_a_credit_or_for_its_worker_after_a_restart()
    {
        var settings = Settings();
        settings["worker_timeout"] = "30"; // this hand-written worker heartbeats only when the test says so
        var root = TestDaemon.NewRoot();
        string running;
        await using (var d = await TestDaemon.StartAsync(settings, root))
        {
            using var c = new ZmqTestClient(d.Daemon.ZmqEndpoint);
            var session = (string)c.Ok("hello", new JsonObject { ["name"] = "hand", ["slots"] = 2, ["credits"] = 1 })!["session"]!;
            running = await d.SubmitShellAsync("sleep 60");
            Assert.Equal(running, (string?)Receive(c)["body"]!["id"]);
            Assert.Equal("running", await StateOnceRecordedAsync(d, running));
            // A second slot and no credit left: the second task starts and waits for a credit. Two heartbeats answered in
            // turn: the engine has started it by the second.
            var waiting = await d.SubmitShellAsync("true");
            for (int i = 0; i < 2; i++) c.Ok("heartbeat", new JsonObject { ["session"] = session });
            using (var resp = await d.Http.DeleteAsync($"api/v1/tasks/{waiting}")) Assert.True(resp.IsSuccessStatusCode);
            var w = await d.WaitAsync(waiting, 30);
            Assert.Equal("cancelled", (string?)w["state"]);
            Assert.Equal(0, (int?)w["attempts"]);
            Send(c, "credit", new JsonObject { ["session"] = session, ["n"] = 1 });
            for (int i = 0; i < 2; i++)
            {
                Send(c, "heartbeat", new JsonObject { ["session"] = session });
                var beat = Receive(c);
                Assert.True((string?)beat["type"] == "heartbeat.ok", beat.ToJsonString());
            }
        }

        await using var again = await TestDaemon.StartAsync(settings, root);
        Assert.Equal("running", (string?)(await again.GetTaskAsync(running))["state"]);
        using (var resp = await again.Http.DeleteAsync($"api/v1/tasks/{running}")) Assert.True(resp.IsSuccessStatusCode);
        var t = await again.WaitAsync(running, 30);
        Assert.Equal("cancelled", (string?)t["state"]);
        Assert.Equal("cancelled", (string?)Assert.Single(t["attempt_list"]!.AsArray())!["reason"]);
        using var back = new ZmqTestClient(again.Daemon.ZmqEndpoint);
        var welcome = back.Ok("hello", new JsonObject
        {
            ["name"] = "hand", ["slots"] = 2, ["running"] = new JsonArray(new JsonObject { ["id"] = running, ["attempt"] = 1 }),
        })!;
        var kill = Assert.Single(welcome["kill"]!.AsArray())!;
        Assert.Equal((running, 1), ((string?)kill["id"], (int?)kill["attempt"]));
        try { Directory.Delete(root, recursive: true); } catch (IOException) { }
    }

    private static (string Topic, JsonObject Event) NextEvent(SubscriberSocket events, double seconds = 30)
    {
        var frames = new List<byte[]>();
        Assert.True(events.TryReceiveMultipartBytes(TimeSpan.FromSeconds(seconds), ref frames), "no worker event");
        return (System.Text.Encoding.UTF8.GetString(frames[0]), ZmqTestClient.Unpack(frames[1]));
    }

    [Fact]
    public async Task With_CURVE_a_worker_needs_the_servers_public_key_to_get_in()
    {
        var root = TestDaemon.NewRoot();
        var publicKey = Sparky.Server.Zmq.CurveKeys.Generate(Path.Combine(root, "data"), force: false);
        var settings = Settings();
        settings["zmq_curve"] = "on";
        await using var d = await TestDaemon.StartAsync(settings, root);

        await using var stranger = WorkerProcess.Start(d.Daemon.ZmqEndpoint, "stranger", 1, "--idle-timeout", "3");
        Assert.True(await stranger.WaitForExitAsync(30), stranger.Stderr);
        Assert.Equal(1, stranger.ExitCode); // never answered
        Assert.Contains("no answer", stranger.Stderr);
        Assert.Contains("sparky_workers_connected 0", await d.Http.GetStringAsync("metrics"));

        var pubFile = Path.Combine(root, "data", Sparky.Server.Zmq.CurveKeys.PublicFile);
        await using var w = WorkerProcess.Start(d.Daemon.ZmqEndpoint, "friend", 1, "--server-key", pubFile);
        var id = await d.SubmitShellAsync("echo $SPARKY_WORKER");
        var t = await d.WaitAsync(id, 30);
        Assert.Equal(("succeeded", "friend"), ((string?)t["state"], (string?)t["host"]));
        Assert.Equal(40, publicKey.Length);
    }
}
