using Microsoft.Extensions.Logging;
using Prometheus;
using Sparky.Embeddings.Batching;
using Sparky.Embeddings.Http;
using Sparky.Embeddings.Model;

namespace Sparky.Embeddings;

/// <summary>The service's settings (the <c>embeddings_*</c> settings, or <c>sparky embed serve</c>'s flags).</summary>
public sealed record EmbeddingOptions
{
    /// <summary>A model directory, or <c>minilm</c> (all-MiniLM-L6-v2 from the model cache, fetched there if missing).</summary>
    public string Model { get; init; } = MiniLm.Name;
    /// <summary>auto, cpu or cuda.</summary>
    public string Device { get; init; } = "auto";
    /// <summary>Threads one call of the model may use; 0: one (on a CPU, as many calls at once as cores; see
    /// <see cref="EmbeddingService.Layout"/>).</summary>
    public int Threads { get; init; }
    public BatchLimits Batch { get; init; } = new(MaxBatchTokens: 2048, MaxBatchSize: 16, MaxWait: TimeSpan.FromMilliseconds(5));
    public int MaxConcurrentRequests { get; init; } = 512;
    /// <summary>An input over the model's token limit is cut to it (true) or refused with 400 (false, as OpenAI does).</summary>
    public bool Truncate { get; init; }
    /// <summary>The largest request body, in bytes.</summary>
    public long MaxBodyBytes { get; init; } = 16 * 1024 * 1024;
}

/// <summary>
/// The embedding service: a model, its tokenizer and the batcher in front of it. Requests tokenise on their own threads,
/// then wait for the batcher; a request is refused before any work when <c>max_concurrent_requests</c> are in.
/// </summary>
public sealed partial class EmbeddingService : IDisposable
{
    public ModelInfo Model { get; }
    public TextTokenizer Tokenizer { get; }
    public OnnxEmbedder Embedder { get; }
    public EmbeddingBatcher Batcher { get; }
    public EmbeddingMetrics Metrics { get; }
    public EmbeddingOptions Options { get; }
    /// <summary>The names a request's <c>model</c> may give: the id, and the Hugging Face name for the default model.</summary>
    public IReadOnlyCollection<string> Names { get; }
    public DateTimeOffset LoadedAt { get; } = DateTimeOffset.UtcNow;

    private EmbeddingService(ModelInfo model, EmbeddingOptions options, CollectorRegistry registry)
    {
        Model = model;
        Options = options;
        Tokenizer = new TextTokenizer(model);
        Embedder = new OnnxEmbedder(model, options.Device, Layout(options.Threads, false, Environment.ProcessorCount).Threads);
        var (_, workers) = Layout(options.Threads, Embedder.Device == "cuda", Environment.ProcessorCount);
        Metrics = new EmbeddingMetrics(registry);
        Batcher = new EmbeddingBatcher(Embedder.Embed, options.Batch, options.MaxConcurrentRequests, Metrics, workers: workers);
        Names = model.Id == MiniLm.Id ? [model.Id, "sentence-transformers/" + model.Id] : [model.Id];
    }

    /// <summary>
    /// How the model's calls use the machine: threads per call, and calls at once. On a CPU the cores are shared out
    /// (<paramref name="threads"/> 0: one thread a call, one call a core), since a call on one thread wastes nothing
    /// waiting for the others at each layer (bench/README.md: it cost less CPU a sentence, and kept its pace where the
    /// HTTP work or a neighbour took a core); on a GPU one call at a time. Past <see cref="MaxWorkers"/> cores, 0 gives
    /// each call more threads instead of more calls: each call at once holds its own activations (tens of MB for a full
    /// batch), and many workers would each run a small batch where a few would run full ones.
    /// </summary>
    public static (int Threads, int Workers) Layout(int threads, bool gpu, int cores)
    {
        int perCall = threads > 0 ? threads : Math.Max(1, cores / MaxWorkers);
        return (perCall, gpu ? 1 : Math.Max(1, cores / perCall));
    }

    /// <summary>The most calls of the model at once that <c>embeddings_threads = 0</c> chooses.</summary>
    public const int MaxWorkers = 8;

    /// <summary>Loads the model (fetching the default one into the cache where it is missing). A model that cannot be
    /// had is an <see cref="InvalidOperationException"/> with one line saying why.</summary>
    public static EmbeddingService Load(EmbeddingOptions options, CollectorRegistry registry, ILogger log)
    {
        var dir = options.Model;
        if (dir == MiniLm.Name)
        {
            var (fetched, error) = MiniLm.Fetch(log: line => Log.Fetching(log, line));
            dir = fetched ?? throw new InvalidOperationException($"cannot fetch {MiniLm.Id}: {error}");
        }
        var (model, problem) = ModelDirectory.Read(dir);
        if (model is null) throw new InvalidOperationException(problem);
        EmbeddingService service;
        try { service = new EmbeddingService(model, options, registry); }
        catch (Exception e) when (e is Microsoft.ML.OnnxRuntime.OnnxRuntimeException or IOException or DllNotFoundException)
        {
            throw new InvalidOperationException($"cannot load {model.OnnxPath}: {e.Message.Split('\n')[0]}");
        }
        Log.Loaded(log, model.Id, service.Embedder.Dimensions, model.MaxTokens, service.Embedder.DeviceReason,
            service.Batcher.Workers, service.Embedder.Threads, model.Directory);
        return service;
    }

    /// <summary>Tokenises a request's inputs: their ids, and the token count in all; or why one cannot be embedded.</summary>
    public (int[][]? Ids, long Tokens, ApiError? Error) Tokenize(IReadOnlyList<string> inputs)
    {
        var ids = new int[inputs.Count][];
        long tokens = 0;
        for (int i = 0; i < inputs.Count; i++)
        {
            var encoded = Tokenizer.Encode(inputs[i], Options.Truncate, out int count);
            if (encoded is null)
                return (null, 0, new ApiError(400,
                    $"{(inputs.Count == 1 ? "input" : $"input[{i}]")} has {(inputs[i].Length > Tokenizer.MaxChars ? "over " : "")}{count} tokens; " +
                    $"this model takes at most {Tokenizer.MaxTokens} (shorten it, or start the service with embeddings_truncate = true to cut it)",
                    "input", "context_length_exceeded"));
            ids[i] = encoded;
            tokens += encoded.Length;
        }
        return (ids, tokens, null);
    }

    public void Dispose()
    {
        Batcher.Dispose();
        Embedder.Dispose();
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 700, Level = LogLevel.Information, Message = "embeddings: {Line}")]
        public static partial void Fetching(ILogger log, string line);

        [LoggerMessage(EventId = 701, Level = LogLevel.Information,
            Message = "embeddings: model {Id} ({Dimensions} dimensions, at most {MaxTokens} tokens an input) on {Device}, {Workers} batches at once of {Threads} threads each, from {Dir}")]
        public static partial void Loaded(ILogger log, string id, int dimensions, int maxTokens, string device, int workers, int threads, string dir);
    }
}
