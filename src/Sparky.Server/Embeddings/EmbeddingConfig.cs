using Sparky.Core.Config;
using Sparky.Embeddings;
using Sparky.Embeddings.Batching;
using Sparky.Embeddings.Model;

namespace Sparky.Server.Embeddings;

/// <summary>The <c>embeddings_*</c> settings as the embedding service's options: one reading for the daemon and for
/// <c>sparky embed serve</c>.</summary>
public static class EmbeddingConfig
{
    /// <param name="model">The model to serve; null: <c>embeddings_model</c>, else <c>minilm</c>.</param>
    public static EmbeddingOptions Options(SparkyConfig config, string? model = null) => new()
    {
        Model = model ?? (config.Embeddings.Model is { Length: > 0 } m ? m : MiniLm.Name),
        Device = config.Embeddings.Device,
        Threads = config.Embeddings.Threads,
        Batch = new BatchLimits(config.Embeddings.MaxBatchTokens, config.Embeddings.MaxBatchSize, config.Embeddings.MaxBatchWait),
        MaxConcurrentRequests = config.Embeddings.MaxConcurrentRequests,
        Truncate = config.Embeddings.Truncate,
        MaxBodyBytes = config.MaxBodyBytes,
    };
}
