using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using Sparky.IntegrationTests.Support;

namespace Sparky.IntegrationTests.BadInput;

/// <summary>What a refused request came back as: status, content type, and the problem's detail.</summary>
public sealed record HttpAnswer(int Status, string? ContentType, string Raw)
{
    public string? Detail
    {
        get
        {
            try { return (string?)(JsonNode.Parse(Raw) as JsonObject)?["detail"]; }
            catch (System.Text.Json.JsonException) { return null; }
        }
    }

    public override string ToString() => $"{Status} {ContentType} {(Raw.Length > 300 ? Raw[..300] + "…" : Raw)}";
}

/// <summary>Small helpers shared by the bad-input tests: raw requests, the queue's counters, the data dir's state.</summary>
public static class BadInputSupport
{
    public static ByteArrayContent Json(byte[] bytes)
    {
        var c = new ByteArrayContent(bytes);
        c.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        return c;
    }

    public static ByteArrayContent Json(string text) => Json(Encoding.UTF8.GetBytes(text));

    public static async Task<HttpAnswer> SendAsync(HttpClient http, HttpMethod method, string path, HttpContent? content = null)
    {
        using var req = new HttpRequestMessage(method, path) { Content = content };
        using var resp = await http.SendAsync(req);
        var raw = await resp.Content.ReadAsStringAsync();
        return new HttpAnswer((int)resp.StatusCode, resp.Content.Headers.ContentType?.MediaType, raw);
    }

    public static async Task<JsonNode> QueueStatusAsync(HttpClient http) =>
        JsonNode.Parse(await http.GetStringAsync("queue/status"))!;

    public static async Task<long> SubmittedAsync(HttpClient http) => (long)(await QueueStatusAsync(http))["submitted"]!;

    /// <summary>Every task the store holds, by cursor paging.</summary>
    public static async Task<List<JsonNode>> AllTasksAsync(HttpClient http)
    {
        var all = new List<JsonNode>();
        long? cursor = null;
        while (true)
        {
            var page = JsonNode.Parse(await http.GetStringAsync($"api/v1/tasks?limit=10000{(cursor is { } c ? "&cursor=" + c : "")}"))!;
            all.AddRange(((JsonArray)page["tasks"]!).Select(t => t!));
            if (page["next_cursor"] is not { } next) return all;
            cursor = (long)next;
        }
    }

    /// <summary>Everything under &lt;data&gt;/logs, relative paths, sorted.</summary>
    public static List<string> LogEntries(TestDaemon d)
    {
        var logs = Path.Combine(d.DataDir, "logs");
        return Directory.Exists(logs)
            ? Directory.EnumerateFileSystemEntries(logs, "*", SearchOption.AllDirectories).Select(p => Path.GetRelativePath(logs, p)).Order(StringComparer.Ordinal).ToList()
            : [];
    }

    /// <summary>
    /// POSTs <paramref name="body"/> over a bare socket, the way curl does: the response is read while the body
    /// is still being sent, and a server that answers early and closes (as it may, for a body it refuses) is not
    /// an error. HttpClient, by contrast, reports a broken pipe and drops the answer it was sent.
    /// </summary>
    public static async Task<HttpAnswer> RawPostAsync(Uri server, string path, byte[] body, bool chunked, double timeoutSeconds = 60)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(timeoutSeconds));
        using var tcp = new System.Net.Sockets.TcpClient();
        await tcp.ConnectAsync(server.Host, server.Port, cts.Token);
        var stream = tcp.GetStream();
        var head = $"POST /{path} HTTP/1.1\r\nHost: {server.Host}:{server.Port}\r\nContent-Type: application/json\r\n"
            + (chunked ? "Transfer-Encoding: chunked\r\n" : $"Content-Length: {body.Length}\r\n") + "\r\n";
        var sending = Task.Run(async () =>
        {
            try
            {
                await stream.WriteAsync(Encoding.ASCII.GetBytes(head), cts.Token);
                for (int off = 0; off < body.Length; off += 65536)
                {
                    int n = Math.Min(65536, body.Length - off);
                    if (chunked) await stream.WriteAsync(Encoding.ASCII.GetBytes($"{n:x}\r\n"), cts.Token);
                    await stream.WriteAsync(body.AsMemory(off, n), cts.Token);
                    if (chunked) await stream.WriteAsync("\r\n"u8.ToArray(), cts.Token);
                }
                if (chunked) await stream.WriteAsync("0\r\n\r\n"u8.ToArray(), cts.Token);
            }
            catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or ObjectDisposedException or OperationCanceledException) { }
        });
        var reader = new RawReader(stream, cts.Token);
        var statusLine = await reader.LineAsync();
        var parts = statusLine.Split(' ', 3);
        int status = int.Parse(parts[1]);
        var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        for (var line = await reader.LineAsync(); line.Length > 0; line = await reader.LineAsync())
        {
            int colon = line.IndexOf(':');
            headers[line[..colon].Trim()] = line[(colon + 1)..].Trim();
        }
        var content = new MemoryStream();
        if (headers.TryGetValue("Transfer-Encoding", out var te) && te.Contains("chunked", StringComparison.OrdinalIgnoreCase))
        {
            while (true)
            {
                int size = Convert.ToInt32((await reader.LineAsync()).Split(';')[0].Trim(), 16);
                if (size == 0) break;
                content.Write(await reader.BytesAsync(size));
                await reader.LineAsync();
            }
        }
        else if (headers.TryGetValue("Content-Length", out var cl))
        {
            content.Write(await reader.BytesAsync(int.Parse(cl)));
        }
        tcp.Close();
        await sending;
        string? mediaType = headers.TryGetValue("Content-Type", out var ct) ? ct.Split(';')[0].Trim() : null;
        return new HttpAnswer(status, mediaType, Encoding.UTF8.GetString(content.ToArray()));
    }

    private sealed class RawReader(Stream stream, CancellationToken ct)
    {
        private readonly byte[] _buf = new byte[65536];
        private int _start, _end;

        private async Task FillAsync()
        {
            if (_start == _end) { _start = _end = 0; }
            int n = await stream.ReadAsync(_buf.AsMemory(_end, _buf.Length - _end), ct);
            if (n == 0) throw new IOException("the server closed the connection before the response was complete");
            _end += n;
        }

        public async Task<string> LineAsync()
        {
            var line = new List<byte>();
            while (true)
            {
                if (_start == _end) await FillAsync();
                byte b = _buf[_start++];
                if (b == '\n') return Encoding.ASCII.GetString(line.ToArray()).TrimEnd('\r');
                line.Add(b);
            }
        }

        public async Task<byte[]> BytesAsync(int count)
        {
            var result = new byte[count];
            int got = 0;
            while (got < count)
            {
                if (_start == _end) await FillAsync();
                int n = Math.Min(count - got, _end - _start);
                Array.Copy(_buf, _start, result, got, n);
                _start += n;
                got += n;
            }
            return result;
        }
    }

    /// <summary>Polls <paramref name="check"/> until it holds or the deadline passes; returns whether it held.</summary>
    public static async Task<bool> EventuallyAsync(Func<Task<bool>> check, double seconds, int pollMs = 25)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (true)
        {
            if (await check()) return true;
            if (DateTime.UtcNow > deadline) return false;
            await Task.Delay(pollMs);
        }
    }
}
