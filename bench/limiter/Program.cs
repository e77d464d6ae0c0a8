using System.Globalization;
using Sparky.Core.Limiting;

// Deterministic discrete-event simulation of one task class in front of a resource with a throughput knee,
// run under each adaptive limiter and under every fixed limit 1..64. See README.md.
CultureInfo.DefaultThreadCurrentCulture = CultureInfo.InvariantCulture;
CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;

var small = false;
string? trace = null;
for (int i = 0; i < args.Length; i++)
{
    if (args[i] == "--small") small = true;
    else if (args[i] == "--trace" && i + 1 < args.Length) trace = args[++i];
    else
    {
        Console.Error.WriteLine($"limiter bench: unknown argument '{args[i]}' (use --small, --trace NAME)");
        return 64;
    }
}

var setup = small
    ? new Setup(SteadySeconds: 600, MovingSeconds: 800, WarmupSeconds: 60, Seeds: [1])
    : new Setup(SteadySeconds: 3000, MovingSeconds: 4000, WarmupSeconds: 60, Seeds: [1, 2, 3]);

const int Min = 1, Max = 64, Initial = 4;
var contenders = new List<(string Name, Func<ILimiter> Make)>
{
    ("aimd", () => Limiters.Create("aimd", Min, Max, Initial)),
    ("vegas", () => Limiters.Create("vegas", Min, Max, Initial)),
    ("gradient2", () => Limiters.Create("gradient2", Min, Max, Initial)),
};
for (int l = Min; l <= Max; l++)
{
    var limit = l;
    contenders.Add(($"fixed {limit}", () => Limiters.Create("fixed", Min, Max, limit)));
}

Console.WriteLine($"limiter bench ({(small ? "small" : "full")}): {Resource.Describe}");
Console.WriteLine($"  phases: steady {setup.SteadySeconds} s (first {setup.WarmupSeconds} s not measured), moving {setup.MovingSeconds} s; " +
                  $"{Sim.Clients} clients, each resubmitting at once (always work queued); seeds {string.Join(",", setup.Seeds)}; " +
                  $"adaptive limiters in [{Min}, {Max}] from {Initial}");
Console.WriteLine("  goodput = successful attempts per simulated second; p99 = 99th percentile run time (service only, " +
                  "no queue wait) of every attempt that ended; limit = time-weighted mean limit");
Console.WriteLine();

var results = contenders.Select(c => (c.Name, Result: Sim.Run(c.Make, setup, trace == c.Name))).ToList();
var fixedResults = results.Where(r => r.Name.StartsWith("fixed", StringComparison.Ordinal)).ToList();
var bestSteady = fixedResults.MaxBy(r => r.Result.Steady.Goodput);
var bestMoving = fixedResults.MaxBy(r => r.Result.Moving.Goodput);

Console.WriteLine($"{"limiter",-10} | {"steady goodput/s",16} {"p99 s",7} {"limit",6} | {"moving goodput/s",16} {"p99 s",7} {"limit",6}");
Console.WriteLine(new string('-', 10) + "-+-" + new string('-', 31) + "-+-" + new string('-', 31));
foreach (var (name, r) in results)
{
    var mark = (name == bestSteady.Name ? " best steady" : "") + (name == bestMoving.Name ? " best moving" : "");
    Console.WriteLine($"{name,-10} | {r.Steady.Goodput,16:F2} {r.Steady.P99,7:F3} {r.Steady.MeanLimit,6:F1} | " +
                      $"{r.Moving.Goodput,16:F2} {r.Moving.P99,7:F3} {r.Moving.MeanLimit,6:F1}{mark}");
}

var def = results.Single(r => r.Name == Limiters.Default).Result;
var gS = def.Steady.Goodput / bestSteady.Result.Steady.Goodput;
var gM = def.Moving.Goodput / bestMoving.Result.Moving.Goodput;
var goodputMet = gS >= 0.95 && gM >= 0.95;
var p99Met = def.Steady.P99 < bestSteady.Result.Steady.P99 && def.Moving.P99 < bestMoving.Result.Moving.P99;
Console.WriteLine();
Console.WriteLine($"best fixed: steady {bestSteady.Name}, moving {bestMoving.Name}");
Console.WriteLine($"default ({Limiters.Default}) goodput >= 95% of best fixed: steady {gS:P1} / moving {gM:P1}  {(goodputMet ? "MET" : "MISSED")}");
Console.WriteLine($"default ({Limiters.Default}) p99 < p99 of the best-goodput fixed limit: steady {def.Steady.P99:F3} vs {bestSteady.Result.Steady.P99:F3} s" +
                  $" / moving {def.Moving.P99:F3} vs {bestMoving.Result.Moving.P99:F3} s  {(p99Met ? "MET" : "MISSED")}");
return 0;

sealed record Setup(double SteadySeconds, double MovingSeconds, double WarmupSeconds, int[] Seeds);

sealed record PhaseResult(double Goodput, double P99, double MeanLimit);

sealed record RunResult(PhaseResult Steady, PhaseResult Moving);

/// <summary>The simulated resource. Fixed before the limiters were tuned; not to be tuned for them.</summary>
static class Resource
{
    public const double BaseSeconds = 1.0;   // run time of one attempt alone
    public const double Jitter = 0.25;       // sigma of the lognormal noise on every run time
    public const double BaseFailure = 0.002; // failures that have nothing to do with load

    public static string Describe =>
        $"run time = {BaseSeconds} s x (1 + 0.1 n/K) x max(1, n/K)^2 x lognormal(sigma {Jitter}), " +
        $"failure p = {BaseFailure} + min(0.6, 0.5 (n-K)/K) past the knee; n = attempts running at start, K = knee: " +
        "steady 16; moving 16->8 (first quarter), 8, 8->24 (third quarter), 24";

    /// <summary>Knee at time t: 16 in the steady phase, then sliding 16 → 8, holding, sliding 8 → 24, holding.</summary>
    public static double Knee(double t, Setup s)
    {
        if (t < s.SteadySeconds) return 16;
        var u = (t - s.SteadySeconds) / s.MovingSeconds;
        if (u < 0.25) return 16 - 8 * (u / 0.25);
        if (u < 0.5) return 8;
        if (u < 0.75) return 8 + 16 * ((u - 0.5) / 0.25);
        return 24;
    }

    /// <summary>Past the knee run time grows with the square of the overload (thrashing), so goodput falls as K²/n.</summary>
    public static double RunTime(int n, double knee, Random rng)
    {
        var load = n / knee;
        return BaseSeconds * (1 + 0.1 * load) * Math.Pow(Math.Max(1, load), 2) * Math.Exp(Jitter * Normal(rng));
    }

    public static bool Fails(int n, double knee, Random rng) =>
        rng.NextDouble() < BaseFailure + (n > knee ? Math.Min(0.6, 0.5 * (n - knee) / knee) : 0);

    private static double Normal(Random rng)
    {
        var u1 = 1.0 - rng.NextDouble();
        var u2 = rng.NextDouble();
        return Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2);
    }
}

static class Sim
{
    /// <summary>Closed workload: this many clients, each resubmitting when its attempt ends, so with any limit
    /// up to 64 there is always work queued.</summary>
    public const int Clients = 96;

    private readonly record struct Attempt(double Start, double RunTime, bool Failed, double Wait);

    private sealed class Phase
    {
        public long Successes;
        public readonly List<double> RunTimes = [];
        public double LimitArea;
        public double Seconds;
    }

    public static RunResult Run(Func<ILimiter> make, Setup setup, bool trace)
    {
        var steady = new Phase();
        var moving = new Phase();
        foreach (var seed in setup.Seeds) RunOnce(make(), setup, seed, steady, moving, trace && seed == setup.Seeds[0]);
        return new RunResult(Summarise(steady), Summarise(moving));
    }

    private static PhaseResult Summarise(Phase p)
    {
        p.RunTimes.Sort();
        var p99 = p.RunTimes.Count == 0 ? double.NaN : p.RunTimes[(int)Math.Ceiling(0.99 * p.RunTimes.Count) - 1];
        return new PhaseResult(p.Successes / p.Seconds, p99, p.LimitArea / p.Seconds);
    }

    private static void RunOnce(ILimiter limiter, Setup setup, int seed, Phase steady, Phase moving, bool trace)
    {
        double nextTrace = 0;
        var rng = new Random(seed);
        var epoch = DateTimeOffset.UnixEpoch;
        var end = setup.SteadySeconds + setup.MovingSeconds;
        var running = new PriorityQueue<Attempt, double>();
        var backlog = new Queue<double>();
        for (int i = 0; i < Clients; i++) backlog.Enqueue(0);
        double t = 0;
        int inFlight = 0;
        steady.Seconds += setup.SteadySeconds - setup.WarmupSeconds;
        moving.Seconds += setup.MovingSeconds;

        Phase? PhaseAt(double time) =>
            time < setup.WarmupSeconds ? null : time < setup.SteadySeconds ? steady : time < end ? moving : null;

        // The limit held from `from` to `to`, split at the phase boundaries.
        void AddLimitTime(double from, double to, int limit)
        {
            foreach (var (start, stop, phase) in new[] { (setup.WarmupSeconds, setup.SteadySeconds, steady), (setup.SteadySeconds, end, moving) })
            {
                var overlap = Math.Min(to, stop) - Math.Max(from, start);
                if (overlap > 0) phase.LimitArea += limit * overlap;
            }
        }

        while (true)
        {
            while (inFlight < limiter.Limit && backlog.Count > 0)
            {
                var submitted = backlog.Dequeue();
                inFlight++;
                var knee = Resource.Knee(t, setup);
                var run = Resource.RunTime(inFlight, knee, rng);
                running.Enqueue(new Attempt(t, run, Resource.Fails(inFlight, knee, rng), t - submitted), t + run);
            }

            var a = running.Dequeue();
            var done = a.Start + a.RunTime;
            if (done >= end) break;
            AddLimitTime(t, done, limiter.Limit);
            t = done;
            inFlight--;
            if (PhaseAt(t) is { } phase)
            {
                phase.RunTimes.Add(a.RunTime);
                if (!a.Failed) phase.Successes++;
            }

            backlog.Enqueue(t); // the client submits its next task at once (a failed one is simply resubmitted)
            var limit = limiter.OnSample(new LimiterSample(
                TimeSpan.FromSeconds(a.RunTime), TimeSpan.FromSeconds(a.Wait), a.Failed, inFlight + 1, backlog.Count,
                epoch + TimeSpan.FromSeconds(t)));
            if (trace && t >= nextTrace)
            {
                Console.Error.WriteLine($"trace {limiter.Algorithm} t={t,7:F1} knee={Resource.Knee(t, setup),5:F1} limit={limit,3} in-flight={inFlight + 1,3}");
                nextTrace += 5;
            }
            if (limit < limiter.Min || limit > limiter.Max)
                throw new InvalidOperationException($"{limiter.Algorithm}: limit {limit} outside [{limiter.Min}, {limiter.Max}]");
        }
    }
}
