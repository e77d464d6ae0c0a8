using System.Text.Json;
using System.Text.Json.Nodes;

namespace Sparky.Embeddings.Model;

/// <summary>How token vectors become one sentence vector (sentence-transformers' <c>1_Pooling/config.json</c>).</summary>
public enum Pooling { Mean, Cls, Max }

/// <summary>
/// What a model directory says about its model, read once at load. The directory is in the layout that
/// sentence-transformers' ONNX exports (and Hugging Face's <c>optimum</c>) write: <c>model.onnx</c> (or
/// <c>onnx/model.onnx</c>), <c>vocab.txt</c> or <c>tokenizer.json</c>, and the settings files beside them, each optional:
/// <c>1_Pooling/config.json</c> (pooling), <c>modules.json</c> (a <c>Normalize</c> module), <c>sentence_bert_config.json</c>
/// (<c>max_seq_length</c>), <c>tokenizer_config.json</c> (<c>do_lower_case</c>, <c>model_max_length</c>), <c>config.json</c>
/// (<c>max_position_embeddings</c>). Sparky's own <c>sparky_embedding.json</c> may name the model and say whether it allows
/// shorter vectors (<c>"matryoshka": true</c>: OpenAI's <c>dimensions</c> then truncates and renormalises).
/// </summary>
public sealed record ModelInfo(
    string Id,
    string Directory,
    string OnnxPath,
    string? VocabPath,
    string? TokenizerJsonPath,
    Pooling Pooling,
    bool Normalize,
    bool LowerCase,
    int MaxTokens,
    bool Matryoshka);

public static class ModelDirectory
{
    /// <summary>Reads a model directory; every way it can be unusable is one line in <c>Error</c>.</summary>
    public static (ModelInfo? Model, string? Error) Read(string dir, string? id = null)
    {
        if (!System.IO.Directory.Exists(dir)) return (null, $"no model directory {dir}");
        string? onnx = new[] { "model.onnx", Path.Combine("onnx", "model.onnx") }.Select(p => Path.Combine(dir, p)).FirstOrDefault(File.Exists);
        if (onnx is null) return (null, $"{dir} has no model.onnx (nor onnx/model.onnx)");
        string? vocab = Path.Combine(dir, "vocab.txt") is var v && File.Exists(v) ? v : null;
        string? tokenizerJson = Path.Combine(dir, "tokenizer.json") is var t && File.Exists(t) ? t : null;
        if (vocab is null && tokenizerJson is null) return (null, $"{dir} has neither vocab.txt nor tokenizer.json");
        try
        {
            var pooling = Pooling.Mean;
            if (ReadJson(dir, "1_Pooling", "config.json") is JsonObject p)
            {
                if (Flag(p, "pooling_mode_cls_token")) pooling = Pooling.Cls;
                else if (Flag(p, "pooling_mode_max_tokens")) pooling = Pooling.Max;
                else if (!Flag(p, "pooling_mode_mean_tokens") && !Flag(p, "pooling_mode_mean_sqrt_len_tokens"))
                    return (null, $"{dir}/1_Pooling/config.json: only mean, cls and max pooling are supported");
            }
            // Without modules.json, normalise: that is what an embedding service's clients expect (OpenAI's vectors are unit length).
            bool normalize = ReadJson(dir, "modules.json") is not JsonArray modules
                || modules.OfType<JsonObject>().Any(m => Str(m, "type")?.EndsWith(".Normalize", StringComparison.Ordinal) == true);
            var tokenizerConfig = ReadJson(dir, "tokenizer_config.json") as JsonObject;
            bool lower = tokenizerConfig is null || !tokenizerConfig.ContainsKey("do_lower_case") || Flag(tokenizerConfig, "do_lower_case");
            if (tokenizerJson is not null && vocab is null && ReadJson(dir, "tokenizer.json") is JsonObject tj
                && tj["normalizer"] is JsonObject norm && norm.ContainsKey("lowercase"))
                lower = Flag(norm, "lowercase");
            // The model's limit: sentence-transformers' max_seq_length, else the tokenizer's, else the position table's; 512 at most unknown.
            int? positions = Int(ReadJson(dir, "config.json") as JsonObject, "max_position_embeddings");
            // (Tokenizers that set no limit write a huge model_max_length.)
            int? tokenizerMax = Int(tokenizerConfig, "model_max_length") is { } tm && tm < 100_000 ? tm : null;
            int max = Int(ReadJson(dir, "sentence_bert_config.json") as JsonObject, "max_seq_length") ?? tokenizerMax ?? positions ?? 512;
            if (positions is { } pos && max > pos) max = pos;
            var own = ReadJson(dir, "sparky_embedding.json") as JsonObject;
            string name = id ?? Str(own, "id") ?? Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(dir)));
            return (new ModelInfo(name, Path.GetFullPath(dir), onnx, vocab, tokenizerJson, pooling, normalize, lower, Math.Max(2, max),
                Flag(own, "matryoshka")), null);
        }
        catch (Exception e) when (e is JsonException or IOException or InvalidOperationException or UnauthorizedAccessException)
        {
            return (null, $"{dir}: {e.Message.Split('\n')[0]}");
        }
    }

    private static JsonNode? ReadJson(string dir, params string[] parts)
    {
        var path = Path.Combine([dir, .. parts]);
        return File.Exists(path) ? JsonNode.Parse(File.ReadAllText(path)) : null;
    }

    private static bool Flag(JsonObject? o, string key) => o?[key] is JsonValue v && v.GetValueKind() == JsonValueKind.True;
    private static string? Str(JsonObject? o, string key) => o?[key] is JsonValue v && v.GetValueKind() == JsonValueKind.String ? v.GetValue<string>() : null;
    private static int? Int(JsonObject? o, string key) =>
        o?[key] is JsonValue v && v.GetValueKind() == JsonValueKind.Number && v.TryGetValue<long>(out var n) && n is > 0 and < int.MaxValue ? (int)n : null;
}
