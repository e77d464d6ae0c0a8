using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;

namespace Sparky.Cli;

/// <summary>A failure a user should see as one line.</summary>
internal sealed class CliException(string message, int exitCode = 1) : Exception(message)
{
    public int ExitCode { get; } = exitCode;
}

/// <summary>The client verbs' view of a daemon: --server, then SPARKY_SERVER, then http://127.0.0.1:9097.</summary>
internal sealed class DaemonClient : IDisposable
{
    private readonly HttpClient _http;
    public string Server { get; }

    public DaemonClient(string? server)
    {
        var chosen = server ?? Environment.GetEnvironmentVariable("SPARKY_SERVER");
        Server = (string.IsNullOrWhiteSpace(chosen) ? "http://127.0.0.1:9097" : chosen).TrimEnd('/');
        if (!Server.Contains("://")) Server = "http://" + Server;
        _http = new HttpClient { BaseAddress = new Uri(Server + "/"), Timeout = Timeout.InfiniteTimeSpan };
        if (Environment.GetEnvironmentVariable("SPARKY_TOKEN") is { Length: > 0 } token)
            _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
    }

    public Task<JsonNode> GetAsync(string path, CancellationToken ct = default) => SendAsync(HttpMethod.Get, path, null, ct);
    public Task<JsonNode> PostAsync(string path, JsonNode? body, CancellationToken ct = default) => SendAsync(HttpMethod.Post, path, body, ct);
    public Task<JsonNode> DeleteAsync(string path, CancellationToken ct = default) => SendAsync(HttpMethod.Delete, path, null, ct);

    public async Task<JsonNode> SendAsync(HttpMethod method, string path, JsonNode? body, CancellationToken ct)
    {
        using var req = new HttpRequestMessage(method, path);
        if (body is not null) req.Content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json");
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
            if (!resp.IsSuccessStatusCode)
            {
                string detail = text;
                try { detail = JsonNode.Parse(text)?["detail"]?.ToString() ?? text; } catch (System.Text.Json.JsonException) { }
                throw new CliException($"{(int)resp.StatusCode} {resp.ReasonPhrase}: {detail}");
            }
            return JsonNode.Parse(text)!;
        }
    }

    public async Task<Stream> StreamAsync(string path, CancellationToken ct)
    {
        HttpResponseMessage resp;
        try { resp = await _http.GetAsync(path, HttpCompletionOption.ResponseHeadersRead, ct); }
        catch (HttpRequestException e) { throw new CliException($"cannot reach the daemon at {Server} ({e.Message})"); }
        if (!resp.IsSuccessStatusCode)
        {
            var text = await resp.Content.ReadAsStringAsync(ct);
            string detail = text;
            try { detail = JsonNode.Parse(text)?["detail"]?.ToString() ?? text; } catch (System.Text.Json.JsonException) { }
            throw new CliException($"{(int)resp.StatusCode} {resp.ReasonPhrase}: {detail}");
        }
        return await resp.Content.ReadAsStreamAsync(ct);
    }

    public void Dispose() => _http.Dispose();
}
