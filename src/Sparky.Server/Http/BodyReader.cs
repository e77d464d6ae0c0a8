using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;

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
            return (null, Results.Problem(e.Message, statusCode: e.StatusCode, title: "Bad request"));
        }
        catch (IOException)
        {
            return (null, Problems.BadRequest("the body ended early"));
        }
        if (bytes.Length == 0) return (null, Problems.BadRequest("the body is empty: send a JSON task"));
        try
        {
            return (JsonNode.Parse(bytes, documentOptions: new JsonDocumentOptions { MaxDepth = 64 }), null);
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
