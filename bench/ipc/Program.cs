using System.Buffers;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using MessagePack;
using NetMQ;
using NetMQ.Sockets;

// Round trips and event delivery of a real `sparky serve` over ZeroMQ and HTTP, on loopback. See bench/README.md.
CultureInfo.DefaultThreadCurrentCulture = CultureInfo.InvariantCulture;
CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;

// The floor's echo server, started by this program in a process of its own (LibZmqEcho).
if (args is ["--echo-server", var echoLoop]) return LibZmqEcho.Serve(poll: echoLoop == "poll");

bool small = false;
string? sparky = null, python = null, clientDir = null, resultsDir = null;
for (int i = 0; i < args.Length; i++)
{
    switch (args[i])
    {
        case "--small": small = true; break;
        case "--sparky" when i + 1 < args.Length: sparky = args[++i]; break;
        case "--python" when i + 1 < args.Length: python = args[++i]; break;
        case "--client" when i + 1 < args.Length: clientDir = args[++i]; break;
        case "--results" when i + 1 < args.Length: resultsDir = args[++i]; break;
        default:
            Console.Error.WriteLine($"ipc bench: unknown argument '{args[i]}' (use --small; run.sh passes the rest)");
            return 64;
    }
}
if (sparky is null || !File.Exists(sparky)) { Console.Error.WriteLine($"ipc bench: no sparky.dll at '{sparky}' (run bench/ipc/run.sh)"); return 1; }

int trips = small ? 500 : 5000, warmTrips = small ? 300 : 2000, events = small ? 50 : 500, warmEvents = small ? 10 : 30;
int pyTrips = small ? 300 : 2000;
bool libzmq = LibZmqDealer.Available;
var scratch = Path.Combine(Path.GetTempPath(), "sparky-bench-ipc-" + Guid.NewGuid().ToString("N")[..8]);
Directory.CreateDirectory(scratch);
var results = new JsonObject
{
    ["bench"] = "ipc",
    ["mode"] = small ? "small" : "full",
    ["started_at"] = DateTimeOffset.UtcNow.ToString("O"),
    ["machine"] = new JsonObject { ["cpus"] = Environment.ProcessorCount, ["loadavg_at_start"] = Machine.LoadAvg() },
};
var rows = new List<Row>();
Console.WriteLine($"ipc bench ({(small ? "small" : "full")}): {trips} round trips of each kind after {warmTrips} warm-up, {events} events after {warmEvents}; " +
    $"{Environment.ProcessorCount} CPUs, load {Machine.LoadAvg()}; data in {scratch}");

Daemon? d = null;
var echoes = new List<EchoServer>();
var echoClients = new List<ZmqClient>();
try
{
    d = Daemon.Start(sparky, Path.Combine(scratch, "data"), curve: false);
    Console.WriteLine($"  daemon pid {d.Pid}: {d.Http}, zmq {d.Zmq} ({d.ZmqLibrary}), events {d.Events}");

    // ---- (a) round trips, the kinds interleaved in blocks so a neighbour's burst hurts them alike. The ZeroMQ
    // client is libzmq's (as pyzmq's) where it is installed, and NetMQ's too: NetMQ's own cost on the client's side
    // is the larger part of its round trip.
    using var zmqNet = new ZmqClient(d.Zmq, null);
    using var zmq = libzmq ? new ZmqClient(new LibZmqDealer(d.Zmq, null)) : zmqNet;
    using var http = new HttpClient(new SocketsHttpHandler { PooledConnectionIdleTimeout = TimeSpan.FromMinutes(10), UseProxy = false })
        { BaseAddress = new Uri(d.Http + "/") };
    var kinds = new List<(string Name, Func<long> Once, int Server)>();
    if (libzmq)
    {
        kinds.Add(("zmq ping (libzmq DEALER)", () => zmq.Request("ping", null), d.Pid));
        kinds.Add(("zmq status, no id (libzmq)", () => zmq.Request("status", null), d.Pid));
        // The floor, in the same blocks: bare libzmq echo servers, no Sparky (LibZmqEcho).
        foreach (var (loop, name) in new[] { ("recv", "floor: libzmq ROUTER echo, blocking recv"), ("poll", "floor: libzmq ROUTER echo, zmq_poll") })
        {
            var echo = EchoServer.Start(loop);
            echoes.Add(echo);
            var client = new ZmqClient(new LibZmqDealer(echo.Endpoint, null));
            echoClients.Add(client);
            kinds.Add((name, client.Echo, echo.Pid));
        }
    }
    kinds.Add(("zmq ping (NetMQ DEALER)", () => zmqNet.Request("ping", null), d.Pid));
    kinds.Add(("zmq status, no id (NetMQ)", () => zmqNet.Request("status", null), d.Pid));
    kinds.Add(("http GET /healthz", () => HttpGet(http, "healthz"), d.Pid));
    kinds.Add(("http GET /queue/status", () => HttpGet(http, "queue/status"), d.Pid));
    rows.AddRange(RoundTrips($"round trip ({d.ZmqLibrary})", kinds, trips, warmTrips));
    echoClients.ForEach(c => c.Dispose());
    echoes.ForEach(e => e.Dispose());

    // ---- pyzmq's round trip: what a user's script sees, with the example client
    if (!string.IsNullOrEmpty(python) && clientDir is not null) rows.Add(PythonPing(rows[0].Group, python, clientDir, d.Zmq, pyTrips));
    else Console.WriteLine("  (no python3 with pyzmq and msgpack: the Python row is skipped)");

    // ---- (b) event delivery: ZeroMQ PUB against SSE, the same events, both subscribed before anything is sent
    var watcher = new EventWatcher(d.Events, d.Http);
    watcher.WaitSubscribed();
    var submitRtt = new List<double>();
    var lat = new Dictionary<string, List<double>>();
    var sseMinusZmq = new List<double>();
    var work = Path.Combine(scratch, "work");
    Directory.CreateDirectory(work);
    var envelope = new JsonObject { ["payload"] = new JsonObject { ["command"] = new JsonArray("true"), ["cwd"] = work } };
    for (int i = 0; i < warmEvents + events; i++)
    {
        long t0 = Stopwatch.GetTimestamp();
        long tReply = zmq.Submit(envelope, out var id);
        var arrivals = watcher.Await(id, TimeSpan.FromSeconds(30));
        if (i < warmEvents) continue;
        submitRtt.Add(Us(tReply - t0));
        foreach (var ((ch, topic), t) in arrivals)
            (lat.TryGetValue($"{ch} {topic}", out var l) ? l : lat[$"{ch} {topic}"] = []).Add(Us(t - t0));
        foreach (var topic in new[] { "task.queued", "task.started" })
            sseMinusZmq.Add(Us(arrivals[("sse", topic)] - arrivals[("zmq", topic)]));
    }
    rows.Add(Row.Of("submit → event", "zmq submit round trip (durable ack)", submitRtt));
    foreach (var topic in new[] { "task.queued", "task.started" })
        foreach (var ch in new[] { "zmq", "sse" })
            rows.Add(Row.Of("submit → event", $"{(ch == "zmq" ? "zmq PUB" : "SSE")} {topic}", lat[$"{ch} {topic}"]));
    rows.Add(Row.Of("submit → event", "SSE minus zmq PUB, the same event", sseMinusZmq));
    watcher.Dispose(); // before the daemon goes: its streams end
    d.Stop();

    // ---- the same round trips from a daemon whose command socket is on NetMQ (SPARKY_ZMQ_LIBRARY=netmq: where
    // libzmq is not installed, and what every daemon used before): the gain of libzmq, measured in this run
    if (libzmq)
    {
        d = Daemon.Start(sparky, Path.Combine(scratch, "data-netmq"), curve: false, zmqLibrary: "netmq");
        using var onNetMq = new ZmqClient(new LibZmqDealer(d.Zmq, null));
        using var onNetMqNet = new ZmqClient(d.Zmq, null);
        using var http2 = new HttpClient(new SocketsHttpHandler { UseProxy = false }) { BaseAddress = new Uri(d.Http + "/") };
        rows.AddRange(RoundTrips($"round trip ({d.ZmqLibrary})",
        [
            ("zmq ping (libzmq DEALER)", () => onNetMq.Request("ping", null), d.Pid),
            ("zmq ping (NetMQ DEALER)", () => onNetMqNet.Request("ping", null), d.Pid),
            ("http GET /healthz", () => HttpGet(http2, "healthz"), d.Pid),
        ], trips, warmTrips));
        d.Stop();
    }

    // ---- ZeroMQ with CURVE: a second daemon, zmq_curve = on, its key made by `sparky keys`
    var keyDir = Path.Combine(scratch, "data-curve");
    var keys = Run("dotnet", sparky, "keys", "--dir", keyDir, "--json");
    var serverKey = (string)JsonNode.Parse(keys)!["public_key"]!;
    d = Daemon.Start(sparky, keyDir, curve: true);
    using (var curveNet = new ZmqClient(d.Zmq, serverKey))
    using (var curve = libzmq ? new ZmqClient(new LibZmqDealer(d.Zmq, serverKey)) : curveNet)
    {
        var curveKinds = new List<(string Name, Func<long> Once, int Server)>();
        if (libzmq) curveKinds.Add(("zmq ping, CURVE (libzmq DEALER)", () => curve.Request("ping", null), d.Pid));
        curveKinds.Add(("zmq ping, CURVE (NetMQ DEALER)", () => curveNet.Request("ping", null), d.Pid));
        rows.AddRange(RoundTrips($"CURVE ({d.ZmqLibrary})", curveKinds, trips, warmTrips));
    }
    d.Stop();
}
catch (Exception e)
{
    Console.Error.WriteLine($"ipc bench: {e.GetType().Name}: {e.Message}");
    d?.Kill();
    return 1;
}
finally
{
    echoes.ForEach(e => e.Dispose());
    try { Directory.Delete(scratch, true); } catch (IOException) { }
}

// ---- the table, the targets, the JSON
Console.WriteLine();
Console.WriteLine($"{"",-27} {"what",-42} {"n",6} {"p50 µs",9} {"p99 µs",9} {"max µs",9} {"server CPU µs",14}");
foreach (var g in rows.GroupBy(r => r.Group))
{
    foreach (var r in g)
        Console.WriteLine($"{(r == g.First() ? g.Key : ""),-27} {r.Name,-42} {r.N,6} {r.P50,9:F0} {r.P99,9:F0} {r.Max,9:F0} {(r.ServerCpuUs is { } c ? c.ToString("F1") : ""),14}");
}
// The targets (issue 20): the daemon's first round-trip group, from the libzmq client where there is one.
var first = rows[0].Group;
var zmqTrips = rows.Where(r => r.Group == first && r.Name.StartsWith(libzmq ? "zmq ping (libzmq" : "zmq ping (NetMQ", StringComparison.Ordinal)
    || r.Group == first && r.Name.StartsWith(libzmq ? "zmq status, no id (libzmq" : "zmq status, no id (NetMQ", StringComparison.Ordinal)).ToList();
var healthz = rows.First(r => r.Group == first && r.Name == "http GET /healthz");
var targets = new JsonArray();
void Target(string what, double value, double goal, string shown, bool strict = false)
{
    bool met = strict ? value < goal : value <= goal;
    Console.WriteLine($"target: {what}: {(met ? "met" : "MISSED")} ({shown})");
    targets.Add(new JsonObject { ["target"] = what, ["value_us"] = Math.Round(value, 1), ["goal_us"] = goal, ["met"] = met });
}
Console.WriteLine();
Target("zmq round trip p50 ≤ 60 µs", zmqTrips.Max(r => r.P50), 60, string.Join(", ", zmqTrips.Select(r => $"{r.Name} {r.P50:F0} µs")));
Target("zmq round trip p99 ≤ 300 µs", zmqTrips.Max(r => r.P99), 300, string.Join(", ", zmqTrips.Select(r => $"{r.Name} {r.P99:F0} µs")));
Target("zmq round trip p50 below HTTP's", zmqTrips.Max(r => r.P50), healthz.P50, $"http GET /healthz {healthz.P50:F0} µs", strict: true);
results["rows"] = new JsonArray(rows.Select(r => (JsonNode)r.Json()).ToArray());
results["targets"] = targets;
((JsonObject)results["machine"]!)["loadavg_at_end"] = Machine.LoadAvg();
Console.WriteLine($"load at the end: {Machine.LoadAvg()}");
if (resultsDir is not null)
{
    Directory.CreateDirectory(resultsDir);
    var path = Path.Combine(resultsDir, $"ipc-{DateTime.UtcNow:yyyyMMdd-HHmmss}.json");
    File.WriteAllText(path, results.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    Console.WriteLine($"results: {path}");
}
return 0;

static double Us(long ticks) => ticks * 1e6 / Stopwatch.Frequency;

// Warms every kind, then measures them in turns of 50, so a neighbour's burst hits them alike.
static IEnumerable<Row> RoundTrips(string group, IReadOnlyList<(string Name, Func<long> Once, int Server)> kinds, int trips, int warmTrips)
{
    var samples = kinds.Select(_ => new List<double>(trips)).ToArray();
    var cpuNs = new long[kinds.Count];
    for (int i = 0; i < warmTrips; i++) foreach (var k in kinds) k.Once();
    const int Block = 50;
    for (int done = 0; done < trips; done += Block)
        for (int k = 0; k < kinds.Count; k++)
        {
            long cpu0 = CpuNs(kinds[k].Server);
            for (int i = 0; i < Math.Min(Block, trips - done); i++)
                samples[k].Add(Us(kinds[k].Once()));
            cpuNs[k] += CpuNs(kinds[k].Server) - cpu0;
        }
    return kinds.Select((k, i) => Row.Of(group, k.Name, samples[i]) with { ServerCpuUs = cpuNs[i] / 1000.0 / trips }).ToList();
}

/// <summary>The CPU time a process has had, all its threads, in ns (the scheduler's own count: /proc/PID/task/*/schedstat).</summary>
static long CpuNs(int pid)
{
    long ns = 0;
    foreach (var task in Directory.EnumerateDirectories($"/proc/{pid}/task"))
    {
        try { ns += long.Parse(File.ReadAllText(Path.Combine(task, "schedstat")).Split(' ')[0], CultureInfo.InvariantCulture); }
        catch (IOException) { } // a thread that ended meanwhile
    }
    return ns;
}


static long HttpGet(HttpClient http, string path)
{
    long t0 = Stopwatch.GetTimestamp();
    using var resp = http.GetAsync(path).GetAwaiter().GetResult();
    resp.Content.ReadAsByteArrayAsync().GetAwaiter().GetResult();
    long t = Stopwatch.GetTimestamp() - t0;
    if (!resp.IsSuccessStatusCode) throw new InvalidOperationException($"GET /{path}: {(int)resp.StatusCode}");
    return t;
}

static string Run(string file, params string[] args)
{
    var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
    foreach (var a in args) psi.ArgumentList.Add(a);
    using var p = Process.Start(psi)!;
    var err = p.StandardError.ReadToEndAsync();
    var output = p.StandardOutput.ReadToEnd();
    p.WaitForExit();
    if (p.ExitCode != 0) throw new InvalidOperationException($"{file} {string.Join(' ', args)}: exit {p.ExitCode}: {err.Result.Trim()}");
    return output;
}

static Row PythonPing(string group, string python, string clientDir, string endpoint, int n)
{
    const string Script = """
        import json, sys, time
        sys.path.insert(0, sys.argv[1])
        from sparky_client import Client
        n = int(sys.argv[3])
        with Client(sys.argv[2], timeout=10) as c:
            for _ in range(n):
                c.ping()
            out = []
            for _ in range(n):
                t = time.perf_counter_ns()
                c.ping()
                out.append((time.perf_counter_ns() - t) / 1000)
        print(json.dumps(out))
        """;
    var us = JsonSerializer.Deserialize<List<double>>(Run(python, "-c", Script, clientDir, endpoint, n.ToString()))!;
    return Row.Of(group, "python ping (pyzmq, sparky_client)", us);
}

internal sealed record Row(string Group, string Name, int N, double P50, double P99, double Max)
{
    /// <summary>The server process's CPU per round trip (all its threads), where measured.</summary>
    public double? ServerCpuUs { get; init; }

    public static Row Of(string group, string name, List<double> us)
    {
        var s = us.Order().ToArray();
        double P(double q) => s[Math.Clamp((int)Math.Ceiling(q * s.Length) - 1, 0, s.Length - 1)];
        return new(group, name, s.Length, P(0.50), P(0.99), s[^1]);
    }

    public JsonObject Json() => new()
    {
        ["group"] = Group, ["name"] = Name, ["n"] = N,
        ["p50_us"] = Math.Round(P50, 1), ["p99_us"] = Math.Round(P99, 1), ["max_us"] = Math.Round(Max, 1),
        ["server_cpu_us"] = ServerCpuUs is { } c ? Math.Round(c, 1) : null,
    };
}

/// <summary>The floor's echo server (<see cref="LibZmqEcho"/>): this program again, in a child process.</summary>
internal sealed class EchoServer : IDisposable
{
    private readonly Process _p;
    public string Endpoint { get; }

    public int Pid => _p.Id;

    private EchoServer(Process p, string endpoint) => (_p, Endpoint) = (p, endpoint);

    public static EchoServer Start(string loop)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true };
        foreach (var a in new[] { System.Reflection.Assembly.GetEntryAssembly()!.Location, "--echo-server", loop }) psi.ArgumentList.Add(a);
        var p = Process.Start(psi)!;
        var endpoint = p.StandardOutput.ReadLine();
        if (endpoint is null || !endpoint.StartsWith("tcp://", StringComparison.Ordinal))
        {
            if (!p.HasExited) p.Kill();
            throw new InvalidOperationException($"the echo server did not start ({endpoint})");
        }
        return new EchoServer(p, endpoint);
    }

    public void Dispose()
    {
        try { if (!_p.HasExited) _p.Kill(); } catch (InvalidOperationException) { }
    }
}

/// <summary>A `sparky serve` child process on free ports, read from its serving line.</summary>
internal sealed class Daemon
{
    private readonly Process _p;
    public string Http { get; }
    public string Zmq { get; }
    public string Events { get; }
    /// <summary>Which ZeroMQ serves its command socket: "NetMQ" where its log says so, else "libzmq".</summary>
    public string ZmqLibrary { get; init; } = "libzmq";
    public int Pid => _p.Id;

    private Daemon(Process p, string http, string zmq, string events) => (_p, Http, Zmq, Events) = (p, http, zmq, events);

    public static Daemon Start(string dll, string data, bool curve, string? zmqLibrary = null)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardError = true, RedirectStandardOutput = true };
        if (zmqLibrary is not null) psi.Environment["SPARKY_ZMQ_LIBRARY"] = zmqLibrary;
        var library = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        foreach (var a in new[] { dll, "serve", "--data", data, "--http", "127.0.0.1:0", "--zmq", "tcp://127.0.0.1:0",
                     "--zmq-events", "tcp://127.0.0.1:0", "--zmq-curve", curve ? "on" : "auto" })
            psi.ArgumentList.Add(a);
        var p = Process.Start(psi)!;
        var serving = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        var stderr = new StringBuilder();
        // Read to the end, so the daemon never blocks on a full pipe.
        p.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is null) { serving.TrySetException(new InvalidOperationException($"the daemon exited: {stderr}")); return; }
            lock (stderr) stderr.AppendLine(e.Data);
            if (e.Data.Contains("zmq command socket on NetMQ")) library.TrySetResult("NetMQ"); // told only then
            if (e.Data.Contains(" serving on http")) serving.TrySetResult(e.Data); // "sparky: info: serving on …"
        };
        p.OutputDataReceived += (_, _) => { };
        p.BeginErrorReadLine();
        p.BeginOutputReadLine();
        if (!serving.Task.Wait(TimeSpan.FromSeconds(60)))
        {
            p.Kill();
            throw new TimeoutException("the daemon did not start within 60 s");
        }
        var m = Regex.Match(serving.Task.Result, @"serving on (http://\S+), zmq (tcp://\S+)(?: \(CURVE\))?, events (tcp://\S+?)(?: \(CURVE\))? ");
        if (!m.Success) { p.Kill(); throw new InvalidOperationException($"unexpected serving line: {serving.Task.Result}"); }
        // Logged before the serving line.
        return new Daemon(p, m.Groups[1].Value, m.Groups[2].Value, m.Groups[3].Value) { ZmqLibrary = library.Task.IsCompleted ? library.Task.Result : "libzmq" };
    }

    /// <summary>SIGTERM, as a user stops it; SIGKILL if it has not exited in 10 s.</summary>
    public void Stop()
    {
        if (_p.HasExited) throw new InvalidOperationException($"the daemon (pid {Pid}) died during the run: exit {_p.ExitCode}");
        using (var kill = Process.Start("kill", ["-TERM", Pid.ToString()])) kill.WaitForExit();
        if (!_p.WaitForExit(10_000)) Kill();
    }

    public void Kill()
    {
        try { if (!_p.HasExited) _p.Kill(); } catch (InvalidOperationException) { }
    }
}

/// <summary>A DEALER: sends [empty][frame], receives [empty][body]; NetMQ's or libzmq's.</summary>
internal interface IDealer : IDisposable
{
    void Send(byte[] frame);
    byte[] Receive(TimeSpan timeout);
}

internal sealed class NetMqDealer : IDealer
{
    private readonly DealerSocket _s = new();

    public NetMqDealer(string endpoint, string? serverKey)
    {
        _s.Options.Linger = TimeSpan.Zero;
        if (serverKey is not null)
        {
            _s.Options.CurveCertificate = new NetMQCertificate();
            _s.Options.CurveServerKey = NetMQCertificate.FromPublicKey(serverKey).PublicKey;
        }
        _s.Connect(endpoint);
    }

    public void Send(byte[] frame)
    {
        _s.SendFrameEmpty(more: true);
        _s.SendFrame(frame);
    }

    public byte[] Receive(TimeSpan timeout)
    {
        List<byte[]>? frames = null;
        if (!_s.TryReceiveMultipartBytes(timeout, ref frames, 2)) throw new TimeoutException($"no reply within {timeout.TotalSeconds} s");
        return frames![1];
    }

    public void Dispose() => _s.Dispose();
}

/// <summary>A DEALER speaking the wire: [empty][{"v":1,"type","corr","ts","body"}], written and read with MessagePack's primitives.</summary>
internal sealed class ZmqClient(IDealer s) : IDisposable
{
    private readonly ArrayBufferWriter<byte> _buf = new(4096);
    private long _corr;

    public ZmqClient(string endpoint, string? serverKey) : this(new NetMqDealer(endpoint, serverKey)) { }

    /// <summary>One request; returns its round trip in Stopwatch ticks. Throws unless the reply is the request's and ok.</summary>
    public long Request(string type, JsonNode? body)
    {
        var (sent, received, _) = Exchange(type, body);
        return received - sent;
    }

    /// <summary>Submits one envelope; returns when the reply arrived (Stopwatch ticks) and the task's id.</summary>
    public long Submit(JsonNode envelope, out string id)
    {
        var (_, received, reply) = Exchange("submit", envelope);
        id = (string)reply!["ids"]![0]!;
        return received;
    }

    /// <summary>A ping's frame sent to an echo server (the floor): returns its round trip in Stopwatch ticks. Throws
    /// unless the same bytes come back.</summary>
    public long Echo()
    {
        var frame = Frame("ping", null, ++_corr);
        long sent = Stopwatch.GetTimestamp();
        s.Send(frame);
        var back = s.Receive(TimeSpan.FromSeconds(10));
        long received = Stopwatch.GetTimestamp();
        if (!back.AsSpan().SequenceEqual(frame)) throw new InvalidOperationException("the echo server sent back something else");
        return received - sent;
    }

    private (long Sent, long Received, JsonNode? Body) Exchange(string type, JsonNode? body)
    {
        long corr = ++_corr;
        var frame = Frame(type, body, corr);

        long sent = Stopwatch.GetTimestamp();
        s.Send(frame);
        var replyFrame = s.Receive(TimeSpan.FromSeconds(10));
        long received = Stopwatch.GetTimestamp();
        // Checked after the clock stops: a real client decodes too, but this one's decoding (through JSON) is not the daemon's cost.
        var reply = JsonNode.Parse(MessagePackSerializer.ConvertToJson(replyFrame))!;
        if ((long?)reply["corr"] != corr || (string?)reply["type"] != type + ".ok")
            throw new InvalidOperationException($"unexpected reply to {type}: {reply.ToJsonString()}");
        return (sent, received, reply["body"]);
    }

    /// <summary>A request's frame: [{"v":1,"type","corr","ts"[,"body"]}].</summary>
    private byte[] Frame(string type, JsonNode? body, long corr)
    {
        _buf.ResetWrittenCount();
        var w = new MessagePackWriter(_buf);
        w.WriteMapHeader(body is null ? 4 : 5);
        w.Write("v"); w.Write(1);
        w.Write("type"); w.Write(type);
        w.Write("corr"); w.Write(corr);
        w.Write("ts"); w.Write(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
        if (body is not null)
        {
            w.Write("body");
            w.WriteRaw(MessagePackSerializer.ConvertFromJson(body.ToJsonString()));
        }
        w.Flush();
        return _buf.WrittenSpan.ToArray();
    }

    public void Dispose() => s.Dispose();
}

/// <summary>
/// Watches the ZeroMQ PUB socket and the SSE stream at once, each on its own thread, stamping each event's arrival
/// (Stopwatch) by channel, task id and topic.
/// </summary>
internal sealed class EventWatcher : IDisposable
{
    private readonly ConcurrentDictionary<(string Id, string Channel, string Topic), long> _seen = new();
    private readonly SemaphoreSlim _arrived = new(0);
    private readonly CancellationTokenSource _stop = new();
    private readonly SubscriberSocket _sub = new();
    private readonly HttpClient _http;
    private readonly Thread _zmqThread, _sseThread;
    private readonly ManualResetEventSlim _sseOpen = new();

    public EventWatcher(string events, string http)
    {
        _sub.Options.Linger = TimeSpan.Zero;
        _sub.Connect(events);
        _sub.Subscribe("task.");
        _http = new HttpClient { BaseAddress = new Uri(http + "/"), Timeout = Timeout.InfiniteTimeSpan };
        _zmqThread = new Thread(ReadZmq) { IsBackground = true, Name = "bench-zmq-sub" };
        _sseThread = new Thread(ReadSse) { IsBackground = true, Name = "bench-sse" };
        _zmqThread.Start();
        _sseThread.Start();
    }

    private static readonly string[] Wanted = ["task.queued", "task.started", "task.finished"];

    private void Record(string channel, string topic, string id, long t)
    {
        if (!Wanted.Contains(topic)) return;
        _seen.TryAdd((id, channel, topic), t);
        _arrived.Release();
    }

    private void ReadZmq()
    {
        while (!_stop.IsCancellationRequested)
        {
            List<byte[]>? frames = null;
            try { if (!_sub.TryReceiveMultipartBytes(TimeSpan.FromMilliseconds(100), ref frames, 2)) continue; }
            catch (ObjectDisposedException) { return; }
            long t = Stopwatch.GetTimestamp();
            var msg = JsonNode.Parse(MessagePackSerializer.ConvertToJson(frames![1]))!;
            Record("zmq", Encoding.UTF8.GetString(frames[0]), (string)msg["body"]!["id"]!, t);
        }
    }

    private void ReadSse()
    {
        try
        {
            using var resp = _http.GetAsync("api/v1/events", HttpCompletionOption.ResponseHeadersRead, _stop.Token).GetAwaiter().GetResult();
            resp.EnsureSuccessStatusCode();
            using var reader = new StreamReader(resp.Content.ReadAsStream(_stop.Token));
            _sseOpen.Set();
            string? topic = null;
            while (reader.ReadLine() is { } line)
            {
                if (line.StartsWith("event: ", StringComparison.Ordinal)) topic = line[7..];
                else if (line.StartsWith("data: ", StringComparison.Ordinal) && topic is not null)
                {
                    long t = Stopwatch.GetTimestamp();
                    Record("sse", topic, (string)JsonNode.Parse(line[6..])!["body"]!["id"]!, t);
                }
            }
        }
        catch (Exception) when (_stop.IsCancellationRequested) { }
        catch (Exception e) { Console.Error.WriteLine($"ipc bench: the SSE stream broke: {e.Message}"); } // Await then times out
    }

    /// <summary>Both channels open; a ZeroMQ subscription takes a moment to reach the publisher.</summary>
    public void WaitSubscribed()
    {
        if (!_sseOpen.Wait(TimeSpan.FromSeconds(10))) throw new TimeoutException("the SSE stream did not open");
        Thread.Sleep(500);
    }

    /// <summary>Waits until both channels have the task's queued, started and finished (so the next sample starts
    /// on an idle daemon); returns the queued and started arrivals by (channel, topic).</summary>
    public Dictionary<(string Channel, string Topic), long> Await(string id, TimeSpan timeout)
    {
        var deadline = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        while (true)
        {
            if (new[] { "zmq", "sse" }.All(ch => Wanted.All(topic => _seen.ContainsKey((id, ch, topic))))) break;
            var left = deadline - Stopwatch.GetTimestamp();
            if (left <= 0) throw new TimeoutException($"the events of {id} did not all arrive within {timeout.TotalSeconds} s");
            _arrived.Wait(TimeSpan.FromMilliseconds(50));
        }
        var a = new Dictionary<(string Channel, string Topic), long>();
        foreach (var ch in new[] { "zmq", "sse" })
            foreach (var topic in Wanted.Take(2))
                a[(ch, topic)] = _seen[(id, ch, topic)];
        foreach (var key in _seen.Keys.Where(k => k.Id == id).ToList()) _seen.TryRemove(key, out _);
        return a;
    }

    public void Dispose()
    {
        _stop.Cancel();
        _zmqThread.Join(1000);
        _sub.Dispose();
        _http.Dispose();
        _sseThread.Join(1000);
    }
}
