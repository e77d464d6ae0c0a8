using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;

namespace Sparky.Cli;

/// <summary>The client verbs' view of a daemon: --server, then SPARKY_SERVER, then http://127.0.0.1:9097.</summary>
internal sealed partial class DaemonClient : IDisposable
{
    private readonly HttpClient _http;
    public string Server { get; }

    public DaemonClient(string? server)
    {
        (Server, var baseUri) = Address(server);
        _http = new HttpClient { BaseAddress = baseUri, Timeout = Timeout.InfiniteTimeSpan };
        if (Environment.GetEnvironmentVariable("SPARKY_TOKEN") is { Length: > 0 } token)
            _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
    }

    public Task<JsonNode> GetAsync(string path, CancellationToken ct = default) => SendAsync(HttpMethod.Get, path, null, ct);
    public Task<JsonNode> PostAsync(string path, JsonNode? body, CancellationToken ct = default) => SendAsync(HttpMethod.Post, path, body, ct);
    public Task<JsonNode> DeleteAsync(string path, CancellationToken ct = default) => SendAsync(HttpMethod.Delete, path, null, ct);

    /// <summary>A POST of JSON already written as UTF-8.</summary>
    public Task<JsonNode> PostJsonAsync(string path, byte[] json, CancellationToken ct = default) =>
        SendContentAsync(HttpMethod.Post, path, new ByteArrayContent(json) { Headers = { ContentType = new MediaTypeHeaderValue("application/json", "utf-8") } }, ct);

    public Task<JsonNode> SendAsync(HttpMethod method, string path, JsonNode? body, CancellationToken ct) =>
        SendContentAsync(method, path, body is null ? null : new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json"), ct);

    private async Task<JsonNode> SendContentAsync(HttpMethod method, string path, HttpContent? content, CancellationToken ct)
    {
        using var req = new HttpRequestMessage(method, path) { Content = content };
        HttpResponseMessage resp;
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
            timeout.CancelAfter(TimeSpan.FromSeconds(60));
            resp = await _http.SendAsync(req, timeout.Token);
        }
        catch (HttpRequestException e)
        {
            throw new CliException($"cannot reach the daemon at {Server} ({e.Message}); start it with `sparky serve`");
        }
        using (resp)
        {
            var text = await resp.Content.ReadAsStringAsync(ct);
            if (!resp.IsSuccessStatusCode) throw Failure(resp, text);
            return Answer(Server, text);
        }
    }

    /// <summary>A successful answer's JSON, or <see cref="NotSparky(string)"/>.</summary>
    /// <summary>The answer did not have the shape a Sparky daemon gives.</summary>
    public CliException NotSparky() => NotSparky(Server);

    private CliException Failure(HttpResponseMessage resp, string body) =>
        Failure(Server, (int)resp.StatusCode, resp.ReasonPhrase, resp.Content.Headers.ContentType?.MediaType, body);

    public async Task<Stream> StreamAsync(string path, CancellationToken ct)
    {
        HttpResponseMessage resp;
        try { resp = await _http.GetAsync(path, HttpCompletionOption.ResponseHeadersRead, ct); }
        catch (HttpRequestException e) { throw new CliException($"cannot reach the daemon at {Server} ({e.Message})"); }
        if (!resp.IsSuccessStatusCode)
        {
            var text = await resp.Content.ReadAsStringAsync(ct);
            throw Failure(resp, text);
        }
        return await resp.Content.ReadAsStreamAsync(ct);
    }

    public void Dispose() => _http.Dispose();
}
