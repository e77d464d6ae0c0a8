using System.Globalization;
using Sparky.Core.Scheduling;
using Sparky.Core.Tasks;

// Deterministic discrete-event simulation of an 8 x 80 GiB GPU machine driving the real Scheduler and
// ResourcePool with a mixed trace of whole-GPU and GPU-memory-share tasks. See README.md.
CultureInfo.DefaultThreadCurrentCulture = CultureInfo.InvariantCulture;
CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;

var small = false;
int[]? seedsArg = null;
for (int i = 0; i < args.Length; i++)
{
    if (args[i] == "--small") small = true;
    else if (args[i] == "--seed" && i + 1 < args.Length) seedsArg = [int.Parse(args[++i])];
    else
    {
        Console.Error.WriteLine($"packing bench: unknown argument '{args[i]}' (use --small, --seed N)");
        return 64;
    }
}

var tasksPerRun = small ? 300 : 2000;
int[] seeds = seedsArg ?? (small ? [1] : [1, 2, 3]);

Console.WriteLine($"packing bench ({(small ? "small" : "full")}): {Machine.Gpus} x {Machine.GpuMemoryMb / 1024} GiB GPUs, " +
                  $"{Machine.MilliCpus / 1000} CPUs, {Machine.MemoryMb / 1024} GiB memory; real Scheduler + ResourcePool " +
                  $"(class \"{Classes.Gpu}\" limit {Machine.ClassLimit}, pass-over limit 32 per GPU)");
Console.WriteLine($"  trace: {tasksPerRun} tasks per run, seeds {string.Join(",", seeds)}; {Trace.Describe}");
Console.WriteLine("  bound = max(total GPU-seconds / 8, longest task) [poisson: also max over arrivals a of a + work arriving from a on / 8,");
Console.WriteLine("          and max(arrival + duration)]; a share counts (share / 80 GiB) x duration GPU-seconds");
Console.WriteLine("  util = GPU-seconds / (8 x makespan)");
Console.WriteLine();

var scenarios = new[] { Scenario.Batch, Scenario.BatchBigFirst, Scenario.Poisson };
var rows = new List<(Scenario Sc, int Seed, Result R)>();
foreach (var sc in scenarios)
    foreach (var seed in seeds)
        rows.Add((sc, seed, Sim.Run(Trace.Make(sc, tasksPerRun, seed), sc)));

Console.WriteLine($"{"scenario",-14} {"seed",4} {"tasks",5} | {"makespan h",10} {"work/8 h",9} {"longest h",9} {"bound h",8} {"(by)",-8} | {"mksp/bound",10} {"util",6} | " +
                  $"{"held GPU-h",10} {"no fit",7} {"drained",7}");
Console.WriteLine(new string('-', 25) + "-+-" + new string('-', 51) + "-+-" + new string('-', 17) + "-+-" + new string('-', 26));
foreach (var (sc, seed, r) in rows)
{
    Console.WriteLine($"{sc.Name,-14} {seed,4} {r.Tasks,5} | {H(r.Makespan),10:F2} {H(r.WorkBound),9:F2} {H(r.Longest),9:F2} {H(r.Bound),8:F2} {r.BoundBy,-8} | " +
                      $"{r.Ratio,10:P1} {r.Util,6:P1} | {H(r.IdleHeld),10:F1} {H(r.IdleNoFit),7:F1} {H(r.IdleDrained),7:F1}");
}
Console.WriteLine();
Console.WriteLine("held / no fit / drained = idle GPU-h (capacity not in use; 80 GiB of shares = 1 GPU) by what was waiting then:");
Console.WriteLine("  held = some waiting task fitted the free GPUs but the scheduler did not start it (pass-over limit / backfill window);");
Console.WriteLine("  no fit = tasks waited, none fitted (incl. share memory too small to use); drained = nothing waiting (tail, arrival gap)");
Console.WriteLine("held idle GPU-h by the request of the oldest waiting task (the one its class was holding back for), all seeds:");
foreach (var sc in scenarios)
{
    var sum = new Dictionary<string, double>();
    foreach (var (s2, _, r) in rows.Where(x => x.Sc == sc))
        foreach (var (k, v) in r.HeldByHead) sum[k] = sum.GetValueOrDefault(k) + v;
    Console.WriteLine($"  {sc.Name,-14} " + (sum.Count == 0 ? "none" : string.Join(", ", sum.OrderByDescending(x => x.Value).Select(x => $"{x.Key} {H(x.Value):F1}"))));
}
Console.WriteLine();
Console.WriteLine("waits (h, submit to start): mean | mean 1-GPU | mean 8-GPU | max 8-GPU | max any");
foreach (var (sc, seed, r) in rows)
    Console.WriteLine($"  {sc.Name,-14} seed {seed}: {H(r.WaitMean),5:F2} | {H(r.WaitMean1),5:F2} | {H(r.WaitMean8),5:F2} | {H(r.WaitMax8),5:F2} | {H(r.WaitMax),5:F2}");
Console.WriteLine();

foreach (var sc in scenarios)
{
    var mine = rows.Where(x => x.Sc == sc).Select(x => x.R).ToList();
    var worst = mine.Max(x => x.Ratio);
    var met = worst <= 1.10;
    Console.WriteLine($"{sc.Name,-14} makespan within 10% of the lower bound: {(met ? "MET" : "MISSED")} ({worst - 1:P1} over the bound" +
                      $"{(mine.Count > 1 ? $", worst of {mine.Count} seeds; mean {mine.Average(x => x.Ratio) - 1:P1}" : "")})");
}
Console.WriteLine("invariants: no GPU handed out twice, whole GPUs never shared, shares <= 80 GiB per GPU, CPUs/memory within totals,");
Console.WriteLine($"  every task started exactly once: checked at every start ({rows.Sum(x => x.R.Tasks)} starts) - OK");
return 0;

static double H(double seconds) => seconds / 3600;

static class Machine
{
    public const int Gpus = 8;
    public const long GpuMemoryMb = 80 * 1024;
    public const int MilliCpus = 256_000;
    public const long MemoryMb = 2048L * 1024;
    public const int ClassLimit = 1000;

    public static ResourcePool NewPool() =>
        new(MilliCpus, MemoryMb, Enumerable.Range(0, Gpus).Select(i => new GpuDevice($"GPU-{i:D2}", GpuMemoryMb)).ToList());
}

sealed record Scenario(string Name, bool Arrivals, bool BigFirst)
{
    public static readonly Scenario Batch = new("batch", false, false);
    public static readonly Scenario BatchBigFirst = new("batch-bigfirst", false, true);
    public static readonly Scenario Poisson = new("poisson", true, false);
}

sealed record SimTask(int Index, ResourceRequest Request, double Duration, double Arrival)
{
    /// <summary>GPU units held: whole GPUs, or the share of one GPU's memory.</summary>
    public double Units => Request.Gpus > 0 ? Request.Gpus : (double)Request.GpuMemoryMb / Machine.GpuMemoryMb;
    public string Kind => Request.Gpus > 0 ? $"{Request.Gpus}-GPU" : $"{Request.GpuMemoryMb / 1024}G share";
}

static class Trace
{
    // Kinds and their weights: many 1-GPU, some 2/4, a few 8; shares of 10, 20 and 40 GiB.
    private static readonly (double Weight, int Gpus, long ShareGiB)[] Mix =
    [
        (0.40, 1, 0), (0.12, 2, 0), (0.07, 4, 0), (0.03, 8, 0),
        (0.18, 0, 10), (0.12, 0, 20), (0.08, 0, 40),
    ];
    private const double MedianSeconds = 15 * 60, Sigma = 1.0, MinSeconds = 60, MaxSeconds = 2 * 3600;
    /// <summary>Offered load of the poisson scenario, as a fraction of the 8 GPUs.</summary>
    public const double Load = 0.9;

    public static string Describe =>
        string.Join(", ", Mix.Select(m => $"{m.Weight:P0} {(m.Gpus > 0 ? $"{m.Gpus}-GPU" : $"{m.ShareGiB}G share")}")) +
        $";\n  durations lognormal (median {MedianSeconds / 60:0} min, sigma {Sigma}) clamped to [{MinSeconds / 60:0} min, {MaxSeconds / 3600:0} h];\n" +
        $"  batch = all submitted at t=0 in random order; batch-bigfirst = the same trace submitted largest request first\n" +
        $"  (ties in random order); poisson = the same trace arriving as a Poisson process at {Load:P0} offered load";

    public static List<SimTask> Make(Scenario sc, int n, int seed)
    {
        var rng = new Random(seed);
        var tasks = new List<SimTask>(n);
        for (int i = 0; i < n; i++)
        {
            double u = rng.NextDouble(), acc = 0;
            var kind = Mix[^1];
            foreach (var m in Mix) { acc += m.Weight; if (u < acc) { kind = m; break; } }
            // Box-Muller normal for the lognormal duration.
            double z = Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());
            var dur = Math.Round(Math.Clamp(MedianSeconds * Math.Exp(Sigma * z), MinSeconds, MaxSeconds));
            var req = kind.Gpus > 0
                ? new ResourceRequest(4000 * kind.Gpus, 32 * 1024L * kind.Gpus, kind.Gpus, 0)
                : new ResourceRequest(1000, 8 * 1024, 0, kind.ShareGiB * 1024);
            tasks.Add(new SimTask(i, req, dur, 0));
        }
        if (sc.BigFirst)
        {
            // Stable sort keeps the random order among equal requests.
            tasks = tasks.OrderByDescending(t => t.Units).ToList();
            tasks = tasks.Select((t, i) => t with { Index = i }).ToList();
        }
        if (sc.Arrivals)
        {
            var work = tasks.Sum(t => t.Units * t.Duration);
            var meanGap = work / (Machine.Gpus * Load) / n;
            var arng = new Random(seed * 7919 + 1);
            double at = 0;
            for (int i = 0; i < n; i++)
            {
                tasks[i] = tasks[i] with { Arrival = at };
                at += -meanGap * Math.Log(1 - arng.NextDouble());
            }
        }
        return tasks;
    }
}

sealed record Result(int Tasks, double Makespan, double WorkBound, double Longest, double Bound, string BoundBy, double Work,
    double IdleHeld, double IdleNoFit, double IdleDrained,
    double WaitMean, double WaitMean1, double WaitMean8, double WaitMax8, double WaitMax, Dictionary<string, double> HeldByHead)
{
    public double Ratio => Makespan / Bound;
    public double Util => Work / (Machine.Gpus * Makespan);
}

sealed class InvariantViolation(string message) : Exception(message);

static class Sim
{
    private static readonly DateTimeOffset Epoch = new(2025, 1, 1, 0, 0, 0, TimeSpan.Zero);

    public static Result Run(List<SimTask> tasks, Scenario sc)
    {
        var pool = Machine.NewPool();
        var sched = new Scheduler(new Dictionary<string, int> { [Classes.Gpu] = Machine.ClassLimit }, pool);
        var byId = new Dictionary<TaskId, SimTask>(tasks.Count);
        var ids = tasks.Select(t => TaskId.Parse($"t{t.Index:D6}")).ToArray();
        for (int i = 0; i < tasks.Count; i++) byId[ids[i]] = tasks[i];

        // The simulator's own books, kept independently of the pool's: who holds each GPU whole, shares per GPU.
        var uuidIndex = pool.Gpus.Select((g, i) => (g.Uuid, i)).ToDictionary(x => x.Uuid, x => x.i);
        var wholeHolder = Enumerable.Repeat(-1, Machine.Gpus).ToArray();
        var shareMb = new long[Machine.Gpus];
        var shareCount = new int[Machine.Gpus];
        long usedMilli = 0, usedMem = 0;
        var allocOf = new Dictionary<int, Allocation>();
        var startedAt = new double[tasks.Count];
        Array.Fill(startedAt, double.NaN);

        var running = new PriorityQueue<int, (double, int)>(); // by (finish time, index)
        var waiting = new SortedSet<int>(); // submitted, not started (index order = seq order)
        int nextArrival = 0, done = 0;
        double now = 0, idleHeld = 0, idleNoFit = 0, idleDrained = 0;
        var heldByHead = new Dictionary<string, double>();

        while (done < tasks.Count)
        {
            // Finishes at `now`, then arrivals at `now`, then one scheduling pass.
            while (running.TryPeek(out var idx, out var key) && key.Item1 <= now)
            {
                running.Dequeue();
                var a = allocOf[idx];
                allocOf.Remove(idx);
                foreach (var u in a.GpuUuids)
                {
                    var g = uuidIndex[u];
                    if (a.Request.GpuMemoryMb > 0) { shareMb[g] -= a.Request.GpuMemoryMb; shareCount[g]--; }
                    else wholeHolder[g] = -1;
                }
                usedMilli -= a.Request.MilliCpus;
                usedMem -= a.Request.MemoryMb;
                sched.Finished(ids[idx], TaskState.Succeeded);
                done++;
            }
            while (nextArrival < tasks.Count && tasks[nextArrival].Arrival <= now)
            {
                var t = tasks[nextArrival];
                var d = sched.Add(ids[t.Index], Classes.Gpu, t.Index, [], false, t.Request);
                if (d.Count > 0) throw new InvariantViolation($"{ids[t.Index]} was refused: {d[0]}");
                waiting.Add(t.Index);
                nextArrival++;
            }

            var clock = Epoch.AddSeconds(now);
            foreach (var s in sched.TakeStartable(clock))
            {
                if (!byId.TryGetValue(s.Id, out var t)) throw new InvariantViolation($"unknown task {s.Id} started");
                if (!waiting.Remove(t.Index)) throw new InvariantViolation($"{s.Id} started twice or before it was submitted");
                var a = s.Allocation;
                if (a.Request != t.Request) throw new InvariantViolation($"{s.Id}: allocation {a.Request} for request {t.Request}");
                if (a.GpuUuids.Distinct().Count() != a.GpuUuids.Count) throw new InvariantViolation($"{s.Id}: a GPU listed twice");
                var want = t.Request.Gpus > 0 ? t.Request.Gpus : 1;
                if (a.GpuUuids.Count != want) throw new InvariantViolation($"{s.Id}: {a.GpuUuids.Count} GPUs for a request of {want}");
                foreach (var u in a.GpuUuids)
                {
                    if (!uuidIndex.TryGetValue(u, out var g)) throw new InvariantViolation($"{s.Id}: unknown GPU {u}");
                    if (wholeHolder[g] >= 0) throw new InvariantViolation($"{s.Id}: {u} is already held whole by t{wholeHolder[g]:D6}");
                    if (t.Request.GpuMemoryMb > 0)
                    {
                        shareMb[g] += t.Request.GpuMemoryMb;
                        shareCount[g]++;
                        if (shareMb[g] > Machine.GpuMemoryMb)
                            throw new InvariantViolation($"{s.Id}: shares on {u} reach {shareMb[g]} MiB of {Machine.GpuMemoryMb}");
                    }
                    else
                    {
                        if (shareCount[g] > 0) throw new InvariantViolation($"{s.Id}: {u} handed out whole while {shareCount[g]} shares run on it");
                        wholeHolder[g] = t.Index;
                    }
                }
                usedMilli += a.Request.MilliCpus;
                usedMem += a.Request.MemoryMb;
                if (usedMilli > Machine.MilliCpus || usedMem > Machine.MemoryMb) throw new InvariantViolation("CPUs or memory oversubscribed");
                allocOf[t.Index] = a;
                startedAt[t.Index] = now;
                running.Enqueue(t.Index, (now + t.Duration, t.Index));
            }
            // The pool's own view must agree with the simulator's books.
            foreach (var (uuid, whole, shares, sMb, _) in pool.GpuUsage())
            {
                var g = uuidIndex[uuid];
                if (whole != (wholeHolder[g] >= 0) || shares != shareCount[g] || sMb != shareMb[g])
                    throw new InvariantViolation($"pool and simulator disagree on {uuid}");
            }
            if (sched.TotalRunning != running.Count || sched.TotalRunning > Machine.ClassLimit)
                throw new InvariantViolation($"scheduler counts {sched.TotalRunning} running, simulator {running.Count}");

            // Advance to the next event, charging the idle capacity until then to why it is idle.
            double next = double.PositiveInfinity;
            if (running.TryPeek(out _, out var nk)) next = nk.Item1;
            if (nextArrival < tasks.Count) next = Math.Min(next, tasks[nextArrival].Arrival);
            if (double.IsPositiveInfinity(next))
            {
                if (done < tasks.Count) throw new InvariantViolation($"stalled at {now} s: {waiting.Count} waiting, nothing running");
                break;
            }
            var dt = next - now;
            double used = 0;
            for (int g = 0; g < Machine.Gpus; g++) used += wholeHolder[g] >= 0 ? 1 : (double)shareMb[g] / Machine.GpuMemoryMb;
            var idle = (Machine.Gpus - used) * dt;
            if (idle > 1e-9)
            {
                if (waiting.Count == 0) idleDrained += idle;
                else if (AnyFits(waiting, tasks, wholeHolder, shareMb))
                {
                    idleHeld += idle;
                    var head = tasks[waiting.Min].Kind; // the oldest waiting task: the one the class holds back for
                    heldByHead[head] = heldByHead.GetValueOrDefault(head) + idle;
                }
                else idleNoFit += idle;
            }
            now = next;
        }

        var work = tasks.Sum(t => t.Units * t.Duration);
        var workBound = work / Machine.Gpus;
        var longest = tasks.Max(t => t.Duration);
        var bound = Math.Max(workBound, longest);
        var by = workBound >= longest ? "work/8" : "longest";
        if (sc.Arrivals)
        {
            var byArrival = tasks.Max(t => t.Arrival + t.Duration);
            if (byArrival > bound) { bound = byArrival; by = "arrival"; }
            double suffix = 0;
            for (int i = tasks.Count - 1; i >= 0; i--)
            {
                suffix += tasks[i].Units * tasks[i].Duration;
                var b = tasks[i].Arrival + suffix / Machine.Gpus;
                if (b > bound) { bound = b; by = "backlog"; }
            }
        }
        var waits = tasks.Select(t => (t, w: startedAt[t.Index] - t.Arrival)).ToList();
        var w1 = waits.Where(x => x.t.Request.Gpus == 1).Select(x => x.w).DefaultIfEmpty(0);
        var w8 = waits.Where(x => x.t.Request.Gpus == 8).Select(x => x.w).DefaultIfEmpty(0).ToList();
        return new Result(tasks.Count, now, workBound, longest, bound, by, work, idleHeld, idleNoFit, idleDrained,
            waits.Average(x => x.w), w1.Average(), w8.Average(), w8.Max(), waits.Max(x => x.w), heldByHead);
    }

    /// <summary>Whether some waiting task would fit the GPUs free now (CPUs and memory are plentiful by construction).</summary>
    private static bool AnyFits(SortedSet<int> waiting, List<SimTask> tasks, int[] wholeHolder, long[] shareMb)
    {
        int idleGpus = 0;
        long largestHole = 0;
        for (int g = 0; g < Machine.Gpus; g++)
        {
            if (wholeHolder[g] >= 0) continue;
            if (shareMb[g] == 0) idleGpus++;
            largestHole = Math.Max(largestHole, Machine.GpuMemoryMb - shareMb[g]);
        }
        foreach (var i in waiting)
        {
            var r = tasks[i].Request;
            if (r.Gpus > 0 ? r.Gpus <= idleGpus : r.GpuMemoryMb <= largestHole) return true;
        }
        return false;
    }
}
