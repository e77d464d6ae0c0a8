using Prometheus;

namespace Sparky.Embeddings;

/// <summary>The embedding service's Prometheus metrics, in the registry of whoever serves them (the daemon's, or
/// <c>sparky embed serve</c>'s own).</summary>
public sealed class EmbeddingMetrics
{
    /// <summary>How a request ended: <c>ok</c>, <c>invalid</c> (a 4xx for its content), <c>overloaded</c> (429) or <c>error</c> (500).</summary>
    public static readonly string[] Outcomes = ["ok", "invalid", "overloaded", "error"];

    private readonly Counter _requests, _inputs, _tokens, _rejected;
    public Histogram BatchSize { get; }
    public Histogram QueueSeconds { get; }
    public Histogram InferenceSeconds { get; }
    public Gauge InFlight { get; }

    public EmbeddingMetrics(CollectorRegistry registry)
    {
        var f = Metrics.WithCustomRegistry(registry);
        _requests = f.CreateCounter("sparky_embeddings_requests_total", "Embedding requests answered, by outcome: ok, invalid, overloaded (429), error.", "outcome");
        _inputs = f.CreateCounter("sparky_embeddings_inputs_total", "Texts embedded.");
        _tokens = f.CreateCounter("sparky_embeddings_tokens_total", "Tokens embedded ([CLS] and [SEP] included, padding not).");
        _rejected = f.CreateCounter("sparky_embeddings_rejections_total", "Requests refused, by reason: overloaded (past max_concurrent_requests), too_long, invalid.", "reason");
        BatchSize = f.CreateHistogram("sparky_embeddings_batch_size", "Inputs per call of the model.",
            new HistogramConfiguration { Buckets = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512] });
        QueueSeconds = f.CreateHistogram("sparky_embeddings_queue_seconds", "Time an input waited for its batch to start.",
            new HistogramConfiguration { Buckets = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5] });
        InferenceSeconds = f.CreateHistogram("sparky_embeddings_inference_seconds", "Time of one call of the model (one batch).",
            new HistogramConfiguration { Buckets = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] });
        InFlight = f.CreateGauge("sparky_embeddings_requests_in_flight", "Embedding requests queued or running (bounded by max_concurrent_requests).");
        foreach (var o in Outcomes) _requests.WithLabels(o);
        foreach (var r in new[] { "overloaded", "too_long", "invalid" }) _rejected.WithLabels(r);
    }

    public void Answered(string outcome) => _requests.WithLabels(outcome).Inc();
    public void Rejected(string reason) => _rejected.WithLabels(reason).Inc();
    public void Embedded(int inputs, long tokens) { _inputs.Inc(inputs); _tokens.Inc(tokens); }
}
