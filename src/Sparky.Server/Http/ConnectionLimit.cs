using System.Buffers;
using System.Text;
using Microsoft.AspNetCore.Connections;

namespace Sparky.Server.Http;

/// <summary>
/// Bounds the open HTTP connections. Kestrel's own MaxConcurrentConnections closes a connection over the limit
/// without a word, which a client reads as a network fault; here it gets <c>503</c> with a reason and
/// <c>Connection: close</c>. The over-limit connection is held only to read its request head (at most a second)
/// and answer, so its descriptor comes back at once, and the daemon stays reachable once others close: 20,000 idle
/// connections held without a bound made HTTP unreachable and the daemon spin at 70% CPU. Idle connections are
/// ended by Kestrel's keep-alive and request-header timeouts.
/// </summary>
internal sealed class ConnectionLimit(int max)
{
    private int _open;

    public int Open => Volatile.Read(ref _open);

    public ConnectionDelegate Wrap(ConnectionDelegate next) => async ctx =>
    {
        if (Interlocked.Increment(ref _open) > max)
        {
            try { await RefuseAsync(ctx); }
            finally { Interlocked.Decrement(ref _open); }
            return;
        }
        try { await next(ctx); }
        finally { Interlocked.Decrement(ref _open); }
    };

    private async Task RefuseAsync(ConnectionContext ctx)
    {
        // Read the request head first: closing a socket with unread input sends a reset, and the client would
        // see that instead of the answer.
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(1));
        try
        {
            long seen = 0;
            while (seen < 16 * 1024)
            {
                var read = await ctx.Transport.Input.ReadAsync(cts.Token);
                var buffer = read.Buffer;
                bool headEnded = buffer.PositionOf((byte)'\n') is not null && EndsHead(buffer);
                seen += buffer.Length;
                ctx.Transport.Input.AdvanceTo(buffer.End);
                if (headEnded || read.IsCompleted) break;
            }
        }
        catch (Exception e) when (e is OperationCanceledException or IOException or ConnectionResetException) { }
        var body = $"{{\"type\":\"https://tools.ietf.org/html/rfc9110#section-15.6.4\",\"title\":\"Service unavailable\",\"status\":503,\"detail\":\"the daemon has {max} HTTP connections open, its bound (max_connections); try again when some close\"}}";
        var response = $"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/problem+json\r\nContent-Length: {Encoding.UTF8.GetByteCount(body)}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n{body}";
        try
        {
            await ctx.Transport.Output.WriteAsync(Encoding.UTF8.GetBytes(response));
            await ctx.Transport.Output.CompleteAsync();
        }
        catch (Exception e) when (e is IOException or ConnectionResetException or InvalidOperationException) { }
    }

    /// <summary>Whether what was read so far holds the blank line that ends an HTTP/1 request head.</summary>
    private static bool EndsHead(ReadOnlySequence<byte> buffer)
    {
        var bytes = buffer.Length > 64 * 1024 ? buffer.Slice(buffer.Length - 64 * 1024).ToArray() : buffer.ToArray();
        return bytes.AsSpan().IndexOf("\r\n\r\n"u8) >= 0 || bytes.AsSpan().IndexOf("\n\n"u8) >= 0;
    }
}
