using Sparky.Core.Limiting;

namespace Sparky.Core.Tests.Limiting;

/// <summary>Behaviour every adaptive algorithm must show, run against each of them.</summary>
public sealed class AdaptiveLimiterTests
{
    public static TheoryData<string> Adaptive => new() { "aimd", "vegas", "gradient2" };

    [Theory, MemberData(nameof(Adaptive))]
    public void Grows_under_healthy_samples_with_queued_work(string algorithm)
    {
        var l = Limiters.Create(algorithm, 1, 100, 4);
        new Feed(l).Samples(2000, runSeconds: 1);
        Assert.True(l.Limit >= 12, $"{algorithm}: limit {l.Limit} after 2000 healthy samples, from 4");
    }

    [Theory, MemberData(nameof(Adaptive))]
    public void Does_not_grow_when_nothing_is_queued(string algorithm)
    {
        var l = Limiters.Create(algorithm, 1, 100, 4);
        new Feed(l).Samples(2000, runSeconds: 1, queued: 0);
        Assert.Equal(4, l.Limit);
    }

    [Theory, MemberData(nameof(Adaptive))]
    public void Does_not_grow_when_most_slots_are_idle(string algorithm)
    {
        // Work is queued but something else (cpus, memory) keeps it from starting: the limit is not the constraint.
        var l = Limiters.Create(algorithm, 1, 100, 10);
        new Feed(l).Samples(2000, runSeconds: 1, inFlight: 3);
        Assert.Equal(10, l.Limit);
    }

    [Theory, MemberData(nameof(Adaptive))]
    public void Shrinks_on_failures(string algorithm)
    {
        var l = Limiters.Create(algorithm, 1, 100, 40);
        var f = new Feed(l).Samples(20, runSeconds: 1, queued: 0);
        Assert.Equal(40, l.Limit);
        f.Failures(20, everySeconds: 2);
        Assert.True(l.Limit <= 20, $"{algorithm}: limit {l.Limit} after 20 spaced failures, from 40");
    }

    [Theory, MemberData(nameof(Adaptive))]
    public void A_burst_of_failures_costs_one_cut_not_one_per_failure(string algorithm)
    {
        var l = Limiters.Create(algorithm, 1, 100, 40);
        var f = new Feed(l).Samples(20, runSeconds: 1, queued: 0);
        f.Failures(20, everySeconds: 0.01);
        Assert.InRange(l.Limit, 30, 39);
    }

    [Theory, MemberData(nameof(Adaptive))]
    public void Shrinks_when_run_time_blows_up_against_its_baseline(string algorithm)
    {
        var l = Limiters.Create(algorithm, 1, 100, 40);
        var f = new Feed(l).Samples(100, runSeconds: 1, queued: 0);
        Assert.Equal(40, l.Limit);
        // Soon after: the baseline follows a lasting change, but only after some hundreds of samples.
        f.Samples(300, runSeconds: 5);
        Assert.True(l.Limit <= 30, $"{algorithm}: limit {l.Limit} after run time went 1 s -> 5 s, from 40");
    }

    [Theory, MemberData(nameof(Adaptive))]
    public void Shrinks_under_memory_pressure_at_most_once_per_psi_window(string algorithm)
    {
        var l = Limiters.Create(algorithm, 1, 100, 40);
        var f = new Feed(l);
        f.Pressure(null, 25).Wait(1).Pressure(null, 25).Wait(1).Pressure(null, 25);
        Assert.Equal(36, l.Limit); // one cut by 0.9: readings 1 s apart are the same 10-second average
        for (int i = 0; i < 10; i++) f.Wait(10).Pressure(null, 25);
        Assert.True(l.Limit <= 16, $"{algorithm}: limit {l.Limit} after 100 s of memory pressure, from 40");
        f.Pressure(null, 1);
        var before = l.Limit;
        f.Wait(10).Pressure(null, 1);
        Assert.Equal(before, l.Limit); // low pressure is no signal by itself
    }

    [Theory, MemberData(nameof(Adaptive))]
    public void Does_not_grow_while_memory_is_under_pressure(string algorithm)
    {
        var l = Limiters.Create(algorithm, 1, 100, 10);
        var f = new Feed(l).Pressure(null, 50);
        var after = l.Limit;
        // Batches short enough (10 s at limit 1) that every reading is fresh; pressure stays ≥ 10 %.
        for (int i = 0; i < 40; i++) f.Samples(10, runSeconds: 1).Pressure(null, 50 - i);
        Assert.True(l.Limit <= after, $"{algorithm}: grew to {l.Limit} from {after} under memory pressure");
    }

    [Theory, MemberData(nameof(Adaptive))]
    public void Does_not_grow_a_class_whose_gpu_is_saturated(string algorithm)
    {
        var l = Limiters.Create(algorithm, 1, 100, 4);
        var f = new Feed(l);
        for (int i = 0; i < 20; i++) f.Pressure(0.98, null).Samples(100, runSeconds: 1);
        Assert.Equal(4, l.Limit);
    }

    [Theory, MemberData(nameof(Adaptive))]
    public void A_stale_gpu_reading_stops_counting(string algorithm)
    {
        var l = Limiters.Create(algorithm, 1, 100, 4);
        new Feed(l).Pressure(0.98, null).Wait(60).Samples(2000, runSeconds: 1);
        Assert.True(l.Limit >= 12, $"{algorithm}: limit {l.Limit}; a 60 s old reading should not hold it");
    }

    [Theory, MemberData(nameof(Adaptive))]
    public void A_mostly_idle_gpu_lets_the_class_grow_although_run_time_rose(string algorithm)
    {
        var slow = Limiters.Create(algorithm, 1, 100, 10);
        var idleGpu = Limiters.Create(algorithm, 1, 100, 10);
        new Feed(slow).Samples(200, runSeconds: 1, queued: 0).Samples(1000, runSeconds: 3);
        var f = new Feed(idleGpu).Samples(200, runSeconds: 1, queued: 0);
        for (int i = 0; i < 10; i++) f.Pressure(0.2, null).Samples(100, runSeconds: 3);
        Assert.True(idleGpu.Limit > 10, $"{algorithm}: limit {idleGpu.Limit} with the GPU at 20 %");
        Assert.True(slow.Limit < idleGpu.Limit, $"{algorithm}: {slow.Limit} without a GPU reading vs {idleGpu.Limit} with an idle GPU");
    }

    [Theory, MemberData(nameof(Adaptive))]
    public void Stays_within_its_bounds_under_extremes(string algorithm)
    {
        var l = Limiters.Create(algorithm, 3, 7, 5);
        var f = new Feed(l).Samples(5000, runSeconds: 1);
        Assert.Equal(7, l.Limit);
        f.Failures(500, everySeconds: 5);
        Assert.Equal(3, l.Limit);
    }

    [Fact]
    public void The_run_time_baseline_holds_the_uncrowded_level_and_follows_a_lasting_change_slowly()
    {
        var stats = new RunTimeStats();
        for (int i = 0; i < 200; i++) stats.Add(1.0);
        Assert.Equal(1.0, stats.Baseline, 3);
        for (int i = 0; i < 30; i++) stats.Add(2.0);
        Assert.True(stats.Short > 1.9, $"short {stats.Short}");
        Assert.True(stats.Baseline < 1.1, $"baseline {stats.Baseline} should barely move in 30 samples");
        Assert.True(stats.Ratio > 1.7);
        for (int i = 0; i < 3000; i++) stats.Add(2.0);
        Assert.True(stats.Baseline > 1.9, $"baseline {stats.Baseline} should have followed a lasting change");
        for (int i = 0; i < 100; i++) stats.Add(0.5);
        Assert.Equal(0.5, stats.Baseline, 2); // a new low is taken at once
    }
}
