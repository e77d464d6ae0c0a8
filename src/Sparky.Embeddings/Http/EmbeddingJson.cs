using System.Runtime.InteropServices;
using System.Text.Json;

namespace Sparky.Embeddings.Http;

/// <summary>OpenAI's answers, written straight to the response: no object tree for thousands of floats.</summary>
public static class EmbeddingJson
{
    /// <summary><c>{"object": "list", "data": [{"object": "embedding", "index", "embedding"}], "model", "usage"}</c>.
    /// base64: the vector's float32 values, little-endian, as OpenAI sends them (and its clients decode).</summary>
    public static void WriteList(Utf8JsonWriter w, IReadOnlyList<float[]> vectors, string model, long tokens, bool base64)
    {
        w.WriteStartObject();
        w.WriteString("object", "list");
        w.WriteStartArray("data");
        for (int i = 0; i < vectors.Count; i++)
        {
            w.WriteStartObject();
            w.WriteString("object", "embedding");
            w.WriteNumber("index", i);
            if (base64)
            {
                if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("base64 vectors are little-endian float32");
                w.WriteBase64String("embedding", MemoryMarshal.AsBytes(vectors[i].AsSpan()));
            }
            else
            {
                w.WriteStartArray("embedding");
                foreach (var x in vectors[i]) w.WriteNumberValue(x);
                w.WriteEndArray();
            }
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteString("model", model);
        w.WriteStartObject("usage");
        w.WriteNumber("prompt_tokens", tokens);
        w.WriteNumber("total_tokens", tokens);
        w.WriteEndObject();
        w.WriteEndObject();
    }

    /// <summary><c>GET /v1/models</c>: the one model served.</summary>
    public static void WriteModels(Utf8JsonWriter w, string model, long created)
    {
        w.WriteStartObject();
        w.WriteString("object", "list");
        w.WriteStartArray("data");
        WriteModel(w, model, created);
        w.WriteEndArray();
        w.WriteEndObject();
    }

    public static void WriteModel(Utf8JsonWriter w, string model, long created)
    {
        w.WriteStartObject();
        w.WriteString("id", model);
        w.WriteString("object", "model");
        w.WriteNumber("created", created);
        w.WriteString("owned_by", "sparky");
        w.WriteEndObject();
    }

    /// <summary>
    /// An error both ways a client reads one: RFC 9457 problem details (Sparky's errors everywhere; <c>title</c>,
    /// <c>status</c>, <c>detail</c>) and OpenAI's <c>error</c> object (<c>message</c>, <c>type</c>, <c>param</c>,
    /// <c>code</c>), which OpenAI's clients show.
    /// </summary>
    public static void WriteError(Utf8JsonWriter w, ApiError e)
    {
        w.WriteStartObject();
        w.WriteString("type", "about:blank");
        w.WriteString("title", e.Status switch { 401 => "Unauthorized", 403 => "Forbidden", 404 => "Not found", 413 => "Payload too large", 429 => "Too many requests", >= 500 => "Server error", _ => "Bad request" });
        w.WriteNumber("status", e.Status);
        w.WriteString("detail", e.Message);
        w.WriteStartObject("error");
        w.WriteString("message", e.Message);
        w.WriteString("type", e.Type);
        if (e.Param is null) w.WriteNull("param"); else w.WriteString("param", e.Param);
        if (e.Code is null) w.WriteNull("code"); else w.WriteString("code", e.Code);
        w.WriteEndObject();
        w.WriteEndObject();
    }
}
