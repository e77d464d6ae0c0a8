using System.Buffers;
using System.Runtime.InteropServices;
using System.Text.Json;
using Sparky.Embeddings.Client.Output;

namespace Sparky.Embeddings.Client.Http;

/// <summary>
/// OpenAI's embeddings shapes, written and read by hand (no reflection: the CLI is compiled ahead of time). The request
/// is <c>{"input": [texts], "model", "encoding_format": "base64" or "float"}</c>; the answer's <c>data</c> holds one
/// <c>{"index", "embedding"}</c> per text, each embedding base64 of little-endian float32 (exact, a third of the size
/// and far cheaper to read than decimal numbers) or an array of numbers (what a server that ignores the format sends).
/// </summary>
public static class EmbeddingsWire
{
    public static byte[] Request(IReadOnlyList<string> texts, string? model, bool base64 = true)
    {
        var buffer = new ArrayBufferWriter<byte>(texts.Sum(t => t.Length) + 64 * texts.Count + 64);
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WriteStartArray("input");
            foreach (var t in texts) w.WriteStringValue(t);
            w.WriteEndArray();
            if (model is not null) w.WriteString("model", model);
            w.WriteString("encoding_format", base64 ? "base64" : "float");
            w.WriteEndObject();
        }
        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>The vectors of an answer to <paramref name="count"/> texts, row after row in the texts' order, and
    /// their dimension; or the reason the answer is not one (wrong count, an index missing or twice, dimensions that
    /// differ from each other or from <paramref name="expectedDimensions"/>).</summary>
    public static (float[]? Vectors, int Dimensions, string? Error) Response(ReadOnlySpan<byte> json, int count, int expectedDimensions)
    {
        try
        {
            using var doc = JsonDocument.Parse(json.ToArray());
            if (doc.RootElement.ValueKind != JsonValueKind.Object || !doc.RootElement.TryGetProperty("data", out var data) || data.ValueKind != JsonValueKind.Array)
                return (null, 0, "the answer has no \"data\" array");
            if (data.GetArrayLength() != count) return (null, 0, $"the answer has {data.GetArrayLength()} embeddings for {count} texts");
            int dims = expectedDimensions;
            float[]? vectors = null;
            var seen = new bool[count];
            int position = 0;
            foreach (var item in data.EnumerateArray())
            {
                // "index" says which text a vector is for; without it, the order of the array does.
                int index = item.TryGetProperty("index", out var ix) && ix.TryGetInt32(out var i) ? i : position;
                position++;
                if (index < 0 || index >= count || seen[index]) return (null, 0, $"the answer's index {index} is out of range or repeated");
                seen[index] = true;
                if (!item.TryGetProperty("embedding", out var e)) return (null, 0, $"embedding {index} is missing");
                var vector = Vector(e);
                if (vector is null || vector.Length == 0) return (null, 0, $"embedding {index} is not an array of numbers or base64 float32");
                if (dims == 0) dims = vector.Length;
                if (vector.Length != dims)
                    return (null, 0, $"embedding {index} has {vector.Length} dimensions, not {dims}" + (expectedDimensions > 0 ? " as the job's earlier vectors" : ""));
                vectors ??= new float[(long)count * dims];
                vector.CopyTo(vectors.AsSpan(index * dims, dims));
            }
            return (vectors ?? [], dims, null);
        }
        catch (JsonException e) { return (null, 0, "the answer is not JSON: " + e.Message.Split(" Path:")[0]); }
    }

    private static float[]? Vector(JsonElement e)
    {
        if (e.ValueKind == JsonValueKind.String)
        {
            byte[] bytes;
            try { bytes = Convert.FromBase64String(e.GetString()!); }
            catch (FormatException) { return null; }
            if (bytes.Length % 4 != 0) return null;
            var floats = MemoryMarshal.Cast<byte, float>(bytes).ToArray();
            if (!BitConverter.IsLittleEndian) Npy.ReverseEach(floats);
            return floats;
        }
        if (e.ValueKind != JsonValueKind.Array) return null;
        var v = new float[e.GetArrayLength()];
        int k = 0;
        foreach (var x in e.EnumerateArray())
        {
            if (x.ValueKind != JsonValueKind.Number || !x.TryGetSingle(out v[k]) || !float.IsFinite(v[k])) return null;
            k++;
        }
        return v;
    }

    /// <summary>The one model a <c>GET /v1/models</c> answer lists, or the reason there is not exactly one.</summary>
    public static (string? Model, string? Error) OnlyModel(ReadOnlySpan<byte> json)
    {
        try
        {
            using var doc = JsonDocument.Parse(json.ToArray());
            if (doc.RootElement.ValueKind != JsonValueKind.Object || !doc.RootElement.TryGetProperty("data", out var data) || data.ValueKind != JsonValueKind.Array)
                return (null, "the answer has no \"data\" array");
            var ids = data.EnumerateArray()
                .Select(m => m.ValueKind == JsonValueKind.Object && m.TryGetProperty("id", out var id) && id.ValueKind == JsonValueKind.String ? id.GetString() : null)
                .OfType<string>().ToList();
            return ids.Count switch
            {
                1 => (ids[0], null),
                0 => (null, "no model listed"),
                _ => (null, $"{ids.Count} models listed ({string.Join(", ", ids.Take(5))}{(ids.Count > 5 ? ", …" : "")}): choose one"),
            };
        }
        catch (JsonException) { return (null, "the answer is not JSON"); }
    }
}
