using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;
using Sparky.Core.Tasks;

namespace Sparky.Server.Http;

/// <summary>Reads a JSON request body within the size bound; every way it can be wrong is a value.</summary>
internal static class BodyReader
{
    public static async Task<(JsonNode? Node, IResult? Error)> ReadJsonAsync(HttpRequest request, long maxBytes)
    {
        if (request.ContentLength is { } len && len > maxBytes)
            return (null, Problems.TooLarge($"the body is {len} bytes; at most {maxBytes} are accepted"));
        byte[] bytes;
        try
        {
            using var ms = new MemoryStream();
            var buffer = new byte[81920];
            int n;
            while ((n = await request.Body.ReadAsync(buffer)) > 0)
            {
                if (ms.Length + n > maxBytes)
                    return (null, Problems.TooLarge($"the body is over {maxBytes} bytes"));
                ms.Write(buffer, 0, n);
            }
            bytes = ms.ToArray();
        }
        catch (BadHttpRequestException e)
        {
            return (null, e.StatusCode == 413
                ? Problems.TooLarge($"the body is over {maxBytes} bytes")
                : Results.Problem(e.Message, statusCode: e.StatusCode, title: "Bad request"));
        }
        catch (IOException)
        {
            return (null, Problems.BadRequest("the body ended early"));
        }
        if (bytes.Length == 0) return (null, Problems.BadRequest("the body is empty: send a JSON task"));
        if (!System.Text.Unicode.Utf8.IsValid(bytes)) return (null, Problems.BadRequest("the body is not valid UTF-8 JSON"));
        // The parser stops at the same depth, but names it in its own words; this says what the bound is.
        if (InputLimits.JsonDepthProblem(bytes) is { } deep) return (null, Problems.BadRequest(deep));
        try
        {
            var node = JsonNode.Parse(bytes, documentOptions: new JsonDocumentOptions { MaxDepth = InputLimits.MaxDepth });
            return JsonChecks.FirstProblem(node) is { } problem ? (null, Problems.BadRequest(problem)) : (node, null);
        }
        catch (JsonException e)
        {
            return (null, Problems.BadRequest($"malformed JSON: {Clip(e.Message)}"));
        }
        catch (ArgumentException)
        {
            return (null, Problems.BadRequest("the body is not UTF-8 JSON"));
        }
    }

    private static string Clip(string s) => s.Length <= 200 ? s : s[..200] + "…";
}
