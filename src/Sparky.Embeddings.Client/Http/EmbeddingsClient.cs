using System.Net;
using System.Net.Http.Headers;

namespace Sparky.Embeddings.Client.Http;

/// <summary>A batch's answer: its vectors, row after row, and their dimension; or why not, and whether that was the
/// request's size (HTTP 413).</summary>
public readonly record struct EmbedReply(float[]? Vectors, int Dimensions, string? Error, bool TooLarge = false);

/// <summary>
/// Sends batches of texts to one OpenAI-compatible endpoint over one HttpClient: a pool of keep-alive connections
/// (as many as batches in flight), each request retried under <see cref="RetryPolicy"/>. The API key, where given, goes
/// as a Bearer token and is never logged.
/// </summary>
public sealed class EmbeddingsClient : IDisposable
{
    private readonly HttpClient _http;
    private readonly Endpoint _endpoint;
    private readonly RetryPolicy _policy;
    private readonly TimeSpan _timeout;
    private readonly TimeProvider _time;
    private readonly Action<string> _log;
    private int _retries;
    // Base64 is asked for until the endpoint refuses a base64 request before any base64 request succeeded (a server
    // that validates the field and knows only floats); floats from then on, for the requests in flight too.
    private volatile bool _floats, _base64Works;

    /// <summary>Requests sent again so far (after a 429, a 5xx or no answer).</summary>
    public int Retries => Volatile.Read(ref _retries);

    /// <param name="floats">ask for floats from the start instead of base64</param>
    public EmbeddingsClient(Endpoint endpoint, string? apiKey, int connections, RetryPolicy policy, TimeSpan timeout, Action<string> log, TimeProvider? time = null, bool floats = false)
    {
        _floats = floats;
        var handler = new SocketsHttpHandler
        {
            MaxConnectionsPerServer = Math.Max(1, connections),
            // Re-resolve DNS now and then (a service behind a load balancer moves); keep connections open between batches.
            PooledConnectionLifetime = TimeSpan.FromMinutes(5),
            PooledConnectionIdleTimeout = TimeSpan.FromMinutes(1),
            ConnectTimeout = TimeSpan.FromSeconds(15),
            // No AutomaticDecompression: vectors (base64 floats) hardly compress, and asking for gzip would link a zlib
            // into the native executable (which Debian's packaging rules flag as an embedded library).
        };
        // The per-request timeout is ours (a CancellationTokenSource per attempt), so a timeout is told apart from a stop.
        _http = new HttpClient(handler) { Timeout = Timeout.InfiniteTimeSpan };
        _http.DefaultRequestHeaders.UserAgent.Add(new ProductInfoHeaderValue("sparky-embed-run", "1"));
        if (!string.IsNullOrEmpty(apiKey)) _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", apiKey);
        (_endpoint, _policy, _timeout, _log, _time) = (endpoint, policy, timeout, log, time ?? TimeProvider.System);
    }

    /// <summary>The one model the endpoint lists (<c>GET /v1/models</c>), or why there is none to pick.</summary>
    public async Task<(string? Model, string? Error)> OnlyModelAsync(CancellationToken ct)
    {
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
            timeout.CancelAfter(_timeout);
            using var reply = await _http.GetAsync(_endpoint.Models, timeout.Token);
            var body = await reply.Content.ReadAsByteArrayAsync(timeout.Token);
            if (!reply.IsSuccessStatusCode) return (null, $"HTTP {(int)reply.StatusCode}");
            return EmbeddingsWire.OnlyModel(body);
        }
        catch (Exception e) when (e is HttpRequestException || (e is OperationCanceledException && !ct.IsCancellationRequested))
        {
            return (null, "no answer: " + e.Message);
        }
    }

    /// <summary>The vectors of <paramref name="texts"/>, row after row, after as many attempts as the policy allows;
    /// or the reason they could not be had (<see cref="EmbedReply.TooLarge"/> where the endpoint said 413: the same
    /// request cannot succeed, a smaller one may).</summary>
    public async Task<EmbedReply> EmbedAsync(IReadOnlyList<string> texts, string? model, int dimensions, CancellationToken ct)
    {
        for (int attempt = 1; ; attempt++)
        {
            SendOutcome failure;
            bool floats = _floats;
            var body = EmbeddingsWire.Request(texts, model, base64: !floats);
            try
            {
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
                timeout.CancelAfter(_timeout);
                using var request = new HttpRequestMessage(HttpMethod.Post, _endpoint.Embeddings) { Content = new ByteArrayContent(body) };
                request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
                using var reply = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeout.Token);
                using var bytes = await PooledBody.ReadAsync(reply.Content, timeout.Token);
                if (reply.IsSuccessStatusCode)
                {
                    if (!floats) _base64Works = true;
                    var (vectors, dims, error) = EmbeddingsWire.Response(bytes.Span, texts.Count, dimensions);
                    return new EmbedReply(vectors, dims, error);
                }
                failure = new SendOutcome.Status((int)reply.StatusCode, RetryAfter(reply), Snippet(bytes.Span));
                if (reply.StatusCode == HttpStatusCode.RequestEntityTooLarge)
                    return new EmbedReply(null, 0, $"HTTP 413 for {texts.Count} texts of {body.Length} bytes: {((SendOutcome.Status)failure).Body}", TooLarge: true);
                if (!floats && !_base64Works && (int)reply.StatusCode is 400 or 422)
                {
                    if (!_floats) _log($"the endpoint refused the request (HTTP {(int)reply.StatusCode}); asking for floats instead of base64");
                    _floats = true;
                    attempt--; // not a try of its own
                    continue;
                }
            }
            catch (HttpRequestException e) { failure = new SendOutcome.NoAnswer("no answer: " + e.Message); }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested) { failure = new SendOutcome.NoAnswer($"no answer in {_timeout.TotalSeconds:0.#} s"); }
            var decision = _policy.Decide(attempt, failure, Random.Shared.NextDouble());
            if (!decision.Retry) return new EmbedReply(null, 0, decision.Reason);
            Interlocked.Increment(ref _retries);
            _log($"retrying a batch of {texts.Count} in {decision.Delay.TotalSeconds:0.##} s (attempt {attempt + 1} of {_policy.MaxAttempts}): {decision.Reason}");
            await Task.Delay(decision.Delay, _time, ct);
        }
    }

    private TimeSpan? RetryAfter(HttpResponseMessage reply) => reply.Headers.RetryAfter switch
    {
        { Delta: { } delta } => delta,
        { Date: { } date } => date - _time.GetUtcNow(),
        _ => null,
    };

    /// <summary>The start of an error body, on one line, for the message (a server's own words are the best clue).</summary>
    private static string Snippet(ReadOnlySpan<byte> body)
    {
        var text = System.Text.Encoding.UTF8.GetString(body[..Math.Min(body.Length, 300)]).ReplaceLineEndings(" ").Trim();
        return new string(text.Where(c => !char.IsControl(c)).ToArray());
    }

    public void Dispose() => _http.Dispose();
}

/// <summary>An answer's body in a buffer from the shared pool, given back when disposed: an answer of 64 vectors is
/// about 100 KB, and a new array of that size for each would be a large-object allocation, collected only with the
/// whole heap.</summary>
internal readonly struct PooledBody : IDisposable
{
    private readonly byte[] _buffer;
    private readonly int _length;
    public ReadOnlySpan<byte> Span => _buffer.AsSpan(0, _length);

    private PooledBody(byte[] buffer, int length) => (_buffer, _length) = (buffer, length);

    public static async Task<PooledBody> ReadAsync(HttpContent content, CancellationToken ct)
    {
        var buffer = System.Buffers.ArrayPool<byte>.Shared.Rent((int)Math.Clamp(content.Headers.ContentLength ?? 0, 0, 1 << 26) + 1);
        int length = 0;
        try
        {
            await using var stream = await content.ReadAsStreamAsync(ct);
            int n;
            while ((n = await stream.ReadAsync(buffer.AsMemory(length), ct)) > 0)
            {
                length += n;
                if (length < buffer.Length) continue;
                var bigger = System.Buffers.ArrayPool<byte>.Shared.Rent(buffer.Length * 2);
                buffer.AsSpan(0, length).CopyTo(bigger);
                System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
                buffer = bigger;
            }
            return new PooledBody(buffer, length);
        }
        catch
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
            throw;
        }
    }

    public void Dispose() => System.Buffers.ArrayPool<byte>.Shared.Return(_buffer);
}
