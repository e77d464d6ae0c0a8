using Sparky.Embeddings.Batching;

namespace Sparky.Embeddings.Tests;

public class BatchPlannerTests
{
    private static readonly BatchLimits Limits = new(MaxBatchTokens: 100, MaxBatchSize: 8, MaxWait: TimeSpan.FromMilliseconds(5));
    private static List<Waiting> W(params int[] tokens) => tokens.Select(t => new Waiting(t)).ToList();

    [Fact]
    public void Nothing_waiting_waits_for_work()
    {
        Assert.Null(BatchPlanner.Delay(0, 0, TimeSpan.Zero, Limits));
    }

    [Fact]
    public void A_lone_input_waits_out_the_rest_of_max_batch_wait_for_company()
    {
        Assert.Equal(TimeSpan.FromMilliseconds(3), BatchPlanner.Delay(1, 10, TimeSpan.FromMilliseconds(2), Limits));
        Assert.Equal(TimeSpan.Zero, BatchPlanner.Delay(1, 10, TimeSpan.FromMilliseconds(5), Limits));
    }

    [Fact]
    public void At_a_rate_that_brings_no_company_within_the_window_a_lone_input_runs_at_once()
    {
        // 5 ms left: at 100 inputs/s half an input is expected in it (run now); at 1,000/s five are (wait for them).
        Assert.Equal(TimeSpan.Zero, BatchPlanner.Delay(1, 10, TimeSpan.Zero, Limits, arrivalsPerSecond: 100));
        Assert.Equal(TimeSpan.FromMilliseconds(5), BatchPlanner.Delay(1, 10, TimeSpan.Zero, Limits, arrivalsPerSecond: 1000));
        // What is left of the window counts, not all of it: 1 ms left at 500/s is half an input.
        Assert.Equal(TimeSpan.Zero, BatchPlanner.Delay(2, 20, TimeSpan.FromMilliseconds(4), Limits, arrivalsPerSecond: 500));
    }

    [Fact]
    public void The_arrival_rate_follows_the_load_and_falls_after_a_pause()
    {
        var rate = new ArrivalRate();
        Assert.True(rate.PerSecond <= 1); // nothing seen: no reason to wait
        double t = 0;
        for (int i = 0; i < 100; i++) rate.Observe(t += 0.002, 1);     // 500 inputs/s
        Assert.InRange(rate.PerSecond, 450, 550);
        for (int i = 0; i < 100; i++) rate.Observe(t += 0.010, 4);     // requests of 4 inputs, 100 a second: 400 inputs/s
        Assert.InRange(rate.PerSecond, 360, 440);
        rate.Observe(t += 2, 1);                                       // a pause of 2 s
        Assert.True(rate.PerSecond < 20, $"{rate.PerSecond}/s after a pause");
    }

    [Fact]
    public void A_full_batch_runs_at_once()
    {
        Assert.Equal(TimeSpan.Zero, BatchPlanner.Delay(8, 40, TimeSpan.Zero, Limits));   // the count
        Assert.Equal(TimeSpan.Zero, BatchPlanner.Delay(2, 100, TimeSpan.Zero, Limits));  // the tokens
    }

    [Fact]
    public void Batching_off_is_one_input_per_run_and_no_wait()
    {
        var off = new BatchLimits(100, 1, TimeSpan.Zero);
        Assert.Equal(TimeSpan.Zero, BatchPlanner.Delay(1, 5, TimeSpan.Zero, off));
        Assert.All(BatchPlanner.Plan(W(5, 6, 7), off), r => Assert.Single(r));
    }

    [Fact]
    public void Runs_hold_inputs_of_like_length_so_little_is_padding()
    {
        // Arrival order mixes short and long; the runs group them by length.
        var runs = BatchPlanner.Plan(W(5, 40, 6, 41, 7), Limits with { MaxBatchTokens = 120 });
        Assert.Equal([[0, 2, 4], [1, 3]], runs.Select(r => r.ToArray()).ToArray());
    }

    [Fact]
    public void A_run_ends_where_much_of_it_would_be_padding()
    {
        // Within every bound, but 10, 10 and 30 together would be 90 tokens for 50 real ones.
        var runs = BatchPlanner.Plan(W(10, 30, 10), Limits with { MaxBatchTokens = 1000 });
        Assert.Equal([[0, 2], [1]], runs.Select(r => r.ToArray()).ToArray());
    }

    [Fact]
    public void The_oldest_inputs_go_first_and_later_ones_wait_for_the_next_batch()
    {
        var runs = BatchPlanner.Plan(W(50, 40, 30, 20), Limits);
        var taken = runs.SelectMany(r => r).Order().ToArray();
        Assert.Equal([0, 1], taken); // 50 + 40 fit the budget of 100; 30 would not
    }

    [Fact]
    public void An_input_longer_than_the_budget_runs_alone()
    {
        var runs = BatchPlanner.Plan(W(300, 5), Limits);
        Assert.Equal([[0]], runs.Select(r => r.ToArray()).ToArray());
    }

    /// <summary>Whatever waits: every run keeps to the budget (padded) and the size, unless it is one input; the runs take a
    /// prefix of the waiting inputs, each once; and something always runs.</summary>
    [FsCheck.Xunit.Property(MaxTest = 300)]
    public bool Every_plan_keeps_the_bounds(FsCheck.NonEmptyArray<FsCheck.PositiveInt> lengths, FsCheck.PositiveInt budget, FsCheck.PositiveInt size)
    {
        var limits = new BatchLimits(budget.Get % 500 + 1, size.Get % 64 + 1, TimeSpan.Zero);
        var waiting = W(lengths.Get.Select(l => l.Get % 300 + 1).ToArray());
        var runs = BatchPlanner.Plan(waiting, limits);
        var taken = runs.SelectMany(r => r).Order().ToArray();
        bool prefix = taken.SequenceEqual(Enumerable.Range(0, taken.Length)) && taken.Length > 0;
        bool bounded = runs.All(r => r.Length == 1 || (r.Length <= limits.MaxBatchSize && r.Length * r.Max(i => waiting[i].Tokens) <= limits.MaxBatchTokens));
        return prefix && bounded;
    }
}
