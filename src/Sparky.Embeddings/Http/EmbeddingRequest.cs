using System.Text.Json;
using System.Text.Json.Nodes;

namespace Sparky.Embeddings.Http;

/// <summary>A refusal, as OpenAI words its errors: the HTTP status, a message, the request field at fault, and a code.</summary>
public sealed record ApiError(int Status, string Message, string? Param = null, string? Code = null)
{
    public string Type => Status switch { 429 => "rate_limit_error", >= 500 => "server_error", _ => "invalid_request_error" };
}

/// <summary>What a client asked for: the texts, in order, and how the vectors are to come back.</summary>
public sealed record EmbeddingRequest(IReadOnlyList<string> Inputs, bool Base64, int? Dimensions);

/// <summary>
/// Reads OpenAI's embeddings request (<c>input</c>: a string or an array of strings; <c>model</c>; <c>encoding_format</c>:
/// float or base64; <c>dimensions</c>; <c>user</c> and anything else ignored). Pure: every way a request can be wrong is
/// an <see cref="ApiError"/> that names the field.
/// </summary>
public static class EmbeddingRequestParser
{
    /// <summary>OpenAI's bound on inputs per request.</summary>
    public const int MaxInputs = 2048;

    /// <param name="modelNames">The names the served model answers to; a request without <c>model</c> gets it too.</param>
    /// <param name="nativeDimensions">The model's vector length.</param>
    /// <param name="matryoshka">Whether the model allows shorter vectors (<c>dimensions</c> below its own length).</param>
    public static (EmbeddingRequest? Request, ApiError? Error) Parse(JsonNode? body, IReadOnlyCollection<string> modelNames, int nativeDimensions, bool matryoshka)
    {
        if (body is not JsonObject o) return Bad("the body must be a JSON object: {\"input\": \"text\" or [\"text\", …], \"model\": \"…\"}");
        if (o["model"] is { } m)
        {
            if (m is not JsonValue mv || mv.GetValueKind() != JsonValueKind.String) return Bad("model must be a string", "model");
            var name = mv.GetValue<string>();
            if (!modelNames.Contains(name))
                return (null, new ApiError(404, $"The model '{Clip(name)}' does not exist here; this service has {string.Join(", ", modelNames.Select(n => $"'{n}'"))} (GET /v1/models)",
                    "model", "model_not_found"));
        }
        var inputs = new List<string>();
        switch (o["input"])
        {
            case null:
                return Bad("input is required: a string or an array of strings", "input");
            case JsonValue v when v.GetValueKind() == JsonValueKind.String:
                inputs.Add(v.GetValue<string>());
                break;
            case JsonArray a:
                if (a.Count == 0) return Bad("input is an empty array: send at least one string", "input");
                if (a.Count > MaxInputs) return Bad($"input has {a.Count} strings; at most {MaxInputs} are accepted per request", "input");
                for (int i = 0; i < a.Count; i++)
                {
                    if (a[i] is JsonValue s && s.GetValueKind() == JsonValueKind.String) inputs.Add(s.GetValue<string>());
                    else if (a[i] is JsonValue n && n.GetValueKind() == JsonValueKind.Number || a[i] is JsonArray)
                        return Bad($"input[{i}] is a token id or an array of them: this service takes text only (strings)", "input");
                    else return Bad($"input[{i}] must be a string, not {Kind(a[i])}", "input");
                }
                break;
            default:
                return Bad($"input must be a string or an array of strings, not {Kind(o["input"])}", "input");
        }
        for (int i = 0; i < inputs.Count; i++)
            if (string.IsNullOrWhiteSpace(inputs[i])) return Bad(inputs.Count == 1 ? "input is empty" : $"input[{i}] is empty", "input");

        bool base64 = false;
        if (o["encoding_format"] is { } f)
        {
            var format = f is JsonValue fv && fv.GetValueKind() == JsonValueKind.String ? fv.GetValue<string>() : null;
            if (format is not ("float" or "base64")) return Bad("encoding_format must be \"float\" or \"base64\"", "encoding_format");
            base64 = format == "base64";
        }

        int? dims = null;
        if (o["dimensions"] is { } d && d.GetValueKind() != JsonValueKind.Null)
        {
            if (d is not JsonValue dv || dv.GetValueKind() != JsonValueKind.Number || !dv.TryGetValue<int>(out var n) || n < 1)
                return Bad("dimensions must be a whole number, 1 or more", "dimensions");
            if (n > nativeDimensions) return Bad($"dimensions is {n}; this model's vectors have {nativeDimensions}", "dimensions");
            // OpenAI refuses dimensions for a model not trained to be shortened (text-embedding-ada-002); so does this.
            if (n < nativeDimensions && !matryoshka)
                return Bad($"this model does not support shorter vectors (it was not trained for them): dimensions can only be {nativeDimensions}", "dimensions");
            dims = n < nativeDimensions ? n : null;
        }
        return (new EmbeddingRequest(inputs, base64, dims), null);
    }

    private static (EmbeddingRequest?, ApiError?) Bad(string message, string? param = null) => (null, new ApiError(400, message, param));

    private static string Kind(JsonNode? n) => n is null ? "null" : n.GetValueKind() switch
    {
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => "an array",
        JsonValueKind.Number => "a number",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        _ => "null",
    };

    private static string Clip(string s) => s.Length <= 100 ? s : s[..100] + "…";
}
