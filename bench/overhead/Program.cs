using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

// The daemon alone: a real `sparky serve` (HTTP door, engine, store, events, metrics) whose cpu_short class runs nothing
// (bench_noop_classes, a benchmark-only setting: each attempt ends at once with exit 0 through the same lifecycle, store
// writes and events as a real one), so what it costs per task is the orchestrator's own, apart from the kernel's
// spawning and reaping. See run.sh and bench/README.md.
CultureInfo.DefaultThreadCurrentCulture = CultureInfo.InvariantCulture;
CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;

bool small = false;
string? sparky = null, resultsDir = null, baseline = null, baselineLabel = "baseline";
for (int i = 0; i < args.Length; i++)
{
    switch (args[i])
    {
        case "--small": small = true; break;
        case "--sparky" when i + 1 < args.Length: sparky = args[++i]; break;
        case "--results" when i + 1 < args.Length: resultsDir = args[++i]; break;
        case "--baseline" when i + 1 < args.Length: baseline = args[++i]; break;
        case "--baseline-label" when i + 1 < args.Length: baselineLabel = args[++i]; break;
        default: Console.Error.WriteLine($"overhead bench: bad argument '{args[i]}' (--small; run.sh passes the rest)"); return 64;
    }
}
if (sparky is null || !File.Exists(sparky)) { Console.Error.WriteLine($"overhead bench: no sparky at '{sparky}' (run bench/overhead/run.sh)"); return 1; }
if (baseline is not null && !File.Exists(baseline)) { Console.Error.WriteLine($"overhead bench: no baseline sparky at '{baseline}'"); return 1; }

int tasks = Knob("SPARKY_BENCH_N", small ? 3_000 : 100_000), rounds = Knob("SPARKY_BENCH_ROUNDS", small ? 1 : 3);
int batch = Knob("SPARKY_BENCH_BATCH", 1_000), slots = Knob("SPARKY_BENCH_SLOTS", 2), warmup = Knob("SPARKY_BENCH_WARMUP", small ? 1_000 : 5_000);
const double CpuTargetMs = 0.1;
var scratch = Directory.CreateTempSubdirectory("sparky-bench-overhead-").FullName;
Console.WriteLine($"overhead bench ({(small ? "small" : "full")}): {tasks:N0} no-op tasks (bench_noop_classes = cpu_short) on {slots} slots, " +
    $"submitted in batches of {batch:N0}, {rounds} round(s) after {warmup:N0} untimed; {Environment.ProcessorCount} CPUs, load {Machine.LoadAvg()}");
Console.WriteLine($"  daemon: {sparky}" + (baseline is null ? "" : $"\n  baseline @{baselineLabel}: {baseline}"));
Console.WriteLine("  durability: every submission is fsynced before its answer (synchronous=FULL); starts and ends are committed in the writer's " +
    "group commits with synchronous=NORMAL (they survive a crash of the daemon, not a power cut, until the next submission's fsync); no setting changes either");

var daemons = new List<(string Label, ServedDaemon D)>();
var results = new Dictionary<string, List<Round>>();
try
{
    var extra = new[] { "--cpu-short-slots", slots.ToString(), "--bench-noop-classes", "cpu_short" };
    foreach (var (label, exe) in new[] { ("current", sparky), (baselineLabel, baseline) })
    {
        if (exe is null) continue;
        daemons.Add((label, ServedDaemon.Start(exe, Path.Combine(scratch, label), extra)));
        results[label] = [];
    }
    using var http = new HttpClient(new SocketsHttpHandler { UseProxy = false }) { Timeout = TimeSpan.FromSeconds(120) };
    foreach (var (_, d) in daemons) await Round.RunAsync(d, http, warmup, batch); // untimed: the JIT, the store's pages and the pools warm up
    for (int r = 0; r < rounds; r++)
    {
        // The two swap order each round, so neither always follows the other.
        var order = r % 2 == 0 ? daemons : Enumerable.Reverse(daemons).ToList();
        foreach (var (label, d) in order) results[label].Add(await Round.RunAsync(d, http, tasks, batch));
        Console.WriteLine($"  round {r + 1}: " + string.Join("; ", daemons.Select(x =>
            $"{x.Label} {results[x.Label][^1].TasksPerS:F0} tasks/s, {results[x.Label][^1].DaemonCpuMsPerTask:F3} ms CPU/task")));
    }
    foreach (var (_, d) in daemons) d.Stop();
}
catch (Exception e)
{
    Console.Error.WriteLine($"overhead bench: {e.GetType().Name}: {e.Message}");
    foreach (var (_, d) in daemons) d.Kill();
    return 1;
}
finally
{
    try { Directory.Delete(scratch, true); } catch (IOException) { }
}

double Median(IEnumerable<double> xs) { var a = xs.Order().ToArray(); return a.Length % 2 == 1 ? a[a.Length / 2] : (a[a.Length / 2 - 1] + a[a.Length / 2]) / 2; }
var current = results["current"];
double cpu = Median(current.Select(x => x.DaemonCpuMsPerTask)), rate = Median(current.Select(x => x.TasksPerS));
Console.WriteLine();
Console.WriteLine($"  {"",-22} {"tasks/s",8} {"daemon CPU ms/task",19} {"user",7} {"sys",7}   each round (CPU ms/task)");
foreach (var (label, rs) in results)
    Console.WriteLine($"  {label,-22} {Median(rs.Select(x => x.TasksPerS)),8:F0} {Median(rs.Select(x => x.DaemonCpuMsPerTask)),19:F3} " +
        $"{Median(rs.Select(x => x.UserMsPerTask)),7:F3} {Median(rs.Select(x => x.SysMsPerTask)),7:F3}   {string.Join(' ', rs.Select(x => x.DaemonCpuMsPerTask.ToString("F3")))}");
if (baseline is not null)
{
    var b = results[baselineLabel];
    Console.WriteLine($"  current / @{baselineLabel}: tasks/s {rate / Median(b.Select(x => x.TasksPerS)):F2}x, " +
        $"daemon CPU per task {cpu / Median(b.Select(x => x.DaemonCpuMsPerTask)):F2}x (each round: " +
        string.Join(' ', current.Zip(b, (c, o) => (c.DaemonCpuMsPerTask / o.DaemonCpuMsPerTask).ToString("F2"))) + ")");
}
Console.WriteLine("  the current daemon's CPU by thread (ms per task, median round; threads named as /proc shows them):");
foreach (var (name, ms) in current[current.Count / 2].ByThread.OrderByDescending(t => t.Value).Take(8))
    Console.WriteLine($"    {name,-20} {ms,7:F3}");
Console.WriteLine($"  [{(cpu <= CpuTargetMs ? "met   " : "MISSED")}] daemon CPU per task with the no-op executor <= {CpuTargetMs} ms: {cpu:F3} ms");
Console.WriteLine($"load at the end: {Machine.LoadAvg()}");
if (resultsDir is not null)
{
    var json = new JsonObject
    {
        ["bench"] = "overhead", ["mode"] = small ? "small" : "full", ["tasks"] = tasks, ["rounds"] = rounds, ["batch"] = batch, ["slots"] = slots,
        ["tasks_per_s"] = Math.Round(rate, 1), ["daemon_cpu_ms_per_task"] = Math.Round(cpu, 4),
        ["target_daemon_cpu_ms_per_task"] = CpuTargetMs, ["target_met"] = cpu <= CpuTargetMs,
        ["runs"] = new JsonObject(results.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)new JsonArray(kv.Value.Select(x => (JsonNode)x.Json()).ToArray())))),
        ["cpus"] = Environment.ProcessorCount, ["load_at_end"] = Machine.LoadAvg(),
    };
    Directory.CreateDirectory(resultsDir);
    var path = Path.Combine(resultsDir, $"overhead-{DateTime.UtcNow:yyyyMMdd-HHmmss}.json");
    File.WriteAllText(path, json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    Console.WriteLine($"results: {path}");
}
return 0;


static int Knob(string name, int fallback)
{
    var v = Environment.GetEnvironmentVariable(name);
    if (string.IsNullOrEmpty(v)) return fallback;
    if (int.TryParse(v, out int n) && n > 0) return n;
    Console.Error.WriteLine($"overhead bench: {name} must be a positive integer (got '{v}')");
    Environment.Exit(64);
    return 0;
}

/// <summary>One timed run: <c>tasks</c> no-op tasks submitted in batches (as fast as the door answers) until
/// <c>/queue/status</c> counts them processed; the daemon's CPU from /proc, in all and by thread.</summary>
internal sealed record Round(double TasksPerS, double DaemonCpuMsPerTask, double UserMsPerTask, double SysMsPerTask, Dictionary<string, double> ByThread)
{
    public JsonObject Json() => new()
    {
        ["tasks_per_s"] = Math.Round(TasksPerS, 1), ["daemon_cpu_ms_per_task"] = Math.Round(DaemonCpuMsPerTask, 4),
        ["user_ms_per_task"] = Math.Round(UserMsPerTask, 4), ["sys_ms_per_task"] = Math.Round(SysMsPerTask, 4),
        ["by_thread_ms_per_task"] = new JsonObject(ByThread.OrderByDescending(t => t.Value)
            .Select(t => KeyValuePair.Create(t.Key, (JsonNode?)Math.Round(t.Value, 4)))),
    };

    public static async Task<Round> RunAsync(ServedDaemon d, HttpClient http, int tasks, int batch)
    {
        var url = d.Url;
        var before = await StatusAsync(http, url);
        var (u0, s0) = d.CpuTicks();
        var threads0 = d.ThreadTicks();
        var clock = Stopwatch.StartNew();
        const string One = """{"payload":{"command":["true"]}}""";
        var body = "[" + string.Join(',', Enumerable.Repeat(One, Math.Min(batch, tasks))) + "]";
        for (int left = tasks; left > 0; left -= batch)
        {
            var content = left >= batch ? body : "[" + string.Join(',', Enumerable.Repeat(One, left)) + "]";
            using var resp = await http.PostAsync(new Uri(url, "api/v1/tasks"), new StringContent(content, Encoding.UTF8, "application/json"));
            if (!resp.IsSuccessStatusCode) throw new InvalidOperationException($"submit: {(int)resp.StatusCode} {await resp.Content.ReadAsStringAsync()}");
        }
        JsonNode now;
        while (true)
        {
            now = await StatusAsync(http, url);
            if ((long)now["processed"]! - (long)before["processed"]! >= tasks) break;
            if (!d.Alive) throw new InvalidOperationException("the daemon died during the run");
            if (clock.Elapsed > TimeSpan.FromSeconds(Math.Max(120, tasks * 0.01))) throw new TimeoutException($"not done after {clock.Elapsed.TotalSeconds:F0} s: {now}");
            await Task.Delay(20);
        }
        double secs = clock.Elapsed.TotalSeconds;
        var (u1, s1) = d.CpuTicks();
        var byThread = new Dictionary<string, double>();
        foreach (var (name, ticks) in d.ThreadTicks())
            byThread[name] = (ticks - threads0.GetValueOrDefault(name)) * 10.0 / tasks;
        long done = (long)now["done"]! - (long)before["done"]!, failed = (long)now["failed"]! - (long)before["failed"]!;
        if (done != tasks || failed != 0) throw new InvalidOperationException($"{done} of {tasks} succeeded, {failed} failed");
        // Clock ticks of 10 ms (USER_HZ = 100).
        return new Round(tasks / secs, (u1 - u0 + s1 - s0) * 10.0 / tasks, (u1 - u0) * 10.0 / tasks, (s1 - s0) * 10.0 / tasks, byThread);
    }

    private static async Task<JsonNode> StatusAsync(HttpClient http, Uri url) => JsonNode.Parse(await http.GetStringAsync(new Uri(url, "queue/status")))!;
}
