namespace Sparky.Embeddings.Batching;

/// <summary>
/// Coalesces the inputs of concurrent requests into batches for the model (<see cref="BatchPlanner"/> decides; this
/// class waits, runs and hands out). One thread runs the model, one batch at a time: ONNX Runtime spreads a call over the
/// cores, and two calls at once would only fight for them. Each request gets its own vectors, in its own order. At most
/// <c>maxConcurrentRequests</c> requests are queued or running; past that <see cref="TryAdmit"/> says no (HTTP 429).
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
    private readonly Thread _loop;

    /// <param name="model">Runs one batch: token ids in, one vector per input out, in order.</param>
    public EmbeddingBatcher(Func<IReadOnlyList<int[]>, float[][]> model, BatchLimits limits, int maxConcurrentRequests,
        EmbeddingMetrics metrics, TimeProvider? clock = null)
    {
        _model = model;
        _limits = limits;
        _maxRequests = maxConcurrentRequests;
        _metrics = metrics;
        _clock = clock ?? TimeProvider.System;
        _loop = new Thread(Loop) { IsBackground = true, Name = "sparky-embed-batcher" };
        _loop.Start();
    }

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
            List<Item[]> runs;
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
                var plan = BatchPlanner.Plan(_waiting.Select(w => new Waiting(w.Ids.Length)).ToList(), _limits);
                runs = plan.Select(r => r.Select(i => _waiting[i]).ToArray()).ToList();
                int taken = plan.Sum(r => r.Length);
                foreach (var run in runs) foreach (var item in run) _waitingTokens -= item.Ids.Length;
                // The planner takes a prefix of the waiting list (the oldest inputs).
                _waiting.RemoveRange(0, taken);
            }
            foreach (var run in runs) Run(run);
        }
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
            Monitor.Pulse(_lock);
            foreach (var item in _waiting) item.Job.Done.TrySetException(new ObjectDisposedException(nameof(EmbeddingBatcher)));
            _waiting.Clear();
        }
        _loop.Join(TimeSpan.FromSeconds(30));
    }
}
