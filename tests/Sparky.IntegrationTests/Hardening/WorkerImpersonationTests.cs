using System.Text.Json.Nodes;
using NetMQ;
using Sparky.IntegrationTests.Support;
using Sparky.IntegrationTests.Zmq;
using Sparky.Server.Zmq;

namespace Sparky.IntegrationTests.Hardening;

/// <summary>Issue 13, point 6: a worker's name is bound to its key and session; ends it was not given are dropped.</summary>
public sealed class WorkerImpersonationTests
{
    /// <summary>These hand-written workers heartbeat only when the test says so: <paramref name="timeout"/> is how long
    /// the test's steps may take between two of them on a loaded machine.</summary>
    private static Dictionary<string, string> Settings(bool curve, double timeout) => new()
    {
        ["worker_classes"] = "cpu_short", ["worker_heartbeat"] = "0.2", ["zmq_curve"] = curve ? "on" : "auto",
        ["worker_timeout"] = timeout.ToString(System.Globalization.CultureInfo.InvariantCulture),
    };

    /// <summary>The next unasked message (a task, a kill), skipping replies.</summary>
    private static JsonObject? NextUnasked(ZmqTestClient c, double seconds)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (DateTime.UtcNow < deadline)
        {
            var m = c.TryReceive(Math.Max(0.01, (deadline - DateTime.UtcNow).TotalSeconds));
            if (m is null) return null;
            if ((string?)m["type"] is "task" or "kill") return m;
        }
        return null;
    }

    /// <summary>The first unasked message (a task, a kill) that came before the answer to the second of two heartbeats,
    /// asked in turn; null if none. The engine handles the second in a later pass of its loop than anything this client
    /// sent before the first, so whatever those messages led it to send here has come by then.</summary>
    private static JsonObject? UnaskedBeforeTwoHeartbeats(KeyedClient c, string session)
    {
        JsonObject? unasked = null;
        for (int i = 0; i < 2; i++)
        {
            var corr = c.Send("heartbeat", new JsonObject { ["session"] = session });
            for (var m = c.Client.Receive(); (string?)m["corr"] != corr; m = c.Client.Receive())
                if ((string?)m["type"] is "task" or "kill") unasked ??= m;
        }
        return unasked;
    }

    private static JsonObject Hello(string name, JsonArray? running = null) =>
        new() { ["name"] = name, ["slots"] = 1, ["credits"] = 1, ["running"] = running ?? new JsonArray() };

    [Fact]
    public async Task A_hello_under_a_live_workers_name_from_another_key_is_refused_and_its_forged_end_is_not_recorded()
    {
        var root = TestDaemon.NewRoot();
        var data = Path.Combine(root, "data");
        var serverKey = CurveKeys.Generate(data, force: false);
        string Key(string name) => ZmqAuth.Authorise(Path.Combine(data, "workers.keys"), name, Path.Combine(data, "keys", name + ".key"), force: false) is var _
            ? Path.Combine(data, "keys", name + ".key") : "";
        string realFile = Key("real"), otherFile = Key("other");
        // The real worker must stay live (no heartbeat) through several CURVE handshakes and requests: no loss here.
        await using var d = await TestDaemon.StartAsync(Settings(curve: true, timeout: 30), root);
        var endpoint = d.Daemon.ZmqEndpoint;

        using var real = new KeyedClient(endpoint, serverKey, KeyedClient.LoadKey(realFile));
        var welcome = real.Request("hello", Hello("gpu-node-1"))!;
        Assert.True((string?)welcome["type"] == "hello.ok", welcome.ToJsonString());
        var session = (string)welcome["body"]!["session"]!;
        var id = (await d.SubmitAsync(new JsonObject
        {
            ["payload"] = new JsonObject { ["command"] = "sleep 30", ["cwd"] = d.WorkDir, ["env"] = new JsonObject { ["API_SECRET"] = "s3cret" } },
        }))[0];
        var task = NextUnasked(real.Client, 10)!;
        Assert.Equal(id, (string?)task["body"]!["id"]);

        // Another worker key says hello under the same name, listing the task as its own: refused, nothing moves.
        using var other = new KeyedClient(endpoint, serverKey, KeyedClient.LoadKey(otherFile));
        var stolen = other.Request("hello", Hello("gpu-node-1", new JsonArray(new JsonObject { ["id"] = id, ["attempt"] = 1 })))!;
        Assert.Equal(("error", 409), ((string?)stolen["type"], (int?)stolen["body"]!["status"]));
        // With the real session's id (say it leaked), it is still not that session: unknown, and its end is not recorded.
        var forged = other.Request("heartbeat", new JsonObject { ["session"] = session })!;
        Assert.Equal(410, (int?)forged["body"]!["status"]);
        other.Send("finished", new JsonObject { ["session"] = session, ["id"] = id, ["attempt"] = 1, ["exit_code"] = 0, ["credit"] = 1 });
        // Under a session of its own (another name), an end for the real worker's attempt is dropped too.
        var own = other.Request("hello", Hello("gpu-node-2"))!;
        var ownSession = (string)own["body"]!["session"]!;
        other.Send("finished", new JsonObject { ["session"] = ownSession, ["id"] = id, ["attempt"] = 1, ["exit_code"] = 0, ["credit"] = 1 });
        Assert.Null(UnaskedBeforeTwoHeartbeats(other, ownSession)); // and it is sent no task of the real worker's

        Assert.Equal("heartbeat.ok", (string?)real.Request("heartbeat", new JsonObject { ["session"] = session, ["held"] = new JsonArray(new JsonObject { ["id"] = id, ["attempt"] = 1 }), ["seen"] = (long)task["body"]!["seq"]! })!["type"]);
        var t = await d.GetTaskAsync(id);
        Assert.Equal(("running", "gpu-node-1"), ((string?)t["state"], (string?)t["host"]));

        // The real worker's own key again (a reconnect, a restart) takes its name back, task and all.
        using var again = new KeyedClient(endpoint, serverKey, KeyedClient.LoadKey(realFile));
        var back = again.Request("hello", Hello("gpu-node-1", new JsonArray(new JsonObject { ["id"] = id, ["attempt"] = 1 })))!;
        Assert.True((string?)back["type"] == "hello.ok", back.ToJsonString());
        Assert.Empty(back["body"]!["kill"]!.AsArray());
        again.Send("finished", new JsonObject { ["session"] = (string)back["body"]!["session"]!, ["id"] = id, ["attempt"] = 1, ["exit_code"] = 0, ["credit"] = 1 });
        Assert.Equal("succeeded", (string?)(await d.WaitAsync(id, 10))["state"]);
    }

    [Fact]
    public async Task Ends_for_attempts_a_session_was_not_given_are_dropped_and_many_close_it_and_only_heartbeats_keep_it_alive()
    {
        await using var d = await TestDaemon.StartAsync(Settings(curve: false, timeout: 4));
        using var c = new ZmqTestClient(d.Daemon.ZmqEndpoint);
        var session = (string)c.Ok("hello", Hello("flooder"))!["session"]!;
        var id = await d.SubmitShellAsync("sleep 30");
        var task = NextUnasked(c, 10)!;
        Assert.Equal(id, (string?)task["body"]!["id"]);

        // A running task of another attempt number, and tasks that do not exist: none is recorded.
        for (int i = 0; i < 150; i++)
            c.SendFrames([], ZmqTestClient.Pack(ZmqTestClient.Envelope("finished", new JsonObject
            {
                ["session"] = session, ["id"] = i == 0 ? id : $"nope-{i}", ["attempt"] = i == 0 ? 2 : 1, ["exit_code"] = 0, ["credit"] = 1,
            }, i)));
        // Past 100 such the session is closed: its task goes back to the queue, and it must say hello again.
        var deadline = DateTime.UtcNow.AddSeconds(3); // heartbeats all along: not lost for silence
        JsonObject? hb = null;
        while (DateTime.UtcNow < deadline)
        {
            c.SendFrames([], ZmqTestClient.Pack(ZmqTestClient.Envelope("heartbeat", new JsonObject { ["session"] = session }, "hb")));
            // Replies to the ends past the bound (410: the session is gone) come first; the heartbeat's is the one with its corr.
            do hb = c.Receive(); while (hb["corr"]?.ToJsonString() != "\"hb\"");
            if ((string?)hb["type"] == "error") break;
            await Task.Delay(20);
        }
        Assert.Equal(410, (int?)hb!["body"]!["status"]);
        var t = await d.GetTaskAsync(id);
        Assert.NotEqual("succeeded", (string?)t["state"]);
        Assert.True(d.Daemon.Engine.RejectedWorkerMessages >= 100, $"{d.Daemon.Engine.RejectedWorkerMessages} rejected");

        // A session that sends only credits (no heartbeat) is lost after worker_timeout like a silent one.
        // Credits go on (every 0.1 s) until the daemon lists it no more; a session they kept alive would stay listed.
        var s2 = (string)c.Ok("hello", Hello("chatty"))!["session"]!;
        var until = DateTime.UtcNow.AddSeconds(30);
        while (Workers.WorkersApiTests.Worker(await Workers.WorkersApiTests.WorkersAsync(d.Http), "chatty") is not null)
        {
            Assert.True(DateTime.UtcNow < until, "a session that sent only credits was not lost in 30 s");
            c.SendFrames([], ZmqTestClient.Pack(ZmqTestClient.Envelope("credit", new JsonObject { ["session"] = s2, ["n"] = 0 }, "c")));
            await Task.Delay(100);
        }
        while (c.TryReceive(0.05) is not null) { } // tasks and replies sent meanwhile
        Assert.Equal(410, c.Error("heartbeat", new JsonObject { ["session"] = s2 }).Status);
    }
}
