using System.Buffers;
using System.Buffers.Text;
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
    /// differ from each other or from <paramref name="expectedDimensions"/>). Read in one pass with a
    /// <see cref="Utf8JsonReader"/>, each base64 vector decoded straight from the answer's bytes: no document, no
    /// string per vector (what a batch of 64 vectors cost most of the client's time in).</summary>
    public static (float[]? Vectors, int Dimensions, string? Error) Response(ReadOnlySpan<byte> json, int count, int expectedDimensions)
    {
        const string NoData = "the answer has no \"data\" array";
        try
        {
            var r = new Utf8JsonReader(json);
            if (!r.Read() || r.TokenType != JsonTokenType.StartObject) { Validate(json); return (null, 0, NoData); }
            (float[]? Vectors, int Dimensions, string? Error)? answer = null;
            while (r.Read() && r.TokenType == JsonTokenType.PropertyName)
            {
                bool data = r.ValueTextEquals("data"u8);
                r.Read();
                if (data && answer is null && r.TokenType == JsonTokenType.StartArray) answer = Data(ref r, count, expectedDimensions);
                else r.Skip();
                if (answer is { Error: not null }) return answer.Value;
            }
            return answer ?? (null, 0, NoData);
        }
        catch (JsonException e) { return (null, 0, "the answer is not JSON: " + e.Message.Split(" Path:")[0]); }
    }

    /// <summary>Throws the reader's own error where the bytes are not JSON at all.</summary>
    private static void Validate(ReadOnlySpan<byte> json)
    {
        var r = new Utf8JsonReader(json);
        while (r.Read()) { }
    }

    /// <summary>The "data" array, the reader on its start; ends on its end.</summary>
    private static (float[]? Vectors, int Dimensions, string? Error) Data(ref Utf8JsonReader r, int count, int expectedDimensions)
    {
        int dims = expectedDimensions, position = 0;
        float[]? vectors = null;
        var seen = new bool[count];
        float[] scratch = ArrayPool<float>.Shared.Rent(Math.Max(dims, 1024));
        try
        {
            while (r.Read() && r.TokenType != JsonTokenType.EndArray)
            {
                if (r.TokenType != JsonTokenType.StartObject) { r.Skip(); position++; continue; }
                int? index = null, length = null;
                while (r.Read() && r.TokenType == JsonTokenType.PropertyName)
                {
                    if (r.ValueTextEquals("index"u8))
                    {
                        r.Read();
                        if (r.TokenType == JsonTokenType.Number && r.TryGetInt32(out int i)) index = i;
                    }
                    else if (r.ValueTextEquals("embedding"u8))
                    {
                        r.Read();
                        length = Vector(ref r, ref scratch);
                        if (length is null or 0) return (null, 0, $"embedding {index ?? position} is not an array of numbers or base64 float32");
                    }
                    else
                    {
                        r.Read();
                        r.Skip();
                    }
                }
                // "index" says which text a vector is for; without it, the order of the array does.
                int at = index ?? position;
                position++;
                if (at < 0 || at >= count || seen[at]) return (null, 0, $"the answer's index {at} is out of range or repeated");
                seen[at] = true;
                if (length is not { } n) return (null, 0, $"embedding {at} is missing");
                if (dims == 0) dims = n;
                if (n != dims)
                    return (null, 0, $"embedding {at} has {n} dimensions, not {dims}" + (expectedDimensions > 0 ? " as the job's earlier vectors" : ""));
                vectors ??= new float[(long)count * dims];
                scratch.AsSpan(0, n).CopyTo(vectors.AsSpan(at * dims, dims));
            }
            if (position != count) return (null, 0, $"the answer has {position} embeddings for {count} texts");
            return (vectors ?? [], dims, null);
        }
        finally { ArrayPool<float>.Shared.Return(scratch); }
    }

    /// <summary>One embedding into <paramref name="into"/> (grown where short): its length, or null where it is neither
    /// base64 float32 nor an array of finite numbers (the reader is then left where it stopped). The reader is on the
    /// value; ends on its last token.</summary>
    private static int? Vector(ref Utf8JsonReader r, ref float[] into)
    {
        if (r.TokenType == JsonTokenType.String)
        {
            // '+' and '/' may come escaped (\u002B): then unescaped first, else decoded from the answer's bytes.
            byte[]? unescaped = null;
            ReadOnlySpan<byte> text;
            if (r.ValueIsEscaped)
            {
                unescaped = ArrayPool<byte>.Shared.Rent(r.ValueSpan.Length);
                text = unescaped.AsSpan(0, r.CopyString(unescaped));
            }
            else text = r.ValueSpan;
            try
            {
                int bytes = Base64.GetMaxDecodedFromUtf8Length(text.Length);
                if (into.Length * 4 < bytes) Grow(ref into, bytes / 4 + 1);
                var status = Base64.DecodeFromUtf8(text, MemoryMarshal.AsBytes(into.AsSpan()), out _, out int written);
                if (status != OperationStatus.Done || written % 4 != 0) return null;
                if (!BitConverter.IsLittleEndian) Npy.ReverseEach(into.AsSpan(0, written / 4));
                return written / 4;
            }
            finally { if (unescaped is not null) ArrayPool<byte>.Shared.Return(unescaped); }
        }
        if (r.TokenType != JsonTokenType.StartArray) return null;
        int k = 0;
        while (r.Read() && r.TokenType != JsonTokenType.EndArray)
        {
            if (r.TokenType != JsonTokenType.Number || !r.TryGetSingle(out float x) || !float.IsFinite(x)) return null; // the answer is refused whole
            if (k == into.Length) Grow(ref into, k * 2);
            into[k++] = x;
        }
        return k;
    }

    private static void Grow(ref float[] buffer, int size)
    {
        var bigger = ArrayPool<float>.Shared.Rent(size);
        buffer.AsSpan().CopyTo(bigger);
        ArrayPool<float>.Shared.Return(buffer);
        buffer = bigger;
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
