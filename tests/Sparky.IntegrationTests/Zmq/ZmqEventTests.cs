using System.Net.Sockets;
using System.Text.Json.Nodes;
using NetMQ;
using NetMQ.Sockets;
using Sparky.Core.Config;
using Sparky.IntegrationTests.Support;
using Sparky.Server.Daemon;
using Sparky.Server.Zmq;

namespace Sparky.IntegrationTests.Zmq;

/// <summary>The PUB socket, and how the ZeroMQ endpoints are bound or refused.</summary>
public sealed class ZmqEventTests
{
    private static SubscriberSocket Subscribe(string endpoint, string prefix)
    {
        var sub = new SubscriberSocket();
        sub.Options.Linger = TimeSpan.Zero;
        sub.Connect(endpoint);
        sub.Subscribe(prefix);
        return sub; // its subscription reaches the publisher a moment later: waited for by the caller
    }

    private static List<(string Topic, JsonObject Msg)> Drain(SubscriberSocket sub, Func<List<(string Topic, JsonObject Msg)>, bool> enough, double seconds = 20)
    {
        var got = new List<(string, JsonObject)>();
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (!enough(got) && DateTime.UtcNow < deadline)
        {
            var frames = new NetMQMessage();
            if (!sub.TryReceiveMultipartMessage(TimeSpan.FromMilliseconds(200), ref frames)) continue;
            Assert.Equal(2, frames.FrameCount);
            got.Add((frames[0].ConvertToString(), ZmqTestClient.Unpack(frames[1].ToByteArray())));
        }
        return got;
    }

    [Fact]
    public async Task Every_task_event_is_published_with_its_topic_in_order_and_a_sub_filters_by_prefix()
    {
        await using var d = await TestDaemon.StartAsync();
        using var all = Subscribe(d.Daemon.ZmqEventsEndpoint, "task.");
        using var finishedOnly = Subscribe(d.Daemon.ZmqEventsEndpoint, "task.finished");
        await EventSubscriptions.WaitAsync(d.Http, [all, finishedOnly]);
        var ok = await d.SubmitShellAsync("true");
        var failing = await d.SubmitShellAsync("exit 4");
        await d.WaitAsync(ok);
        await d.WaitAsync(failing);

        var got = Drain(all, g => g.Count(e => e.Topic == "task.finished") == 2);
        foreach (var (id, state) in new[] { (ok, "succeeded"), (failing, "failed") })
        {
            var mine = got.Where(e => (string?)e.Msg["body"]!["id"] == id).ToList();
            Assert.Equal(["task.queued", "task.started", "task.finished"], mine.Select(e => e.Topic));
            foreach (var (topic, msg) in mine)
            {
                Assert.Equal((1, topic), ((int)msg["v"]!, (string)msg["type"]!));
                Assert.InRange((long)msg["ts"]!, DateTimeOffset.UtcNow.AddMinutes(-1).ToUnixTimeMilliseconds(), DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
                Assert.Equal("cpu_short", (string)msg["body"]!["class"]!);
            }
            Assert.Equal(state, (string)mine[^1].Msg["body"]!["state"]!);
        }
        var finished = Drain(finishedOnly, g => g.Count == 2);
        Assert.Equal(["task.finished", "task.finished"], finished.Select(e => e.Topic));
        Assert.Empty(Drain(finishedOnly, g => false, seconds: 0.5)); // nothing else came
    }

    /// <summary>
    /// The socket learns from its XPUB which prefixes are subscribed: with none, an event is neither queued for it nor
    /// encoded; a subscriber gets what its prefix matches; once it disconnects, nothing is encoded again. On libzmq and
    /// on the NetMQ fallback alike.
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Events_are_encoded_only_while_a_subscriber_wants_them(bool netMq)
    {
        var hub = new Sparky.Server.Events.EventHub();
        using var socket = EventSocket.Start(hub, "tcp://127.0.0.1:0", Microsoft.Extensions.Logging.Abstractions.NullLogger<EventSocket>.Instance, null, netMq);
        Assert.StartsWith(netMq ? "NetMQ" : "libzmq", socket.Library);
        static Sparky.Core.Events.SparkyEvent Event(string topic, string id) => new(topic, 1, new JsonObject { ["id"] = id });
        hub.Publish(Event("task.finished", "before"));
        using (var sub = Subscribe(socket.Endpoint, "task.finished"))
        {
            Until(() => socket.Subscribed, "the subscription was not seen");
            Assert.Equal(0, socket.Sent); // the event before it was never encoded
            hub.Publish(Event("task.queued", "t1"));
            hub.Publish(Event("task.finished", "t1"));
            var got = Drain(sub, g => g.Count == 1);
            Assert.Equal(("task.finished", "t1"), (got[0].Topic, (string?)got[0].Msg["body"]!["id"]));
            Assert.Empty(Drain(sub, g => false, seconds: 0.3));
            Assert.Equal(1, socket.Sent); // task.queued, which no prefix matched, was not encoded either
        }
        Until(() => !socket.Subscribed, "the subscriber's leaving was not seen");
        hub.Publish(Event("task.finished", "after"));
        Thread.Sleep(100);
        Assert.Equal(1, socket.Sent);
    }

    private static void Until(Func<bool> condition, string why)
    {
        for (var until = DateTime.UtcNow.AddSeconds(10); !condition(); Thread.Sleep(20))
            Assert.True(DateTime.UtcNow < until, why);
    }

    [Fact]
    public async Task Serve_refuses_a_public_zmq_endpoint_and_reports_a_taken_port_in_one_line()
    {
        var dir = TestDaemon.NewRoot();
        var pub = await SparkyCli.RunAsync(["serve", "--data", Path.Combine(dir, "data"), "--http", "127.0.0.1:0", "--zmq", "tcp://0.0.0.0:0"]);
        Assert.Equal(2, pub.ExitCode);
        Assert.Contains("without CURVE keys", pub.Stderr); // the details: ZmqCurveTests
        Assert.Contains("sparky keys", pub.Stderr);
        Assert.Single(pub.Stderr.Trim().Split('\n'));

        using var taken = new TcpListener(System.Net.IPAddress.Loopback, 0);
        taken.Start();
        int port = ((System.Net.IPEndPoint)taken.LocalEndpoint).Port;
        foreach (var flag in new[] { "--zmq", "--zmq-events" })
        {
            string other = flag == "--zmq" ? "--zmq-events" : "--zmq";
            var r = await SparkyCli.RunAsync(["serve", "--data", Path.Combine(dir, "data"), "--http", "127.0.0.1:0",
                other, "tcp://127.0.0.1:0", flag, $"tcp://127.0.0.1:{port}"]);
            Assert.Equal(1, r.ExitCode);
            Assert.Contains($"tcp://127.0.0.1:{port} is in use", r.Stderr);
            Assert.Contains(flag, r.Stderr);
            Assert.Single(r.Stderr.Trim().Split('\n'));
        }
        Directory.Delete(dir, true);
    }

    [Fact]
    public async Task Port_zero_picks_free_ports_and_the_serving_line_shows_them()
    {
        var lines = new List<string>();
        var root = TestDaemon.NewRoot();
        await using (var d = await SparkyDaemon.StartAsync(TestDaemon.Config(root), lines.Add))
        {
            Assert.Matches(@"^tcp://127\.0\.0\.1:[1-9][0-9]*$", d.ZmqEndpoint);
            Assert.Matches(@"^tcp://127\.0\.0\.1:[1-9][0-9]*$", d.ZmqEventsEndpoint);
            Assert.NotEqual(d.ZmqEndpoint, d.ZmqEventsEndpoint);
            Assert.Contains($"zmq {d.ZmqEndpoint}, events {d.ZmqEventsEndpoint}", Assert.Single(lines));
        }
        // A name works as well as an address.
        await using (var d = await TestDaemon.StartInProcessAsync(() => SparkyDaemon.StartAsync(TestDaemon.Config(root, new() { ["zmq"] = "tcp://localhost:0" }))))
        {
            Assert.Matches(@"^tcp://localhost:[1-9][0-9]*$", d.ZmqEndpoint);
            using var c = new ZmqTestClient(d.ZmqEndpoint);
            c.Ok("ping");
        }
        Directory.Delete(root, true);
    }
}
