using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;

namespace Sparky.Cli;

/// <summary>A failure a user should see as one line. From a daemon's error answer it carries the HTTP status, the
/// problem's detail and its list of errors (a plan's, one per line), so callers branch on the status, not the text.</summary>
internal sealed class CliException(string message, int exitCode = 1) : Exception(message)
{
    public int ExitCode { get; } = exitCode;
    /// <summary>The daemon's HTTP status; null when the failure is not an answer of the daemon's.</summary>
    public int? Status { get; init; }
    /// <summary>The problem's <c>detail</c>, as sent (lines kept).</summary>
    public string? Detail { get; init; }
    /// <summary>The problem's <c>errors</c>, where it lists them.</summary>
    public IReadOnlyList<string> Errors { get; init; } = [];
}

/// <summary>The client verbs' view of a daemon: --server, then SPARKY_SERVER, then http://127.0.0.1:9097.</summary>
internal sealed class DaemonClient : IDisposable
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

    /// <summary>The daemon's address as shown in messages, and the base URI that request paths are relative to.</summary>
    public static (string Server, Uri BaseUri) Address(string? server)
    {
        var chosen = server ?? Environment.GetEnvironmentVariable("SPARKY_SERVER");
        var address = (string.IsNullOrWhiteSpace(chosen) ? "http://127.0.0.1:9097" : chosen).TrimEnd('/');
        if (!address.Contains("://")) address = "http://" + address;
        if (!Uri.TryCreate(address + "/", UriKind.Absolute, out var baseUri) || baseUri.Scheme is not ("http" or "https"))
            throw new CliException($"the server address '{chosen}' is not an http:// URL (from {(server is null ? "SPARKY_SERVER" : "--server")})", 2);
        return (address, baseUri);
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
    public static JsonNode Answer(string server, string text)
    {
        try
        {
            return JsonNode.Parse(text) ?? throw new System.Text.Json.JsonException();
        }
        catch (System.Text.Json.JsonException)
        {
            throw NotSparky(server);
        }
    }

    /// <summary>The answer did not have the shape a Sparky daemon gives.</summary>
    public CliException NotSparky() => NotSparky(Server);

    public static CliException NotSparky(string server) => new($"{server} answered, but not as a Sparky daemon does (is --server right?)");

    private CliException Failure(HttpResponseMessage resp, string body) =>
        Failure(Server, (int)resp.StatusCode, resp.ReasonPhrase, resp.Content.Headers.ContentType?.MediaType, body);

    /// <summary>One line for an error answer: the problem's detail, or just the status line when it isn't one of ours.</summary>
    public static CliException Failure(string server, int status, string? reason, string? mediaType, string body)
    {
        string? detail = null;
        var errors = new List<string>();
        if (mediaType is "application/problem+json" or "application/json")
        {
            try
            {
                var problem = JsonNode.Parse(body);
                detail = problem?["detail"]?.ToString();
                if (problem?["errors"] is JsonArray list)
                    foreach (var e in list)
                        if (e is JsonValue v && v.TryGetValue<string>(out var s)) errors.Add(s);
            }
            catch (Exception e) when (e is System.Text.Json.JsonException or InvalidOperationException) { }
        }
        var line = detail?.ReplaceLineEndings(" ");
        return new CliException(line is null
            ? $"{server} answered {status} {reason}"
            : $"{status} {reason}: {line}")
        {
            Status = status,
            Detail = detail,
            Errors = errors,
        };
    }

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
