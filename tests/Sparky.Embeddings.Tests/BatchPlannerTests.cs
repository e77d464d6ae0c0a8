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
