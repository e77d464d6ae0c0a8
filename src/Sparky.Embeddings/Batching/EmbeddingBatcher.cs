namespace Sparky.Embeddings.Batching;

/// <summary>
/// Coalesces the inputs of concurrent requests into batches for the model (<see cref="BatchPlanner"/> decides; this
/// class waits, runs and hands out). <c>workers</c> threads run the model, each one batch at a time: on a CPU one per
/// core, each call on one thread (a call spread over all the cores waits at every layer for its slowest thread, which
/// on a shared machine is often one the HTTP work or a neighbour took), on a GPU one. A free worker runs the batch that
/// holds the oldest input waiting; the others wait on, to be grouped again with what arrives meanwhile. Each request
/// gets its own vectors, in its own order. At most <c>maxConcurrentRequests</c> requests are queued or running; past
/// that <see cref="TryAdmit"/> says no (HTTP 429).
/// </summary>
public sealed class EmbeddingBatcher : IDisposable
{
    /// <summary>One request's inputs and where their vectors go.</summary>
    private sealed class Job(int count)
    {
        public readonly float[][] Vectors = new float[count][];
        public readonly TaskCompletionSource<float[][]> Done = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public int Left = count;
    }

    private readonly record struct Item(Job Job, int Index, int[] Ids, long EnqueuedAt);

    private readonly Func<IReadOnlyList<int[]>, float[][]> _model;
    private readonly BatchLimits _limits;
    private readonly int _maxRequests;
    private readonly EmbeddingMetrics _metrics;
    private readonly TimeProvider _clock;
    private readonly object _lock = new();
    private readonly List<Item> _waiting = [];
    private readonly ArrivalRate _arrivals = new();
    private long _waitingTokens;
    private int _requests;
    private bool _stopping;
    private readonly Thread[] _workers;

    /// <param name="model">Runs one batch: token ids in, one vector per input out, in order. Called by
    /// <paramref name="workers"/> threads at once, so it must be thread-safe (ONNX Runtime's Run is).</param>
    public EmbeddingBatcher(Func<IReadOnlyList<int[]>, float[][]> model, BatchLimits limits, int maxConcurrentRequests,
        EmbeddingMetrics metrics, TimeProvider? clock = null, int workers = 1)
    {
        _model = model;
        _limits = limits;
        _maxRequests = maxConcurrentRequests;
        _metrics = metrics;
        _clock = clock ?? TimeProvider.System;
        _workers = [.. Enumerable.Range(0, Math.Max(1, workers)).Select(i => new Thread(Loop) { IsBackground = true, Name = $"sparky-embed-batcher-{i}" })];
        foreach (var t in _workers) t.Start();
    }

    /// <summary>Batches run at once.</summary>
    public int Workers => _workers.Length;

    public BatchLimits Limits => _limits;

    /// <summary>Takes a place for one request, or says no when <c>maxConcurrentRequests</c> are queued or running.
    /// A request admitted calls <see cref="Leave"/> when it is answered, however it ends.</summary>
    public bool TryAdmit()
    {
        if (Interlocked.Increment(ref _requests) > _maxRequests)
        {
            Interlocked.Decrement(ref _requests);
            return false;
        }
        _metrics.InFlight.Inc();
        return true;
    }

    public void Leave()
    {
        Interlocked.Decrement(ref _requests);
        _metrics.InFlight.Dec();
    }

    /// <summary>The vectors of <paramref name="inputs"/> (token ids each), in their order, once their batches ran.</summary>
    public Task<float[][]> EmbedAsync(IReadOnlyList<int[]> inputs)
    {
        var job = new Job(inputs.Count);
        if (inputs.Count == 0) return Task.FromResult(job.Vectors);
        long now = _clock.GetTimestamp();
        lock (_lock)
        {
            if (_stopping) throw new ObjectDisposedException(nameof(EmbeddingBatcher));
            _arrivals.Observe(now / (double)_clock.TimestampFrequency, inputs.Count);
            for (int i = 0; i < inputs.Count; i++)
            {
                _waiting.Add(new Item(job, i, inputs[i], now));
                _waitingTokens += inputs[i].Length;
            }
            Monitor.Pulse(_lock);
        }
        return job.Done.Task;
    }

    private void Loop()
    {
        while (true)
        {
            Item[] run;
            lock (_lock)
            {
                while (true)
                {
                    if (_stopping) return;
                    var waited = _waiting.Count == 0 ? TimeSpan.Zero : _clock.GetElapsedTime(_waiting[0].EnqueuedAt);
                    var delay = BatchPlanner.Delay(_waiting.Count, _waitingTokens, waited, _limits, _arrivals.PerSecond);
                    if (delay == TimeSpan.Zero) break;
                    if (delay is null) Monitor.Wait(_lock);
                    else Monitor.Wait(_lock, delay.Value);
                }
                run = TakeOldestRun();
                // What is left may be another worker's batch.
                if (_waiting.Count > 0) Monitor.Pulse(_lock);
            }
            Run(run);
        }
    }

    /// <summary>The run the planner puts the oldest input in, taken off the waiting list (under the lock).</summary>
    private Item[] TakeOldestRun()
    {
        var plan = BatchPlanner.Plan(_waiting.Select(w => new Waiting(w.Ids.Length)).ToList(), _limits);
        var picked = plan.First(r => r.Contains(0));
        var run = new Item[picked.Length];
        for (int i = 0; i < picked.Length; i++)
        {
            run[i] = _waiting[picked[i]];
            _waitingTokens -= run[i].Ids.Length;
        }
        // The rest keep their arrival order.
        var taken = new bool[_waiting.Count];
        foreach (var i in picked) taken[i] = true;
        int kept = 0;
        for (int i = 0; i < _waiting.Count; i++)
            if (!taken[i]) _waiting[kept++] = _waiting[i];
        _waiting.RemoveRange(kept, _waiting.Count - kept);
        return run;
    }

    private void Run(Item[] run)
    {
        long started = _clock.GetTimestamp();
        foreach (var item in run) _metrics.QueueSeconds.Observe(_clock.GetElapsedTime(item.EnqueuedAt, started).TotalSeconds);
        float[][] vectors;
        try
        {
            vectors = _model(run.Select(i => i.Ids).ToArray());
            if (vectors.Length != run.Length) throw new InvalidOperationException($"the model gave {vectors.Length} vectors for {run.Length} inputs");
        }
        catch (Exception e)
        {
            // A batch that fails fails its requests (500), never the server.
            foreach (var item in run) item.Job.Done.TrySetException(e);
            return;
        }
        _metrics.InferenceSeconds.Observe(_clock.GetElapsedTime(started).TotalSeconds);
        _metrics.BatchSize.Observe(run.Length);
        for (int i = 0; i < run.Length; i++)
        {
            var job = run[i].Job;
            job.Vectors[run[i].Index] = vectors[i];
            if (Interlocked.Decrement(ref job.Left) == 0) job.Done.TrySetResult(job.Vectors);
        }
    }

    public void Dispose()
    {
        lock (_lock)
        {
            _stopping = true;
            Monitor.PulseAll(_lock);
            foreach (var item in _waiting) item.Job.Done.TrySetException(new ObjectDisposedException(nameof(EmbeddingBatcher)));
            _waiting.Clear();
        }
        foreach (var t in _workers) t.Join(TimeSpan.FromSeconds(30));
    }
}
