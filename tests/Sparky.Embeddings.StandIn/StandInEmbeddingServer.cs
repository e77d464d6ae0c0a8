using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Sparky.Embeddings.Client.Output;

namespace Sparky.Embeddings.StandIn;

/// <summary>
/// An OpenAI-compatible <c>POST /v1/embeddings</c> and <c>GET /v1/models</c> on loopback (Kestrel, a free port) for
/// testing clients. Its vectors are a function of the text alone (<see cref="HashVector"/>), so a test can check every
/// row a client wrote. Faults on demand: the next requests answered with a status (and a Retry-After), every k-th
/// request refused, a delay before each answer. With an upstream (a real server: Sparky's own, TEI, vLLM…) it forwards
/// each request there instead of hashing, the faults still in front, and <see cref="ExpectedAsync"/> asks the upstream
/// for one text at a time.
/// </summary>
public sealed class StandInEmbeddingServer : IAsyncDisposable
{
    public const string HashModel = "stand-in-hash";
    private readonly WebApplication _app;
    private readonly HttpClient _upstream = new();
    private readonly Lock _lock = new();
    private readonly Queue<(int Status, TimeSpan? RetryAfter)> _faults = new();
    private long _requests, _texts, _refused;

    /// <summary>The base URL, such as http://127.0.0.1:41234 (clients add /v1/embeddings).</summary>
    public string BaseUrl { get; private set; } = "";
    /// <summary>A real endpoint's base URL (…/v1) this forwards to, or null for hash vectors.</summary>
    public string? Upstream { get; }
    public int Dimensions { get; }
    /// <summary>A wait before each answer (a slow model).</summary>
    public TimeSpan Delay { get; set; }
    /// <summary>A further random wait up to this long, so that answers come back out of order.</summary>
    public TimeSpan DelayJitter { get; set; }
    /// <summary>Refuse <c>encoding_format: base64</c> with a 400, as a server that knows only floats may.</summary>
    public bool RefuseBase64 { get; set; }
    /// <summary>The encoding_format of the last embeddings request answered.</summary>
    public string? LastEncoding { get; private set; }
    /// <summary>The Authorization header of the last embeddings request.</summary>
    public string? LastAuthorization { get; private set; }
    /// <summary>A request whose body is over this many bytes is refused with 413, as a server with a body limit does;
    /// 0: no limit.</summary>
    public long MaxBodyBytes { get; set; }
    /// <summary>Each request answered with vectors: its texts and their characters in all.</summary>
    public IReadOnlyCollection<(int Texts, long Chars)> Answered => _answered;
    private readonly System.Collections.Concurrent.ConcurrentQueue<(int Texts, long Chars)> _answered = new();
    /// <summary>Every k-th request is refused (429 with Retry-After: 0, then 503 without, in turn); 0: none.</summary>
    public int FailEvery { get; set; }
    public long Requests => Interlocked.Read(ref _requests);
    /// <summary>Texts embedded (in requests that were answered with vectors).</summary>
    public long Texts => Interlocked.Read(ref _texts);
    public long Refused => Interlocked.Read(ref _refused);

    private StandInEmbeddingServer(WebApplication app, string? upstream, int dimensions) => (_app, Upstream, Dimensions) = (app, upstream, dimensions);

    /// <param name="upstream">a real endpoint to forward to (default: $SPARKY_TEST_EMBED_ENDPOINT; "": none, hash vectors)</param>
    public static async Task<StandInEmbeddingServer> StartAsync(int dimensions = 16, string? upstream = null)
    {
        upstream ??= Environment.GetEnvironmentVariable("SPARKY_TEST_EMBED_ENDPOINT");
        if (string.IsNullOrEmpty(upstream)) upstream = null;
        else upstream = upstream.TrimEnd('/').EndsWith("/v1", StringComparison.Ordinal) ? upstream.TrimEnd('/') : upstream.TrimEnd('/') + "/v1";
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        var app = builder.Build();
        var server = new StandInEmbeddingServer(app, upstream, dimensions);
        app.MapPost("/v1/embeddings", server.EmbeddingsAsync);
        app.MapGet("/v1/models", server.ModelsAsync);
        await app.StartAsync();
        server.BaseUrl = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return server;
    }

    /// <summary>The next <paramref name="count"/> requests get <paramref name="status"/> (with a Retry-After where given).</summary>
    public void FailNext(int count, int status, TimeSpan? retryAfter = null)
    {
        lock (_lock) for (int i = 0; i < count; i++) _faults.Enqueue((status, retryAfter));
    }

    /// <summary>The vector a text must get: its hash vector, or the upstream's answer for it alone.</summary>
    public async Task<float[]> ExpectedAsync(string text)
    {
        if (Upstream is null) return HashVector(text, Dimensions);
        var body = JsonSerializer.SerializeToUtf8Bytes(new Dictionary<string, object> { ["input"] = new[] { text }, ["model"] = await UpstreamModelAsync() });
        using var reply = await _upstream.PostAsync(Upstream + "/embeddings", new ByteArrayContent(body) { Headers = { { "Content-Type", "application/json" } } });
        reply.EnsureSuccessStatusCode();
        using var doc = JsonDocument.Parse(await reply.Content.ReadAsByteArrayAsync());
        return doc.RootElement.GetProperty("data")[0].GetProperty("embedding").EnumerateArray().Select(x => x.GetSingle()).ToArray();
    }

    /// <summary>Null when the .npy and ids files hold exactly <paramref name="expected"/>, in order (each vector the
    /// one its text must get: exactly, or within 1e-3 from an upstream, whose batches may round differently); else
    /// the first difference.</summary>
    public async Task<string?> CheckOutputAsync(string npyPath, string idsPath, IReadOnlyList<(string Id, string Text)> expected)
    {
        var (rows, dims, values) = Npy.Read(npyPath);
        var ids = File.ReadAllLines(idsPath);
        if (rows != expected.Count || ids.Length != expected.Count) return $"{rows} rows and {ids.Length} ids, not {expected.Count}";
        for (int i = 0; i < expected.Count; i++)
        {
            if (ids[i] != expected[i].Id) return $"row {i}: id '{ids[i]}', not '{expected[i].Id}'";
            var want = await ExpectedAsync(expected[i].Text);
            if (want.Length != dims) return $"{dims} dimensions, not {want.Length}";
            for (int k = 0; k < dims; k++)
            {
                float got = values[(long)i * dims + k];
                if (Upstream is null ? got != want[k] : Math.Abs(got - want[k]) > 1e-3)
                    return $"row {i} (id {expected[i].Id}), dimension {k}: {got}, not {want[k]}";
            }
        }
        return null;
    }

    private string? _upstreamModel;
    private async Task<string> UpstreamModelAsync()
    {
        if (_upstreamModel is not null) return _upstreamModel;
        using var doc = JsonDocument.Parse(await _upstream.GetByteArrayAsync(Upstream + "/models"));
        return _upstreamModel = doc.RootElement.GetProperty("data")[0].GetProperty("id").GetString()!;
    }

    /// <summary>A text's vector here: <paramref name="dimensions"/> numbers in [-1, 1) from a SplitMix64 sequence
    /// seeded by SHA-256 of the text, so the same text always gets the same vector, any two differ, and making one
    /// costs next to nothing (the stand-in measures clients, not a model).</summary>
    public static float[] HashVector(string text, int dimensions)
    {
        var v = new float[dimensions];
        HashVector(text, v);
        return v;
    }

    private static void HashVector(string text, Span<float> v)
    {
        int dimensions = v.Length;
        ulong state = BinaryPrimitives.ReadUInt64LittleEndian(SHA256.HashData(Encoding.UTF8.GetBytes(text)));
        for (int i = 0; i < dimensions; i++)
        {
            ulong z = state += 0x9E3779B97F4A7C15UL;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            z ^= z >> 31;
            v[i] = (float)((z >> 40) / 16777216.0 * 2 - 1); // 24 bits: exact in a float
        }
    }

    private async Task ModelsAsync(HttpContext http)
    {
        if (Upstream is not null)
        {
            await Forward(http, HttpMethod.Get, "/models", null);
            return;
        }
        http.Response.ContentType = "application/json";
        await http.Response.WriteAsync($$$"""{"object":"list","data":[{"id":"{{{HashModel}}}","object":"model","owned_by":"sparky-tests"}]}""");
    }

    private async Task EmbeddingsAsync(HttpContext http)
    {
        long n = Interlocked.Increment(ref _requests);
        LastAuthorization = http.Request.Headers.Authorization.Count > 0 ? http.Request.Headers.Authorization.ToString() : null;
        var wait = Delay + DelayJitter * Random.Shared.NextDouble();
        if (wait > TimeSpan.Zero) await Task.Delay(wait, http.RequestAborted);
        (int Status, TimeSpan? RetryAfter)? fault = null;
        lock (_lock) if (_faults.Count > 0) fault = _faults.Dequeue();
        if (fault is null && FailEvery > 0 && n % FailEvery == 0)
            fault = n / FailEvery % 2 == 1 ? (429, TimeSpan.Zero) : (503, null);
        if (fault is { } f)
        {
            Interlocked.Increment(ref _refused);
            http.Response.StatusCode = f.Status;
            if (f.RetryAfter is { } after) http.Response.Headers.RetryAfter = ((int)after.TotalSeconds).ToString();
            await http.Response.WriteAsync($$$"""{"error":{"message":"refused on purpose ({{{f.Status}}})","type":"stand_in"}}""");
            return;
        }
        using var ms = new MemoryStream((int)Math.Clamp(http.Request.ContentLength ?? 0, 0, 1 << 24));
        await http.Request.Body.CopyToAsync(ms, http.RequestAborted);
        if (MaxBodyBytes > 0 && ms.Length > MaxBodyBytes)
        {
            Interlocked.Increment(ref _refused);
            http.Response.StatusCode = 413;
            await http.Response.WriteAsync($$$"""{"error":{"message":"the body is {{{ms.Length}}} bytes; at most {{{MaxBodyBytes}}} are accepted","type":"invalid_request_error"}}""");
            return;
        }
        var (texts, base64, error) = ReadTexts(ms.ToArray());
        if (base64 && RefuseBase64) (texts, error) = (null, "encoding_format: only float is supported");
        if (texts is null)
        {
            http.Response.StatusCode = 400;
            await http.Response.WriteAsync(JsonSerializer.Serialize(new Dictionary<string, object> { ["error"] = new Dictionary<string, string> { ["message"] = error! } }));
            return;
        }
        if (Upstream is not null)
        {
            if (await Forward(http, HttpMethod.Post, "/embeddings", ms.ToArray())) Interlocked.Add(ref _texts, texts.Count);
            return;
        }
        Interlocked.Add(ref _texts, texts.Count);
        _answered.Enqueue((texts.Count, texts.Sum(t => (long)t.Length)));
        LastEncoding = base64 ? "base64" : "float";
        http.Response.ContentType = "application/json";
        // Straight into Kestrel's pipe: a buffer of the whole answer (100 KB for 64 vectors) would be a large-object
        // allocation per request, and the stand-in would measure its own garbage collector instead of its client.
        using var w = new Utf8JsonWriter(http.Response.BodyWriter);
        var vector = new float[Dimensions];
        w.WriteStartObject();
        w.WriteString("object", "list");
        w.WriteStartArray("data");
        for (int i = 0; i < texts.Count; i++)
        {
            w.WriteStartObject();
            w.WriteString("object", "embedding");
            w.WriteNumber("index", i);
            HashVector(texts[i], vector);
            if (base64) w.WriteBase64String("embedding", System.Runtime.InteropServices.MemoryMarshal.AsBytes(vector.AsSpan()));
            else
            {
                w.WriteStartArray("embedding");
                foreach (var x in vector) w.WriteNumberValue(x);
                w.WriteEndArray();
            }
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteString("model", HashModel);
        w.WriteStartObject("usage");
        int tokens = texts.Sum(t => t.Length / 4 + 1);
        w.WriteNumber("prompt_tokens", tokens);
        w.WriteNumber("total_tokens", tokens);
        w.WriteEndObject();
        w.WriteEndObject();
        w.Flush();
        await http.Response.BodyWriter.FlushAsync(http.RequestAborted);
    }

    /// <summary>The request's texts (input: a string or an array of strings, none empty) and whether it asks for
    /// base64, or why it is refused.</summary>
    private static (List<string>? Texts, bool Base64, string? Error) ReadTexts(byte[] body)
    {
        try
        {
            using var doc = JsonDocument.Parse(body);
            bool base64 = doc.RootElement.TryGetProperty("encoding_format", out var f) && f.ValueKind == JsonValueKind.String && f.GetString() == "base64";
            if (!doc.RootElement.TryGetProperty("input", out var input)) return (null, base64, "no input");
            if (input.ValueKind == JsonValueKind.String) return ([input.GetString()!], base64, null);
            if (input.ValueKind != JsonValueKind.Array || input.GetArrayLength() == 0) return (null, base64, "input must be a string or a non-empty array of strings");
            var texts = new List<string>();
            foreach (var t in input.EnumerateArray())
            {
                if (t.ValueKind != JsonValueKind.String || t.GetString()!.Length == 0) return (null, base64, "each input must be a non-empty string");
                texts.Add(t.GetString()!);
            }
            return (texts, base64, null);
        }
        catch (JsonException e) { return (null, false, "not JSON: " + e.Message); }
    }

    private async Task<bool> Forward(HttpContext http, HttpMethod method, string route, byte[]? body)
    {
        using var request = new HttpRequestMessage(method, Upstream + route);
        if (body is not null) request.Content = new ByteArrayContent(body) { Headers = { { "Content-Type", "application/json" } } };
        if (http.Request.Headers.Authorization.Count > 0) request.Headers.TryAddWithoutValidation("Authorization", http.Request.Headers.Authorization.ToString());
        using var reply = await _upstream.SendAsync(request, http.RequestAborted);
        http.Response.StatusCode = (int)reply.StatusCode;
        if (reply.Headers.RetryAfter is { } after) http.Response.Headers.RetryAfter = after.ToString();
        http.Response.ContentType = "application/json";
        await reply.Content.CopyToAsync(http.Response.Body, http.RequestAborted);
        return reply.IsSuccessStatusCode;
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
        _upstream.Dispose();
    }
}
