namespace Sparky.Embeddings.Client.Http;

/// <summary>
/// Where to send: <c>--endpoint</c> as users of OpenAI-compatible servers write it. A base URL
/// (<c>http://host:8080</c>), an OpenAI-style base with its version (<c>https://api.openai.com/v1</c>) and the full
/// route (<c>…/v1/embeddings</c>) all mean the same embeddings route; the models route sits beside it.
/// </summary>
public sealed record Endpoint(Uri Embeddings, Uri Models)
{
    public static bool TryParse(string text, out Endpoint? endpoint, out string? error)
    {
        endpoint = null;
        error = null;
        if (!Uri.TryCreate(text, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps))
        {
            error = $"--endpoint wants an http:// or https:// URL, such as http://127.0.0.1:8080 or https://api.openai.com/v1; got '{text}'";
            return false;
        }
        if (uri.Query.Length > 0 || uri.Fragment.Length > 0)
        {
            error = $"--endpoint takes no query or fragment; got '{text}'";
            return false;
        }
        var path = uri.AbsolutePath.TrimEnd('/');
        if (path.EndsWith("/embeddings", StringComparison.Ordinal)) path = path[..^"/embeddings".Length];
        if (!path.EndsWith("/v1", StringComparison.Ordinal)) path += "/v1";
        var b = new UriBuilder(uri) { Path = path + "/embeddings" };
        var m = new UriBuilder(uri) { Path = path + "/models" };
        endpoint = new Endpoint(b.Uri, m.Uri);
        return true;
    }
}
