using System.Net.Http.Json;
using System.Text.Json.Nodes;
using NetMQ;
using NetMQ.Sockets;
using Sparky.IntegrationTests.Support;
using Xunit.Abstractions;

namespace Sparky.IntegrationTests.Zmq;

/// <summary>The ZeroMQ command channel against a real daemon: each request type answers what HTTP answers.</summary>
[Collection(SerialCollection.Name)]
public sealed class ZmqCommandTests(ITestOutputHelper output)
{
    private static JsonObject Shell(TestDaemon d, string shell, string? id = null) =>
        new() { ["id"] = id, ["payload"] = new JsonObject { ["command"] = shell, ["cwd"] = d.WorkDir } };

    [Fact]
    public async Task Every_request_type_answers_what_the_http_api_answers()
    {
        await using var d = await TestDaemon.StartAsync();
        using var c = new ZmqTestClient(d.Daemon.ZmqEndpoint);

        // ping: the daemon's clock, answered with the corr it was sent.
        var pong = c.Ok("ping")!;
        Assert.True((bool)pong["pong"]!);
        Assert.InRange((long)pong["time_ms"]! - DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(), -5000, 5000);

        // submit: one envelope, then an array; the same ids HTTP would give.
        var oneReply = c.Ok("submit", Shell(d, "echo one", "zmq-one"))!;
        Assert.Equal("zmq-one", (string)((JsonArray)oneReply["ids"]!).Single()!);
        Assert.Equal("zmq-one", (string?)oneReply["id"]); // one envelope: its id too, as /queue/submit answers
        var twoReply = c.Ok("submit", new JsonArray(Shell(d, "exit 3"), Shell(d, "sleep 30", "zmq-long")))!;
        Assert.Null(twoReply["id"]); // an array: ids only
        var two = (JsonArray)twoReply["ids"]!;
        Assert.Equal(2, two.Count);
        string failing = (string)two[0]!;
        await d.WaitAsync("zmq-one");
        await d.WaitAsync(failing);

        // status with an id: the very JSON of GET /api/v1/tasks/{id}.
        foreach (var id in new[] { "zmq-one", failing })
            Assert.True(JsonNode.DeepEquals(await d.GetTaskAsync(id), c.Ok("status", new JsonObject { ["id"] = id })),
                $"zmq status differs from HTTP for {id}");
        Assert.Equal(3, (int)c.Ok("status", new JsonObject { ["id"] = failing })!["exit_code"]!);

        // status without an id: the /queue/status counters.
        await WaitRunningAsync(d, "zmq-long");
        var counters = c.Ok("status")!;
        Assert.True(JsonNode.DeepEquals(await d.Http.GetFromJsonAsync<JsonNode>("queue/status"), counters), counters.ToJsonString());
        Assert.Equal((1L, 1L, 1L), ((long)counters["running"]!, (long)counters["done"]!, (long)counters["failed"]!));

        // list: the page GET /api/v1/tasks gives for the same filters, cursor paging included.
        await AssertSameList(d, c, new JsonObject(), "");
        await AssertSameList(d, c, new JsonObject { ["state"] = "failed" }, "state=failed");
        await AssertSameList(d, c, new JsonObject { ["class"] = "cpu_short", ["limit"] = 2 }, "class=cpu_short&limit=2");
        var page1 = c.Ok("list", new JsonObject { ["limit"] = 2 })!;
        var page2 = c.Ok("list", new JsonObject { ["limit"] = 2, ["cursor"] = (long)page1["next_cursor"]! })!;
        Assert.Equal(["zmq-one", failing, "zmq-long"], ((JsonArray)page1["tasks"]!).Concat((JsonArray)page2["tasks"]!).Select(t => (string)t!["id"]!));

        // cancel: 202-like ok, then 409 once finished, 404 for no such task.
        var cancelled = c.Ok("cancel", new JsonObject { ["id"] = "zmq-long" })!;
        Assert.Equal(("zmq-long", true), ((string)cancelled["id"]!, (bool)cancelled["ok"]!));
        Assert.Equal("cancelled", (string)(await d.WaitAsync("zmq-long"))["state"]!);
        Assert.Equal((409, "task zmq-long has already finished"), c.Error("cancel", new JsonObject { ["id"] = "zmq-long" }));
        Assert.Equal((404, "no task 'nope'"), c.Error("cancel", new JsonObject { ["id"] = "nope" }));
        Assert.Equal((404, "no task 'nope'"), c.Error("status", new JsonObject { ["id"] = "nope" }));

        // Errors carry HTTP's codes and words: 400 for a bad envelope, 409 for an id that exists.
        var bad = new JsonObject { ["payload"] = new JsonObject { ["command"] = 42 } };
        using (var resp = await d.Http.PostAsync("api/v1/tasks", new StringContent(bad.ToJsonString(), System.Text.Encoding.UTF8, "application/json")))
        {
            var problem = JsonNode.Parse(await resp.Content.ReadAsStringAsync())!;
            Assert.Equal(((int)resp.StatusCode, (string)problem["detail"]!), c.Error("submit", bad.DeepClone()));
        }
        var dup = c.Error("submit", Shell(d, "true", "zmq-one"));
        Assert.Equal(409, dup.Status);
        output.WriteLine($"duplicate id: {dup.Detail}");

        // A corr may be an integer; it comes back as one.
        c.SendFrames([], ZmqTestClient.Pack(ZmqTestClient.Envelope("ping", null, 41)));
        var reply = c.Receive();
        Assert.Equal(41, (int)reply["corr"]!);
        Assert.Equal("ping.ok", (string)reply["type"]!);
    }

    [Fact]
    public async Task A_full_queue_answers_429_as_http_does()
    {
        await using var d = await TestDaemon.StartAsync(new() { ["max_queued"] = "1", ["cpu_short_slots"] = "1", ["cpu_short_min_slots"] = "1" });
        using var c = new ZmqTestClient(d.Daemon.ZmqEndpoint);
        c.Ok("submit", Shell(d, "sleep 30", "busy"));
        await WaitRunningAsync(d, "busy");
        c.Ok("submit", Shell(d, "true"));
        var (status, detail) = c.Error("submit", Shell(d, "true"));
        Assert.Equal(429, status);
        Assert.Contains("SPARKY_MAX_QUEUED", detail);
        c.Ok("cancel", new JsonObject { ["id"] = "busy" });
    }

    [Fact]
    public async Task A_req_client_works_too()
    {
        await using var d = await TestDaemon.StartAsync();
        using var req = new RequestSocket();
        req.Options.Linger = TimeSpan.Zero;
        req.Connect(d.Daemon.ZmqEndpoint);
        for (int i = 0; i < 3; i++)
        {
            // REQ adds the empty delimiter itself and strips it from the reply: one frame each way.
            req.SendFrame(ZmqTestClient.Pack(ZmqTestClient.Envelope(i == 1 ? "status" : "ping", null, $"req-{i}")));
            var frames = new NetMQMessage();
            Assert.True(req.TryReceiveMultipartMessage(TimeSpan.FromSeconds(10), ref frames));
            Assert.Equal(1, frames.FrameCount);
            var reply = ZmqTestClient.Unpack(frames[0].ToByteArray());
            Assert.Equal(($"req-{i}", i == 1 ? "status.ok" : "ping.ok"), ((string)reply["corr"]!, (string)reply["type"]!));
        }
    }

    [Fact]
    public async Task Fifty_concurrent_dealers_each_get_their_own_twenty_replies()
    {
        await using var d = await TestDaemon.StartAsync();
        const int Clients = 50, PerClient = 20;
        string[] types = ["ping", "status", "list", "submit"];
        var started = System.Diagnostics.Stopwatch.StartNew();
        using var allAnswered = new CountdownEvent(Clients);
        // A thread each (blocking receives would starve the thread pool the daemon answers from).
        var results = await Task.WhenAll(Enumerable.Range(0, Clients).Select(n => Task.Factory.StartNew(() =>
        {
            using var c = new ZmqTestClient(d.Daemon.ZmqEndpoint);
            var sent = new Dictionary<string, string>();
            // All twenty in flight at once: replies computed on other threads come back in any order.
            for (int i = 0; i < PerClient; i++)
            {
                string type = types[i % types.Length], corr = $"client{n}-{i}";
                JsonNode? body = type switch
                {
                    "submit" => Shell(d, "true"),
                    "list" => new JsonObject { ["limit"] = 5 },
                    _ => null,
                };
                c.SendFrames([], ZmqTestClient.Pack(ZmqTestClient.Envelope(type, body, corr)));
                sent[corr] = type;
            }
            var got = new List<(string Corr, string Type)>();
            for (int i = 0; i < PerClient; i++)
            {
                var r = c.Receive(30);
                got.Add(((string)r["corr"]!, (string)r["type"]!));
            }
            // Once every client has all its replies, the daemon has sent everything it was asked for: nothing more
            // comes here (a reply meant for another client, one sent twice). The short receive only drains the wire.
            allAnswered.Signal();
            Assert.True(allAnswered.Wait(TimeSpan.FromSeconds(60)), "not every client got its replies");
            Assert.Null(c.TryReceive(0.05)); // nothing meant for another client
            return (sent, got);
        }, TaskCreationOptions.LongRunning)));
        output.WriteLine($"{Clients} clients x {PerClient} requests in {started.ElapsedMilliseconds} ms");
        foreach (var (sent, got) in results)
        {
            Assert.Equal(sent.Keys.Order(), got.Select(g => g.Corr).Order());
            foreach (var (corr, type) in got) Assert.Equal(sent[corr] + ".ok", type);
        }
        Assert.Equal(Clients * PerClient / types.Length, (long)(await d.Http.GetFromJsonAsync<JsonNode>("queue/status"))!["submitted"]!);
    }

    private static async Task AssertSameList(TestDaemon d, ZmqTestClient c, JsonObject filters, string query)
    {
        var http = await d.Http.GetFromJsonAsync<JsonNode>("api/v1/tasks?" + query);
        var zmq = c.Ok("list", filters);
        Assert.True(JsonNode.DeepEquals(http, zmq), $"list {query}: {zmq?.ToJsonString()} vs {http?.ToJsonString()}");
    }

    private static async Task WaitRunningAsync(TestDaemon d, string id)
    {
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while ((string?)(await d.GetTaskAsync(id))["state"] != "running")
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"{id} did not start");
            await Task.Delay(20);
        }
    }
}
