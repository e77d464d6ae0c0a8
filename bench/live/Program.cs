using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

// Live views under load: does a room full of dashboards slow the queue down, and do they keep up? See run.sh and
// bench/README.md. Each dashboard is stood in for by its event stream (GET /api/v1/events), the one connection a
// dashboard page holds open; a hundred real browsers would measure the browsers on a machine this size.
CultureInfo.DefaultThreadCurrentCulture = CultureInfo.InvariantCulture;
CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;

bool small = false;
string? sparky = null, resultsDir = null;
for (int i = 0; i < args.Length; i++)
{
    switch (args[i])
    {
        case "--small": small = true; break;
        case "--sparky" when i + 1 < args.Length: sparky = args[++i]; break;
        case "--results" when i + 1 < args.Length: resultsDir = args[++i]; break;
        default: Console.Error.WriteLine($"live bench: bad argument '{args[i]}' (--small; run.sh passes the rest)"); return 64;
    }
}
if (sparky is null || !File.Exists(sparky)) { Console.Error.WriteLine($"live bench: no sparky at '{sparky}' (run bench/live/run.sh)"); return 1; }

int tasks = small ? 500 : 5_000, streams = small ? 20 : 100, rounds = small ? 1 : 3;
const double ThroughputTarget = 0.90, BehindTargetMs = 1000;
var scratch = Directory.CreateTempSubdirectory("sparky-bench-live-").FullName;
Console.WriteLine($"live bench ({(small ? "small" : "full")}): {tasks:N0} tasks of `true` on 2 slots, with 0 and with {streams} event streams, " +
    $"{rounds} round(s) of each, alternated; {Environment.ProcessorCount} CPUs, load {Machine.LoadAvg()}");

ServedDaemon? d = null;
var quiet = new List<Round>();
var watched = new List<Round>();
try
{
    d = ServedDaemon.Start(sparky, Path.Combine(scratch, "data"), ["--cpu-short-slots", "2"]); // two slots, as bench/throughput
    using var http = new HttpClient(new SocketsHttpHandler { UseProxy = false }) { BaseAddress = d.Url, Timeout = TimeSpan.FromSeconds(60) };
    await Round.RunAsync(d, http, Math.Min(tasks, 300), 0); // untimed: the JIT, the store's pages and the pools warm up
    for (int r = 0; r < rounds; r++)
    {
        quiet.Add(await Round.RunAsync(d, http, tasks, 0));
        watched.Add(await Round.RunAsync(d, http, tasks, streams));
        Console.WriteLine($"  round {r + 1}: {quiet[^1].TasksPerS,6:F0} tasks/s alone, {watched[^1].TasksPerS,6:F0} with {streams} streams " +
            $"(worst stream {watched[^1].WorstLagMs:F0} ms behind)");
    }
    d.Stop();
}
catch (Exception e)
{
    Console.Error.WriteLine($"live bench: {e.GetType().Name}: {e.Message}");
    d?.Kill();
    return 1;
}
finally
{
    try { Directory.Delete(scratch, true); } catch (IOException) { }
}

double Median(IEnumerable<double> xs) { var a = xs.Order().ToArray(); return a.Length % 2 == 1 ? a[a.Length / 2] : (a[a.Length / 2 - 1] + a[a.Length / 2]) / 2; }
double alone = Median(quiet.Select(x => x.TasksPerS)), with = Median(watched.Select(x => x.TasksPerS));
double ratio = with / alone;
double worst = watched.Max(x => x.WorstLagMs), p99 = watched.Max(x => x.LagP99Ms), endBehind = watched.Max(x => x.EndBehindMs);
Console.WriteLine();
Console.WriteLine($"  {"",-34} {"tasks/s",8} {"daemon CPU ms/task",19}");
Console.WriteLine($"  {"no event stream",-34} {alone,8:F0} {Median(quiet.Select(x => x.DaemonCpuMsPerTask)),19:F3}");
Console.WriteLine($"  {streams + " event streams",-34} {with,8:F0} {Median(watched.Select(x => x.DaemonCpuMsPerTask)),19:F3}");
Console.WriteLine($"  [{(ratio >= ThroughputTarget ? "met   " : "MISSED")}] throughput with {streams} streams within 10% of none: {ratio:P0}");
Console.WriteLine($"  [{(worst <= BehindTargetMs ? "met   " : "MISSED")}] no stream more than {BehindTargetMs:F0} ms behind: worst event {worst:F0} ms " +
    $"(p99 {p99:F0} ms); the last end reached every stream {endBehind:F0} ms after the queue saw it");
Console.WriteLine($"load at the end: {Machine.LoadAvg()}");
if (resultsDir is not null)
{
    var json = new JsonObject
    {
        ["bench"] = "live", ["mode"] = small ? "small" : "full", ["tasks"] = tasks, ["streams"] = streams, ["rounds"] = rounds,
        ["tasks_per_s_alone"] = Math.Round(alone, 1), ["tasks_per_s_with_streams"] = Math.Round(with, 1), ["ratio"] = Math.Round(ratio, 3),
        ["worst_lag_ms"] = Math.Round(worst, 1), ["lag_p99_ms"] = Math.Round(p99, 1), ["end_behind_ms"] = Math.Round(endBehind, 1),
        ["rounds_alone"] = new JsonArray(quiet.Select(x => (JsonNode)x.Json()).ToArray()),
        ["rounds_with_streams"] = new JsonArray(watched.Select(x => (JsonNode)x.Json()).ToArray()),
        ["cpus"] = Environment.ProcessorCount, ["load_at_end"] = Machine.LoadAvg(),
    };
    Directory.CreateDirectory(resultsDir);
    var path = Path.Combine(resultsDir, $"live-{DateTime.UtcNow:yyyyMMdd-HHmmss}.json");
    File.WriteAllText(path, json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    Console.WriteLine($"results: {path}");
}
return 0;


/// <summary>One timed run of <c>tasks</c> tasks with <c>streams</c> event streams open from before the first submit.</summary>
internal sealed record Round(int Tasks, int Streams, double TasksPerS, double DaemonCpuMsPerTask, double WorstLagMs, double LagP99Ms, double EndBehindMs)
{
    private const int Batch = 500;

    public JsonObject Json() => new()
    {
        ["tasks_per_s"] = Math.Round(TasksPerS, 1), ["daemon_cpu_ms_per_task"] = Math.Round(DaemonCpuMsPerTask, 4),
        ["worst_lag_ms"] = Math.Round(WorstLagMs, 1), ["lag_p99_ms"] = Math.Round(LagP99Ms, 1), ["end_behind_ms"] = Math.Round(EndBehindMs, 1),
    };

    public static async Task<Round> RunAsync(ServedDaemon d, HttpClient http, int tasks, int streams)
    {
        using var stop = new CancellationTokenSource();
        var readers = Enumerable.Range(0, streams).Select(_ => new EventReader()).ToArray();
        var reading = readers.Select(r => r.RunAsync(d.Url, stop.Token)).ToArray();
        await Task.WhenAll(readers.Select(r => r.Open.Task)).WaitAsync(TimeSpan.FromSeconds(60));

        var before = await StatusAsync(http);
        double cpu0 = d.CpuSeconds();
        var clock = Stopwatch.StartNew();
        const string One = """{"payload":{"command":["true"]}}""";
        for (int left = tasks; left > 0; left -= Batch)
        {
            int b = Math.Min(Batch, left);
            using var resp = await http.PostAsync("api/v1/tasks", new StringContent("[" + string.Join(',', Enumerable.Repeat(One, b)) + "]", Encoding.UTF8, "application/json"));
            if (!resp.IsSuccessStatusCode) throw new InvalidOperationException($"submit: {(int)resp.StatusCode} {await resp.Content.ReadAsStringAsync()}");
        }
        JsonNode now;
        while (true)
        {
            now = await StatusAsync(http);
            if ((long)now["processed"]! - (long)before["processed"]! >= tasks) break;
            if (!d.Alive) throw new InvalidOperationException("the daemon died during the run");
            if (clock.Elapsed > TimeSpan.FromSeconds(Math.Max(120, tasks * 0.05))) throw new TimeoutException($"not done after {clock.Elapsed.TotalSeconds:F0} s: {now}");
            await Task.Delay(20);
        }
        double secs = clock.Elapsed.TotalSeconds;
        long queueSawEnd = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        double cpu = d.CpuSeconds() - cpu0;
        long done = (long)now["done"]! - (long)before["done"]!, failed = (long)now["failed"]! - (long)before["failed"]!;
        if (done != tasks || failed != 0) throw new InvalidOperationException($"{done} of {tasks} succeeded, {failed} failed");

        // Every stream must see every end; how long after the queue did the slowest one?
        var all = Task.WhenAll(readers.Select(r => r.SawEnds(tasks)));
        if (await Task.WhenAny(all, Task.Delay(TimeSpan.FromSeconds(30))) != all)
            throw new InvalidOperationException($"a stream lost events: ends seen {string.Join(',', readers.Select(r => r.Ends).Distinct())} of {tasks}");
        await stop.CancelAsync();
        try { await Task.WhenAll(reading); } catch (OperationCanceledException) { } catch (HttpRequestException) { }

        var lags = readers.SelectMany(r => r.Lags).Order().ToArray();
        double end = readers.Length == 0 ? 0 : Math.Max(0, readers.Max(r => r.LastEndAtMs) - queueSawEnd);
        return new Round(tasks, streams, tasks / secs, cpu * 1000 / tasks,
            lags.Length == 0 ? 0 : lags[^1], lags.Length == 0 ? 0 : lags[(int)(0.99 * (lags.Length - 1))], end);
    }

    private static async Task<JsonNode> StatusAsync(HttpClient http) => JsonNode.Parse(await http.GetStringAsync("queue/status"))!;
}

/// <summary>
/// One dashboard's stream: reads <c>GET /api/v1/events</c> and notes, for each event, how long after its timestamp it
/// arrived, and how many task ends it has seen. It parses no more than that, so it costs the machine little.
/// </summary>
internal sealed class EventReader
{
    private static readonly HttpClient Http = new(new SocketsHttpHandler { UseProxy = false }) { Timeout = Timeout.InfiniteTimeSpan };
    private static readonly byte[] TsKey = "\"ts\":"u8.ToArray(), Finished = "\"type\":\"task.finished\""u8.ToArray();
    private TaskCompletionSource? _waiting;
    private int _want = int.MaxValue;

    public TaskCompletionSource Open { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    public List<double> Lags { get; } = [];
    public int Ends { get; private set; }
    public long LastEndAtMs { get; private set; }

    public Task SawEnds(int n)
    {
        lock (Lags)
        {
            if (Ends >= n) return Task.CompletedTask;
            _want = n;
            _waiting = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            return _waiting.Task;
        }
    }

    public async Task RunAsync(Uri daemon, CancellationToken stop)
    {
        using var resp = await Http.GetAsync(new Uri(daemon, "api/v1/events"), HttpCompletionOption.ResponseHeadersRead, stop);
        resp.EnsureSuccessStatusCode();
        await using var body = await resp.Content.ReadAsStreamAsync(stop);
        var buffer = new byte[64 * 1024];
        int kept = 0;
        while (true)
        {
            int n = await body.ReadAsync(buffer.AsMemory(kept), stop);
            if (n == 0) return;
            Open.TrySetResult();
            long at = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
            var span = buffer.AsSpan(0, kept + n);
            int line;
            while ((line = span.IndexOf((byte)'\n')) >= 0)
            {
                Note(span[..line], at);
                span = span[(line + 1)..];
            }
            span.CopyTo(buffer); // a line cut by the read waits for its end
            kept = span.Length;
            if (kept == buffer.Length) Array.Resize(ref buffer, buffer.Length * 2);
        }
    }

    private void Note(ReadOnlySpan<byte> line, long at)
    {
        if (!line.StartsWith("data: "u8)) return;
        int k = line.IndexOf(TsKey);
        if (k < 0) return;
        var digits = line[(k + TsKey.Length)..];
        long ts = 0;
        foreach (var c in digits) { if (c is < (byte)'0' or > (byte)'9') break; ts = ts * 10 + (c - '0'); }
        lock (Lags)
        {
            Lags.Add(at - ts);
            if (line.IndexOf(Finished) < 0) return;
            Ends++;
            LastEndAtMs = at;
            if (Ends >= _want) _waiting?.TrySetResult();
        }
    }
}
