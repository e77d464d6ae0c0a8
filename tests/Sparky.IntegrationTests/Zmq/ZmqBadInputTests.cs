using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using MessagePack;
using Sparky.IntegrationTests.BadInput;
using Sparky.IntegrationTests.Support;
using Xunit.Abstractions;

namespace Sparky.IntegrationTests.Zmq;

/// <summary>Malformed messages on the command socket: each gets an error reply where one can be routed, nothing is
/// stored, and the socket keeps answering.</summary>
public sealed class ZmqBadInputTests(ITestOutputHelper output)
{
    /// <summary>Raw MessagePack, written by hand for the shapes a JSON converter can't make.</summary>
    private static byte[] Raw(Action<MessagePackWriter> write)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        var w = new MessagePackWriter(buffer);
        write(w);
        return buffer.WrittenSpan.ToArray();
    }

    private static void Head(ref MessagePackWriter w, int entries, string type = "submit", string corr = "bad")
    {
        w.WriteMapHeader(entries + 3);
        w.Write("v"); w.Write(1);
        w.Write("type"); w.Write(type);
        w.Write("corr"); w.Write(corr);
    }

    private static byte[] Request(string type, JsonNode? body) => ZmqTestClient.Pack(ZmqTestClient.Envelope(type, body, "bad"));

    [Fact]
    public async Task Each_malformed_message_gets_an_error_reply_and_nothing_is_stored()
    {
        await using var d = await TestDaemon.StartAsync(new() { ["max_body_mb"] = "1" });
        using var c = new ZmqTestClient(d.Daemon.ZmqEndpoint);
        var cases = new CaseCounter(output, "zmq");
        const int MiB = 1024 * 1024;

        // (name, frames after the DEALER's own, expected status, a word of the detail, corr expected back)
        var bad = new List<(string Name, byte[][] Frames, int Status, string Says, bool Corr)>
        {
            ("not MessagePack", [[], [0xc1, 0x00]], 400, "not a MessagePack map", false),
            ("truncated map", [[], [0x83, 0xa1, (byte)'v']], 400, "not valid MessagePack", false),
            ("an array", [[], ZmqTestClient.Pack(new JsonArray(1, 2))], 400, "not a MessagePack map", false),
            ("a string", [[], ZmqTestClient.Pack(JsonValue.Create("ping"))], 400, "not a MessagePack map", false),
            ("empty body frame", [[], []], 400, "not a MessagePack map", false),
            ("type missing", [[], ZmqTestClient.Pack(new JsonObject { ["v"] = 1, ["corr"] = "bad" })], 400, "type is missing", true),
            ("type not a string", [[], ZmqTestClient.Pack(new JsonObject { ["v"] = 1, ["corr"] = "bad", ["type"] = 7 })], 400, "type must be a string", true),
            ("unknown type", [[], Request("launch", null)], 400, "unknown type 'launch'", true),
            ("v missing", [[], ZmqTestClient.Pack(new JsonObject { ["type"] = "ping", ["corr"] = "bad" })], 400, "v is missing", true),
            ("v = 2", [[], ZmqTestClient.Pack(new JsonObject { ["v"] = 2, ["type"] = "ping", ["corr"] = "bad" })], 400, "unsupported v", true),
            ("v a string", [[], ZmqTestClient.Pack(new JsonObject { ["v"] = "1", ["type"] = "ping", ["corr"] = "bad" })], 400, "unsupported v", true),
            ("corr a map", [[], ZmqTestClient.Pack(new JsonObject { ["v"] = 1, ["type"] = "ping", ["corr"] = new JsonObject() })], 400, "corr must be", false),
            ("integer map key", [[], Raw(w => { w.WriteMapHeader(1); w.Write(1); w.Write(1); w.Flush(); })], 400, "key of the message's map is not a string", false),
            ("bytes after the map", [[], [.. Request("ping", null), 0xc0]], 400, "extra bytes", true),
            ("no delimiter frame", [Request("ping", null)], 400, "got 1 frame", false),
            ("a non-empty delimiter", [[1], Request("ping", null)], 400, "must be empty", false),
            ("four frames", [[], Request("ping", null), [1]], 400, "got 3 frame", false),
            ("body over max_body_mb", [[], Raw(w => { Head(ref w, 1); w.Write("body"); w.Write(new string('x', MiB + 10)); w.Flush(); })], 413, "at most 1048576", false),
            ("body nested 100 deep", [[], Raw(w => { Head(ref w, 1); w.Write("body"); for (int i = 0; i < 100; i++) w.WriteArrayHeader(1); w.WriteNil(); w.Flush(); })], 400, "nesting deeper than 64", true),
            ("binary in the body", [[], Raw(w => { Head(ref w, 1); w.Write("body"); w.WriteMapHeader(1); w.Write("payload"); w.Write(new byte[] { 1, 2 }); w.Flush(); })], 400, "binary values", true),
            ("NaN in the body", [[], Raw(w => { Head(ref w, 1); w.Write("body"); w.WriteMapHeader(1); w.Write("retries"); w.Write(double.NaN); w.Flush(); })], 400, "NaN", true),
            ("invalid UTF-8 in the body", [[], Raw(w => { Head(ref w, 1); w.Write("body"); w.WriteMapHeader(1); w.Write("name"); w.WriteString(new byte[] { 0xff, 0xfe }); w.Flush(); })], 400, "not valid UTF-8", true),
            ("duplicate key in the body", [[], Raw(w => { Head(ref w, 1); w.Write("body"); w.WriteMapHeader(2); w.Write("id"); w.Write("a"); w.Write("id"); w.Write("b"); w.Flush(); })], 400, "duplicate key 'id'", true),
            ("extension type in the body", [[], Raw(w => { Head(ref w, 1); w.Write("body"); w.Write(DateTime.UtcNow); w.Flush(); })], 400, "extension types", true),
            ("submit without a body", [[], Request("submit", null)], 400, "", true),
            ("submit an empty array", [[], Request("submit", new JsonArray())], 400, "the array is empty", true),
            ("submit without a payload", [[], Request("submit", new JsonObject { ["id"] = "x" })], 400, "payload", true),
            ("submit a bad id", [[], Request("submit", new JsonObject { ["id"] = "../x", ["payload"] = new JsonObject { ["command"] = "true" } })], 400, "id", true),
            ("submit a bad second task", [[], Request("submit", new JsonArray(new JsonObject { ["payload"] = new JsonObject { ["command"] = "true" } }, 5))], 400, "task [1]", true),
            ("status body not a map", [[], Request("status", new JsonArray())], 400, "body must be a map", true),
            ("status id not a string", [[], Request("status", new JsonObject { ["id"] = 5 })], 400, "id must be a string", true),
            ("status id invalid", [[], Request("status", new JsonObject { ["id"] = "a b" })], 400, "invalid task id", true),
            ("cancel without an id", [[], Request("cancel", new JsonObject())], 400, "cancel needs", true),
            ("list limit a string", [[], Request("list", new JsonObject { ["limit"] = "5" })], 400, "limit must be an integer", true),
            ("list an unknown state", [[], Request("list", new JsonObject { ["state"] = "sleeping" })], 400, "state: unknown state 'sleeping'", true),
        };
        foreach (var (name, frames, status, says, corr) in bad)
        {
            c.SendFrames(frames);
            var reply = c.Receive();
            Assert.True((string?)reply["type"] == "error", $"{name}: {reply.ToJsonString()}");
            var detail = (string)reply["body"]!["detail"]!;
            Assert.True((int)reply["body"]!["status"]! == status && detail.Contains(says), $"{name}: {reply.ToJsonString()}");
            Assert.Equal(corr ? "bad" : null, (string?)reply["corr"]);
            cases.Passed(name, $"{status} {detail}");
        }

        // Past twice max_body_mb, ZeroMQ drops the connection before the message is in memory: no reply can go out.
        using (var huge = new ZmqTestClient(d.Daemon.ZmqEndpoint))
        using (var monitor = new NetMQ.Monitoring.NetMQMonitor(huge.Socket, $"inproc://huge-{Guid.NewGuid():N}", NetMQ.SocketEvents.Disconnected))
        {
            var dropped = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            monitor.Disconnected += (_, _) => dropped.TrySetResult();
            _ = monitor.StartAsync();
            huge.SendFrames([], new byte[3 * MiB]);
            // Once the connection is gone, anything the daemon sent on it has come: the short receive only drains it.
            await dropped.Task.WaitAsync(TimeSpan.FromSeconds(10)); // TimeoutException: the daemon kept the connection
            Assert.Null(huge.TryReceive(0.05));
            cases.Passed("message over twice max_body_mb", "connection dropped, no reply");
        }
        cases.Report();
        Assert.Equal(bad.Count + 1, cases.Count);

        // Nothing was stored, and the socket still answers.
        Assert.Equal("ping.ok", (string)c.Request("ping")["type"]!);
        Assert.Equal(0, (long)(await d.Http.GetFromJsonAsync<JsonNode>("queue/status"))!["submitted"]!);
        Assert.Empty((JsonArray)(await d.Http.GetFromJsonAsync<JsonNode>("api/v1/tasks"))!["tasks"]!);
    }

    [Fact]
    public async Task Fuzz_random_and_mutated_messages_never_kill_the_socket_or_store_anything()
    {
        await using var d = await TestDaemon.StartAsync(new() { ["max_body_mb"] = "1" });
        using var c = new ZmqTestClient(d.Daemon.ZmqEndpoint);
        var rng = new Random(20261125);
        byte[][] templates =
        [
            Request("ping", null),
            Request("status", new JsonObject { ["id"] = "some-task" }),
            Request("list", new JsonObject { ["state"] = "queued", ["limit"] = 3 }),
            Request("cancel", new JsonObject { ["id"] = "no-such-task" }),
            Request("status", null),
        ];
        const int N = 3000;
        int sent = 0, routable = 0, replies = 0, errors = 0;
        for (int i = 0; i < N; i++)
        {
            byte[] body;
            if (rng.Next(3) == 0)
            {
                body = new byte[rng.Next(0, 64)];
                rng.NextBytes(body);
            }
            else
            {
                body = (byte[])templates[rng.Next(templates.Length)].Clone();
                for (int m = rng.Next(1, 4); m > 0; m--)
                {
                    int at = rng.Next(body.Length);
                    switch (rng.Next(3))
                    {
                        case 0: body[at] = (byte)rng.Next(256); break;
                        case 1: body = body[..at]; break;                                      // truncated
                        default: body = [.. body[..at], (byte)rng.Next(256), .. body[at..]]; break; // a byte inserted
                    }
                    if (body.Length == 0) break;
                }
            }
            // Mostly the right framing, sometimes not.
            byte[][] frames = rng.Next(10) switch
            {
                0 => [body],
                1 => [[], body, body],
                2 => [[(byte)rng.Next(256)], body],
                _ => [[], body],
            };
            c.SendFrames(frames);
            sent++;
            routable++; // every message here has an identity, so every one is answered
            // Read in chunks: replies a client leaves unread past the daemon's high-water mark are dropped (issue 13).
            if (sent % 32 == 0 || sent == N) ReadReplies();
        }
        void ReadReplies()
        {
            while (replies < routable && c.TryReceive(5) is { } r)
            {
                replies++;
                var type = (string)r["type"]!;
                Assert.True(type == "error" || type.EndsWith(".ok"), type);
                if (type == "error") errors++;
            }
        }
        output.WriteLine($"fuzz: {sent} messages, {replies} replies, {errors} errors");
        Assert.Equal(routable, replies);
        Assert.Equal("ping.ok", (string)c.Request("ping")["type"]!);
        Assert.Equal(0, (long)(await d.Http.GetFromJsonAsync<JsonNode>("queue/status"))!["submitted"]!);
    }
}
