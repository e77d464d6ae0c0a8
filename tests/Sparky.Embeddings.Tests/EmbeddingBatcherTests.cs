using Prometheus;
using Sparky.Embeddings.Batching;

namespace Sparky.Embeddings.Tests;

/// <summary>The batcher with a stand-in model (each input's vector is its ids as floats), so what it does with
/// threads shows without ONNX Runtime.</summary>
public class EmbeddingBatcherTests
{
    [Fact]
    public async Task Workers_run_batches_at_once_and_each_caller_gets_its_own_vectors_in_order()
    {
        int running = 0, most = 0;
        float[][] Model(IReadOnlyList<int[]> batch)
        {
            int now = Interlocked.Increment(ref running);
            for (int seen; (seen = Volatile.Read(ref most)) < now && Interlocked.CompareExchange(ref most, now, seen) != seen;) { }
            Thread.Sleep(20); // a call that takes a while, so batches overlap where two workers can run them
            Interlocked.Decrement(ref running);
            return [.. batch.Select(ids => ids.Select(x => (float)x).ToArray())];
        }
        using var batcher = new EmbeddingBatcher(Model, new BatchLimits(64, 4, TimeSpan.Zero), 512,
            new EmbeddingMetrics(Metrics.NewCustomRegistry()), workers: 2);
        Assert.Equal(2, batcher.Workers);
        // 40 callers, each with a few inputs of its own (lengths vary, so the planner regroups them across callers).
        var calls = Enumerable.Range(0, 40).Select(c => (Caller: c, Inputs: Enumerable.Range(0, 1 + c % 3).Select(i => Enumerable.Repeat(c * 10 + i, 2 + (c + i) % 5).ToArray()).ToArray())).ToList();
        var answers = await Task.WhenAll(calls.Select(c => batcher.EmbedAsync(c.Inputs)));
        for (int c = 0; c < calls.Count; c++)
        {
            Assert.Equal(calls[c].Inputs.Length, answers[c].Length);
            for (int i = 0; i < answers[c].Length; i++) Assert.Equal(calls[c].Inputs[i].Select(x => (float)x), answers[c][i]);
        }
        Assert.Equal(2, most);
    }

    [Theory]
    [InlineData(0, false, 2, 1, 2)]   // the default on a 2-core CPU: one thread a call, two calls at once
    [InlineData(0, false, 8, 1, 8)]
    [InlineData(0, false, 16, 2, 8)]    // past 8 cores, more threads a call rather than more calls
    [InlineData(0, false, 64, 8, 8)]
    [InlineData(2, false, 2, 2, 1)]   // one call spread over both cores
    [InlineData(4, false, 16, 4, 4)]
    [InlineData(8, false, 2, 8, 1)]   // more threads than cores: still one call
    [InlineData(0, true, 4, 1, 1)]    // a GPU: one call at a time
    public void The_layout_shares_the_cores_out_between_calls(int threads, bool gpu, int cores, int perCall, int workers) =>
        Assert.Equal((perCall, workers), EmbeddingService.Layout(threads, gpu, cores));
}
