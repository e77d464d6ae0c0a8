using Sparky.Core.Config;

namespace Sparky.Core.Tests.Config;

/// <summary>The <c>embeddings_*</c> settings (<c>[embeddings]</c> in sparky.toml): their defaults, what they mean, and
/// every bad one refused with what is allowed.</summary>
public sealed class EmbeddingSettingsTests
{
    private static readonly SettingContext Ctx = new(2, "/data");
    private static Dictionary<string, string> D(params (string, string)[] kv) => kv.ToDictionary(x => x.Item1, x => x.Item2);

    [Fact]
    public void By_default_the_daemon_serves_no_embeddings_and_batches_briefly()
    {
        var (c, errors) = SparkyConfig.Resolve(D(), D(), D(), "f", Ctx);
        Assert.Empty(errors);
        Assert.Equal(new EmbeddingSettings("", "auto", 0, 2048, 16, TimeSpan.FromMilliseconds(5), 512, false), c!.Embeddings);
    }

    [Fact]
    public void The_embeddings_table_of_sparky_toml_and_the_environment_set_them()
    {
        // [embeddings] model = "minilm", max_batch_wait = "0.01" in the file; the environment wins where both say.
        var file = D(("embeddings_model", "minilm"), ("embeddings_max_batch_wait", "0.01"), ("embeddings_truncate", "true"));
        var env = D(("SPARKY_EMBEDDINGS_MAX_BATCH_SIZE", "1"), ("SPARKY_EMBEDDINGS_MAX_BATCH_WAIT", "0ms"));
        var (c, errors) = SparkyConfig.Resolve(D(), env, file, "sparky.toml", Ctx);
        Assert.Empty(errors);
        Assert.Equal(("minilm", 1, TimeSpan.Zero, true), (c!.Embeddings.Model, c.Embeddings.MaxBatchSize, c.Embeddings.MaxBatchWait, c.Embeddings.Truncate));
        Assert.Equal(TimeSpan.FromMilliseconds(10), SparkyConfig.Resolve(D(), D(), file, "f", Ctx).Config!.Embeddings.MaxBatchWait);
    }

    [Fact]
    public void Bad_values_are_each_refused_with_what_is_allowed()
    {
        var (c, errors) = SparkyConfig.Resolve(D(("embeddings_device", "tpu"), ("embeddings_max_batch_wait", "5 minutes"),
            ("embeddings_max_batch_size", "0"), ("embeddings_max_concurrent_requests", "-1"), ("embeddings_truncate", "maybe")), D(), D(), "f", Ctx);
        Assert.Null(c);
        Assert.Equal(5, errors.Count);
        Assert.Contains(errors, e => e.StartsWith("embeddings_device = 'tpu'", StringComparison.Ordinal) && e.Contains("auto, cpu, cuda"));
        Assert.Contains(errors, e => e.StartsWith("embeddings_max_batch_wait", StringComparison.Ordinal) && e.Contains("5ms"));
    }
}
