using System.Net.Http.Json;
using System.Text.Json.Nodes;
using NetMQ;
using Sparky.IntegrationTests.Support;
using Sparky.IntegrationTests.Zmq;
using Sparky.Server.Daemon;
using Sparky.Server.Zmq;

namespace Sparky.IntegrationTests.Hardening;

/// <summary>Issue 13, point 5: on the CURVE command socket the daemon authenticates clients (and workers), not only itself.</summary>
public sealed class ZmqAuthTests
{
    private static JsonObject Shell(TestDaemon d, string shell) =>
        new() { ["payload"] = new JsonObject { ["command"] = shell, ["cwd"] = d.WorkDir } };

    [Fact]
    public async Task A_random_key_gets_no_answer_a_listed_client_key_works_and_a_worker_key_cannot_submit()
    {
        var root = TestDaemon.NewRoot();
        var data = Path.Combine(root, "data");
        var serverKey = CurveKeys.Generate(data, force: false);
        var alice = await SparkyCli.RunAsync(["keys", "--client", "alice", "--data", data, "--json"]);
        Assert.True(alice.ExitCode == 0, alice.Stderr);
        var aliceFile = (string)JsonNode.Parse(alice.Stdout)!["secret_key_file"]!;
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(aliceFile));
        var w1 = await SparkyCli.RunAsync(["keys", "--worker", "w1", "--data", data, "--json"]);
        Assert.True(w1.ExitCode == 0, w1.Stderr);
        var workerFile = (string)JsonNode.Parse(w1.Stdout)!["secret_key_file"]!;
        // A name already listed is refused without --force.
        Assert.Equal(2, (await SparkyCli.RunAsync(["keys", "--client", "alice", "--data", data])).ExitCode);

        await using var d = await TestDaemon.StartAsync(new() { ["zmq_curve"] = "on" }, root);
        var endpoint = d.Daemon.ZmqEndpoint;

        // A fresh key pair with the server's public key: CURVE lets it in, the daemon answers nothing, runs nothing.
        // (Silence gives no sign to wait for: 1.5 s each, where a listed key's answer takes milliseconds.)
        using (var stranger = new KeyedClient(endpoint, serverKey, new NetMQCertificate()))
        {
            Assert.Null(stranger.Request("ping", null, 1.5));
            Assert.Null(stranger.Request("submit", Shell(d, "touch stranger-ran"), 1.5));
        }
        // The same without any auth field, as before this change: nothing either.
        using (var plain = new ZmqTestClient(endpoint, serverKey))
        {
            plain.SendFrames([], ZmqTestClient.Pack(ZmqTestClient.Envelope("submit", Shell(d, "touch anonymous-ran"), "anon")));
            Assert.Null(plain.TryReceive(1.5));
        }

        // The listed client key: answered, and its task runs.
        using var client = new KeyedClient(endpoint, serverKey, KeyedClient.LoadKey(aliceFile));
        Assert.Equal("ping.ok", (string?)client.Request("ping", null)!["type"]);
        var ok = client.Request("submit", Shell(d, "touch alice-ran"))!;
        Assert.True((string?)ok["type"] == "submit.ok", ok.ToJsonString());
        await d.WaitAsync((string)ok["body"]!["ids"]![0]!);
        Assert.True(File.Exists(Path.Combine(d.WorkDir, "alice-ran")));
        // A client key cannot pose as a worker.
        var hello = client.Request("hello", new JsonObject { ["name"] = "fake", ["slots"] = 1 })!;
        Assert.Equal(("error", 403), ((string?)hello["type"], (int?)hello["body"]!["status"]));

        // A worker key may ping and speak the worker protocol, but cannot submit, list or cancel.
        using var worker = new KeyedClient(endpoint, serverKey, KeyedClient.LoadKey(workerFile));
        Assert.Equal("ping.ok", (string?)worker.Request("ping", null)!["type"]);
        foreach (var type in new[] { "submit", "list", "cancel" })
        {
            var r = worker.Request(type, type == "submit" ? Shell(d, "touch worker-ran") : new JsonObject { ["id"] = "x" })!;
            Assert.Equal(("error", 403), ((string?)r["type"], (int?)r["body"]!["status"]));
        }
        // Nothing queued or running: whatever was stored has run to its end.
        await Api.TaskLifecycleTests.WaitForAsync(async () =>
            (await d.Http.GetFromJsonAsync<JsonNode>("queue/status")) is { } s && (long)s["pending"]! + (long)s["running"]! == 0);
        foreach (var f in new[] { "stranger-ran", "anonymous-ran", "worker-ran" }) Assert.False(File.Exists(Path.Combine(d.WorkDir, f)), f);
        Assert.Equal(1L, (long)(await d.Http.GetFromJsonAsync<JsonNode>("queue/status"))!["submitted"]!);

        // Revoked (its line deleted): no answer, within the second the daemon takes to read the list again.
        var list = Path.Combine(data, "clients.keys");
        File.WriteAllLines(list, File.ReadAllLines(list).Where(l => !l.EndsWith(" alice")));
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (client.Request("ping", null, 0.5) is not null)
            Assert.True(DateTime.UtcNow < deadline, "the revoked key still gets answers");
    }

    /// <summary>NetMQ's PUB cannot check a subscriber's key, and the daemon's public key is no secret: where clients
    /// are authenticated, the event socket has a key of its own that only an authenticated client is told.</summary>
    [Fact]
    public async Task Where_clients_are_authenticated_only_they_can_follow_events()
    {
        var root = TestDaemon.NewRoot();
        var data = Path.Combine(root, "data");
        var serverKey = CurveKeys.Generate(data, force: false);
        var alice = await SparkyCli.RunAsync(["keys", "--client", "alice", "--data", data, "--json"]);
        var aliceFile = (string)JsonNode.Parse(alice.Stdout)!["secret_key_file"]!;
        var w1 = await SparkyCli.RunAsync(["keys", "--worker", "w1", "--data", data, "--json"]);
        var workerFile = (string)JsonNode.Parse(w1.Stdout)!["secret_key_file"]!;

        var d = await TestDaemon.StartAsync(new() { ["zmq_curve"] = "on" }, root);
        var eventsFile = Path.Combine(data, CurveKeys.EventsKeyFile);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(eventsFile));

        using var client = new KeyedClient(d.Daemon.ZmqEndpoint, serverKey, KeyedClient.LoadKey(aliceFile));
        var eventsKey = (string?)client.Request("ping", null)!["body"]!["events_key"];
        Assert.NotNull(eventsKey);
        Assert.NotEqual(serverKey, eventsKey);
        using (var worker = new KeyedClient(d.Daemon.ZmqEndpoint, serverKey, KeyedClient.LoadKey(workerFile)))
            Assert.Null(worker.Request("ping", null)!["body"]!["events_key"]); // a worker has no use for it

        // Subscribers: one with the key the client was told (any key pair of its own), one with the daemon's
        // published key (what anyone has), one with a made-up key.
        using var told = Zmq.ZmqCurveTests.Subscribe(d.Daemon.ZmqEventsEndpoint, eventsKey);
        using var published = Zmq.ZmqCurveTests.Subscribe(d.Daemon.ZmqEventsEndpoint, serverKey);
        using var made = Zmq.ZmqCurveTests.Subscribe(d.Daemon.ZmqEventsEndpoint, new NetMQCertificate().PublicKeyZ85);
        // Subscriptions reach the publisher after the CURVE handshake, which a loaded machine can take its time over: a
        // first task's end seen by the keyed subscriber says its subscription is in place (no fixed sleep to outlast).
        for (int tries = 1; ; tries++)
        {
            var warmUp = (string)client.Request("submit", Shell(d, "true"))!["body"]!["ids"]![0]!;
            if (Zmq.ZmqCurveTests.Topics(told, warmUp, 3, untilFinished: true).Contains("task.finished")) break;
            Assert.True(tries < 10, "the keyed subscriber saw no task end in 30 s");
        }
        var ok = client.Request("submit", Shell(d, "true"))!;
        var id = (string)ok["body"]!["ids"]![0]!;
        Assert.Equal(["task.queued", "task.started", "task.finished"], Zmq.ZmqCurveTests.Topics(told, id, 20, untilFinished: true));
        Assert.Empty(Zmq.ZmqCurveTests.Topics(published, id, 0.5, untilFinished: false));
        Assert.Empty(Zmq.ZmqCurveTests.Topics(made, id, 0.5, untilFinished: false));

        // The same key across a restart: subscribers keep it.
        client.Dispose();
        await d.DisposeAsync();
        await using var again = await TestDaemon.StartAsync(new() { ["zmq_curve"] = "on" }, root);
        using var client2 = new KeyedClient(again.Daemon.ZmqEndpoint, serverKey, KeyedClient.LoadKey(aliceFile));
        Assert.Equal(eventsKey, (string?)client2.Request("ping", null)!["body"]!["events_key"]);
    }

    [Fact]
    public void Events_off_loopback_need_client_keys_and_an_authenticating_command_socket()
    {
        var root = TestDaemon.NewRoot();
        var data = Path.Combine(root, "data");
        CurveKeys.Generate(data, force: false);
        var noList = SparkyDaemon.CheckBinding(TestDaemon.Config(root, new() { ["zmq_events"] = "tcp://0.0.0.0:5556" }));
        Assert.Contains("refusing to bind zmq_events to tcp://0.0.0.0:5556 without client keys", noList);
        ZmqAuth.Authorise(Path.Combine(data, ZmqAuth.ClientsFile), "c1", Path.Combine(data, "keys", "c1.key"), force: false);
        // Listed, but the command socket on loopback without CURVE cannot tell clients the event key.
        Assert.Contains("set zmq_curve = on", SparkyDaemon.CheckBinding(TestDaemon.Config(root, new() { ["zmq_events"] = "tcp://0.0.0.0:5556" })));
        Assert.Null(SparkyDaemon.CheckBinding(TestDaemon.Config(root, new() { ["zmq_events"] = "tcp://0.0.0.0:5556", ["zmq_curve"] = "on" })));
        Directory.Delete(root, true);
    }

    [Fact]
    public async Task Off_loopback_the_command_socket_needs_a_key_list_and_says_how_to_make_one()
    {
        var root = TestDaemon.NewRoot();
        var data = Path.Combine(root, "data");
        CurveKeys.Generate(data, force: false);
        var refusal = SparkyDaemon.CheckBinding(TestDaemon.Config(root, new() { ["zmq"] = "tcp://0.0.0.0:5555" }));
        Assert.NotNull(refusal);
        Assert.Contains("without client keys", refusal);
        Assert.Contains("sparky keys --client NAME", refusal);
        Assert.DoesNotContain("\n", refusal);
        var r = await SparkyCli.RunAsync(["serve", "--data", data, "--http", "127.0.0.1:0", "--zmq", "tcp://0.0.0.0:0", "--zmq-events", "tcp://127.0.0.1:0"]);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("sparky keys --client NAME", r.Stderr);
        Assert.Single(r.Stderr.Trim().Split('\n'));

        Assert.Equal(0, (await SparkyCli.RunAsync(["keys", "--worker", "node1", "--data", data])).ExitCode);
        Assert.Null(SparkyDaemon.CheckBinding(TestDaemon.Config(root, new() { ["zmq"] = "tcp://0.0.0.0:5555" })));
        Directory.Delete(root, true);
    }
}
