using System.Text.Json.Nodes;
using Sparky.Embeddings.Model;

namespace Sparky.Demo;

/// <summary>
/// The demo's last part: a few sentences embedded with all-MiniLM-L6-v2, each with its nearest neighbour. It needs the
/// model at hand (in the model cache, or its package in NuGet's packages folder, as a build of Sparky's tests leaves
/// it); it never downloads, so the demo stays quick and offline, and says how to get the model where it is missing.
/// </summary>
internal static class EmbeddingDemo
{
    private static readonly string[] Sentences =
    [
        "The training run ran out of GPU memory.",
        "CUDA reported an out-of-memory error during the fit.",
        "The cat is asleep on the warm windowsill.",
        "A kitten naps in the sun by the window.",
        "Quarterly revenue rose by eight percent.",
        "Sales grew strongly this quarter.",
    ];

    /// <summary>Each sentence with its nearest other one and their cosine; null (with why) where the model is not at hand.</summary>
    public static (JsonArray? Pairs, string? Why) Run()
    {
        if (!MiniLm.IsCached() && MiniLm.FindAssembly() is null)
            return (null, $"embeddings: skipped, the model is not here (sparky embed fetch minilm puts it in {ModelCache.Root})");
        var (dir, error) = MiniLm.Fetch();
        if (dir is null) return (null, $"embeddings: skipped ({error})");
        var (model, problem) = ModelDirectory.Read(dir);
        if (model is null) return (null, $"embeddings: skipped ({problem})");
        var tokenizer = new TextTokenizer(model);
        OnnxEmbedder embedder;
        // ONNX Runtime is a native library beside the executable: missing, or missing one of its own libraries
        // (libstdc++), the demo says so and passes; the rest of it never needed the model.
        try { embedder = new OnnxEmbedder(model, "cpu"); }
        catch (Exception e) when (e is TypeInitializationException or DllNotFoundException or EntryPointNotFoundException)
        {
            var why = (e.InnerException ?? e).Message.Split('\n')[0];
            return (null, $"embeddings: skipped, ONNX Runtime cannot be loaded ({why})");
        }
        using var owned = embedder;
        var vectors = embedder.Embed(Sentences.Select(s => tokenizer.Encode(s, truncate: true, out _)!).ToArray());
        var pairs = new JsonArray();
        for (int i = 0; i < Sentences.Length; i++)
        {
            var (j, cos) = Enumerable.Range(0, Sentences.Length).Where(k => k != i)
                .Select(k => (k, Vectors.Cosine(vectors[i], vectors[k]))).MaxBy(p => p.Item2);
            pairs.Add(new JsonObject { ["sentence"] = Sentences[i], ["nearest"] = Sentences[j], ["cosine"] = Math.Round(cos, 3) });
        }
        return (pairs, null);
    }
}
