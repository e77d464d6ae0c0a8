using System.Net.NetworkInformation;
using System.Net.Sockets;
using System.Text.Json.Nodes;
using NetMQ;
using NetMQ.Sockets;
using Sparky.IntegrationTests.Support;
using Sparky.Server.Daemon;
using Sparky.Server.Zmq;
using Xunit.Abstractions;

namespace Sparky.IntegrationTests.Zmq;

/// <summary>CURVE on the ZeroMQ sockets: <c>sparky keys</c>, who gets answers, and what is refused.</summary>
public sealed class ZmqCurveTests(ITestOutputHelper output)
{
    /// <summary>How long a client without the right key waits to show it gets nothing. A reply to a keyed client
    /// takes a few ms, so this is ample; a wrong client would get its reply well within it.</summary>
    private static readonly double Silence = 1.5;

    private static string Keys(string dir) => CurveKeys.Generate(dir, force: false);

    private static JsonObject Shell(TestDaemon d, string shell) =>
        new() { ["payload"] = new JsonObject { ["command"] = shell, ["cwd"] = d.WorkDir } };

    /// <summary>A key pair that is not the daemon's: its public key is a valid key, just the wrong one.</summary>
    private static string WrongKey() => new NetMQCertificate().PublicKeyZ85;

    /// <summary>A non-loopback IPv4 address of this machine that is up, if there is one.</summary>
    private static string? NonLoopbackAddress() =>
        NetworkInterface.GetAllNetworkInterfaces()
            .Where(n => n.OperationalStatus == OperationalStatus.Up && n.NetworkInterfaceType != NetworkInterfaceType.Loopback)
            .SelectMany(n => n.GetIPProperties().UnicastAddresses)
            .Select(a => a.Address)
            .FirstOrDefault(a => a.AddressFamily == AddressFamily.InterNetwork && !System.Net.IPAddress.IsLoopback(a))?.ToString();

    [Fact]
    public async Task Keys_writes_a_0600_secret_and_the_public_key_it_prints_and_never_overwrites_without_force()
    {
        var root = TestDaemon.NewRoot();
        var dir = Path.Combine(root, "keys");
        var r = await SparkyCli.RunAsync(["keys", "--dir", dir]);
        Assert.True(r.ExitCode == 0, r.Stderr);
        string secret = Path.Combine(dir, "sparky.key"), pub = Path.Combine(dir, "sparky.pub");
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(secret));
        Assert.Equal(UnixFileMode.None, File.GetUnixFileMode(pub) & (UnixFileMode.GroupWrite | UnixFileMode.OtherWrite));
        var publicKey = File.ReadAllText(pub).Trim();
        Assert.Equal(40, publicKey.Length);
        Assert.Contains($"public key: {publicKey}", r.Stdout);
        Assert.Contains("server_key=", r.Stdout); // says how a client uses it
        // The secret file holds the pair's secret half: the public key derives from it.
        Assert.Equal(publicKey, CurveKeys.Load(secret).PublicKeyZ85);
        Assert.DoesNotContain(CurveKeys.Load(secret).SecretKeyZ85!, r.Stdout);

        // A second run refuses, in one line, and leaves the key alone; --force replaces it.
        var before = File.ReadAllText(secret);
        var again = await SparkyCli.RunAsync(["keys", "--dir", dir]);
        Assert.Equal(2, again.ExitCode);
        Assert.Contains("--force", again.Stderr);
        Assert.Single(again.Stderr.Trim().Split('\n'));
        Assert.Equal(before, File.ReadAllText(secret));
        var forced = await SparkyCli.RunAsync(["keys", "--dir", dir, "--force", "--json"]);
        Assert.True(forced.ExitCode == 0, forced.Stderr);
        var json = JsonNode.Parse(forced.Stdout)!;
        Assert.NotEqual(publicKey, (string)json["public_key"]!);
        Assert.Equal((string)json["public_key"]!, File.ReadAllText(pub).Trim());
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(secret));

        // Without --dir: the data directory, where serve looks.
        var data = Path.Combine(root, "data");
        Assert.Equal(0, (await SparkyCli.RunAsync(["keys", "--data", data])).ExitCode);
        Assert.True(File.Exists(Path.Combine(data, "sparky.key")));
        Directory.Delete(root, true);
    }

    [Fact]
    public async Task A_curve_daemon_answers_only_clients_with_its_public_key_and_keeps_serving()
    {
        var root = TestDaemon.NewRoot();
        var publicKey = Keys(Path.Combine(root, "data"));
        await using var d = await TestDaemon.StartAsync(new() { ["zmq_curve"] = "on" }, root);
        Assert.Equal(publicKey, d.Daemon.ZmqCurvePublicKey);

        using var good = new ZmqTestClient(d.Daemon.ZmqEndpoint, publicKey);
        Assert.True((bool)good.Ok("ping")!["pong"]!);

        // Plain: the handshake fails, the request is never read, nothing comes back.
        using (var plain = new ZmqTestClient(d.Daemon.ZmqEndpoint))
        {
            plain.SendFrames([], ZmqTestClient.Pack(ZmqTestClient.Envelope("ping", null, "plain")));
            Assert.Null(plain.TryReceive(Silence));
        }
        // The right mechanism with a wrong server key: the daemon can't open the client's hello, nothing comes back.
        using (var wrong = new ZmqTestClient(d.Daemon.ZmqEndpoint, WrongKey()))
        {
            wrong.SendFrames([], ZmqTestClient.Pack(ZmqTestClient.Envelope("submit", Shell(d, "touch never-run"), "wrong")));
            Assert.Null(wrong.TryReceive(Silence));
        }
        Assert.False(File.Exists(Path.Combine(d.WorkDir, "never-run")));
        Assert.Equal(0L, (long)good.Ok("status")!["submitted"]!);

        // The keyed client, already connected and a new one, still get answers: submit and status work end to end.
        var id = (string)((JsonArray)good.Ok("submit", Shell(d, "echo curve"))!["ids"]!).Single()!;
        await d.WaitAsync(id);
        using var late = new ZmqTestClient(d.Daemon.ZmqEndpoint, publicKey);
        Assert.Equal("succeeded", (string)late.Ok("status", new JsonObject { ["id"] = id })!["state"]!);
    }

    internal static SubscriberSocket Subscribe(string endpoint, string? serverKey)
    {
        var sub = new SubscriberSocket();
        sub.Options.Linger = TimeSpan.Zero;
        ZmqTestClient.CurveClient(sub, serverKey);
        sub.Connect(endpoint);
        sub.Subscribe("task.");
        return sub;
    }

    internal static List<string> Topics(SubscriberSocket sub, string id, double seconds, bool untilFinished)
    {
        var got = new List<string>();
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (DateTime.UtcNow < deadline && !(untilFinished && got.Contains("task.finished")))
        {
            var frames = new NetMQMessage();
            if (!sub.TryReceiveMultipartMessage(TimeSpan.FromMilliseconds(100), ref frames)) continue;
            if ((string?)ZmqTestClient.Unpack(frames[1].ToByteArray())["body"]!["id"] == id) got.Add(frames[0].ConvertToString());
        }
        return got;
    }

    [Fact]
    public async Task The_event_socket_with_curve_publishes_only_to_subscribers_with_its_public_key()
    {
        var root = TestDaemon.NewRoot();
        var publicKey = Keys(Path.Combine(root, "data"));
        await using var d = await TestDaemon.StartAsync(new() { ["zmq_curve"] = "on" }, root);
        using var good = Subscribe(d.Daemon.ZmqEventsEndpoint, publicKey);
        using var plain = Subscribe(d.Daemon.ZmqEventsEndpoint, null);
        using var wrong = Subscribe(d.Daemon.ZmqEventsEndpoint, WrongKey());
        await EventSubscriptions.WaitAsync(d.Http, good); // after the CURVE handshake, which a loaded machine takes its time over
        Thread.Sleep(500); // the refused ones have had as long as that, and half a second more, to get in

        var id = await d.SubmitShellAsync("true");
        Assert.Equal(["task.queued", "task.started", "task.finished"], Topics(good, id, 20, untilFinished: true));
        Assert.Empty(Topics(plain, id, 0.5, untilFinished: false));
        Assert.Empty(Topics(wrong, id, 0.5, untilFinished: false));
    }

    [Fact]
    public async Task Off_loopback_the_daemon_binds_with_curve_from_the_data_dirs_key_and_on_loopback_only_when_asked()
    {
        var root = TestDaemon.NewRoot();
        var publicKey = Keys(Path.Combine(root, "data"));

        // Loopback, zmq_curve = auto: plain, even with a key there (existing clients keep working).
        await using (var d = await TestDaemon.StartAsync(root: root))
        {
            Assert.Null(d.Daemon.ZmqCurvePublicKey);
            using var plain = new ZmqTestClient(d.Daemon.ZmqEndpoint);
            Assert.True((bool)plain.Ok("ping")!["pong"]!);
        }

        if (NonLoopbackAddress() is not { } ip)
        {
            output.WriteLine("no non-loopback IPv4 address is up on this machine: only loopback with zmq_curve = on was tested");
            return;
        }
        output.WriteLine($"non-loopback address: {ip}");
        // Off loopback the command socket also needs client keys (issue 13): a listed one.
        var data = Path.Combine(root, "data");
        var clientKey = Path.Combine(data, "keys", "c1.key");
        ZmqAuth.Authorise(Path.Combine(data, ZmqAuth.ClientsFile), "c1", clientKey, force: false);
        await using (var d = await TestDaemon.StartAsync(new() { ["zmq"] = $"tcp://{ip}:0", ["zmq_events"] = $"tcp://{ip}:0" }, root))
        {
            Assert.StartsWith($"tcp://{ip}:", d.Daemon.ZmqEndpoint);
            Assert.Equal(publicKey, d.Daemon.ZmqCurvePublicKey);
            using var good = new Hardening.KeyedClient(d.Daemon.ZmqEndpoint, publicKey, Hardening.KeyedClient.LoadKey(clientKey));
            // With clients authenticated, the event socket's key is the one a listed client is told, not the public one.
            using var events = Subscribe(d.Daemon.ZmqEventsEndpoint, (string?)good.Request("ping", null)!["body"]!["events_key"]);
            await EventSubscriptions.WaitAsync(d.Http, events);
            var id = (string)((JsonArray)good.Request("submit", Shell(d, "true"))!["body"]!["ids"]!).Single()!;
            Assert.Contains("task.finished", Topics(events, id, 20, untilFinished: true));
            using var plain = new ZmqTestClient(d.Daemon.ZmqEndpoint);
            plain.SendFrames([], ZmqTestClient.Pack(ZmqTestClient.Envelope("ping", null, "plain")));
            Assert.Null(plain.TryReceive(Silence));
            Assert.True((bool)good.Request("ping", null)!["body"]!["pong"]!);
        }
        Directory.Delete(root, true);
    }

    [Fact]
    public void Binding_is_refused_without_a_usable_key_where_curve_is_needed()
    {
        var root = TestDaemon.NewRoot();
        var data = Path.Combine(root, "data");
        string? Check(Dictionary<string, string> s) => SparkyDaemon.CheckBinding(TestDaemon.Config(root, s));

        // Off loopback without a key: refused, saying how to make one.
        foreach (var (name, value) in new[] { ("zmq", "tcp://0.0.0.0:5555"), ("zmq_events", "tcp://10.1.2.3:5556"), ("zmq", "tcp://*:5555") })
        {
            var refusal = Check(new() { [name] = value });
            Assert.NotNull(refusal);
            Assert.Contains($"refusing to bind {name} to {value} without CURVE keys", refusal);
            Assert.Contains("sparky keys", refusal);
        }
        // zmq_curve = on wants a key on loopback too.
        Assert.Contains("zmq_curve = on", Check(new() { ["zmq_curve"] = "on" }));
        Assert.Null(Check(new()));

        // With <data>/sparky.key: accepted on loopback; off loopback only with a list of client keys too (issue 13);
        // zmq_curve = off is still refused off loopback.
        Keys(data);
        Assert.Contains("without client keys", Check(new() { ["zmq"] = "tcp://0.0.0.0:5555" }));
        ZmqAuth.Authorise(Path.Combine(data, ZmqAuth.ClientsFile), "c1", Path.Combine(data, "keys", "c1.key"), force: false);
        Assert.Null(Check(new() { ["zmq"] = "tcp://0.0.0.0:5555" }));
        Assert.Null(Check(new() { ["zmq_curve"] = "on" }));
        Assert.Contains("zmq_curve = off", Check(new() { ["zmq"] = "tcp://0.0.0.0:5555", ["zmq_curve"] = "off" }));

        // zmq_curve_key names the file: a missing one or one that holds no key is refused, whatever is in data.
        var missing = Path.Combine(root, "nope.key");
        Assert.Contains($"zmq_curve_key {missing} does not exist", Check(new() { ["zmq_curve"] = "on", ["zmq_curve_key"] = missing }));
        var garbage = Path.Combine(root, "garbage.key");
        File.WriteAllText(garbage, "# not a key\nhello\n");
        Assert.Contains("holds no CURVE secret key", Check(new() { ["zmq_curve"] = "on", ["zmq_curve_key"] = garbage }));
        Directory.Delete(root, true);
    }

    [Fact]
    public async Task Serve_off_loopback_without_a_key_refuses_in_one_line_that_says_how_to_make_one()
    {
        var dir = TestDaemon.NewRoot();
        var r = await SparkyCli.RunAsync(["serve", "--data", Path.Combine(dir, "data"), "--http", "127.0.0.1:0", "--zmq", "tcp://0.0.0.0:0", "--zmq-events", "tcp://127.0.0.1:0"]);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("refusing to bind zmq to tcp://0.0.0.0:0 without CURVE keys", r.Stderr);
        Assert.Contains("sparky keys --dir", r.Stderr);
        Assert.Single(r.Stderr.Trim().Split('\n'));
        Directory.Delete(dir, true);
    }
}
