namespace Sparky.Embeddings.Batching;

/// <summary>
/// The batcher's bounds. A run (one call of the model) holds at most <see cref="MaxBatchSize"/> inputs whose padded size
/// (inputs × the longest one's tokens) is at most <see cref="MaxBatchTokens"/>; the first input waiting is held at most
/// <see cref="MaxWait"/> for others to join it. <c>MaxBatchSize = 1</c> is batching off.
/// </summary>
public sealed record BatchLimits(int MaxBatchTokens, int MaxBatchSize, TimeSpan MaxWait);

/// <summary>One input waiting, as the planner sees it: its token count, in arrival order.</summary>
public readonly record struct Waiting(int Tokens);

/// <summary>
/// The batching decisions, pure (no clock, no I/O: times are passed in): when the waiting inputs should run, and which
/// of them go together. Like Triton's dynamic batcher, it runs the largest batch that is ready and holds the first
/// input no longer than a short delay; like text-embeddings-inference, a batch is bounded by tokens, not by count alone.
/// </summary>
public static class BatchPlanner
{
    /// <summary>
    /// How long to wait before the next run: null when nothing waits; zero when a full batch is waiting, the oldest
    /// input has waited <see cref="BatchLimits.MaxWait"/>, or fewer than one more input is expected before the window
    /// ends at the rate inputs arrive (<paramref name="arrivalsPerSecond"/>): waiting then only adds latency, so a
    /// moderate load runs at once on an idle model, while under load inputs gather during each run (the loop is busy)
    /// and later ones still wait to fill a batch. Otherwise the rest of the window.
    /// </summary>
    public static TimeSpan? Delay(int waitingInputs, long waitingTokens, TimeSpan oldestWaited, BatchLimits limits, double arrivalsPerSecond = double.PositiveInfinity)
    {
        if (waitingInputs == 0) return null;
        if (waitingInputs >= limits.MaxBatchSize || waitingTokens >= limits.MaxBatchTokens || oldestWaited >= limits.MaxWait) return TimeSpan.Zero;
        var left = limits.MaxWait - oldestWaited;
        return arrivalsPerSecond * left.TotalSeconds < 1 ? TimeSpan.Zero : left;
    }

    /// <summary>
    /// The next runs, as indices into <paramref name="waiting"/> (in arrival order). The oldest inputs are taken first
    /// (none waits behind later ones for long), as many as fill one batch's token budget; those are sorted by length and
    /// cut into runs of like length (little padding), each within the budget and the size. An input longer than the whole budget runs alone.
    /// </summary>
    public static List<int[]> Plan(IReadOnlyList<Waiting> waiting, BatchLimits limits)
    {
        var taken = new List<int>();
        long tokens = 0;
        for (int i = 0; i < waiting.Count; i++)
        {
            if (taken.Count > 0 && (tokens + waiting[i].Tokens > limits.MaxBatchTokens || taken.Count >= limits.MaxBatchSize * 4)) break;
            taken.Add(i);
            tokens += waiting[i].Tokens;
        }
        // Stable: equal lengths keep their arrival order.
        var byLength = taken.OrderBy(i => waiting[i].Tokens).ToList();
        var runs = new List<int[]>();
        var run = new List<int>();
        long real = 0;
        foreach (var i in byLength)
        {
            // Sorted ascending, this input is the run's longest: the padded size if it joins. On a CPU a padded token
            // costs as much as a real one and a call of the model costs little more than its tokens, so a run ends
            // where more than an eighth of it (and over 2 tokens an input) would be padding.
            int n = run.Count + 1;
            long padded = (long)n * waiting[i].Tokens, total = real + waiting[i].Tokens;
            if (run.Count > 0 && (run.Count >= limits.MaxBatchSize || padded > limits.MaxBatchTokens || padded - total > Math.Max(total / 8, 2L * n)))
            {
                runs.Add([.. run]);
                run.Clear();
                real = 0;
            }
            run.Add(i);
            real += waiting[i].Tokens;
        }
        if (run.Count > 0) runs.Add([.. run]);
        return runs;
    }
}
