using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Sparky.Cli.Submit;

/// <summary>An HTTP answer as the CLI reads it.</summary>
internal sealed record HttpAnswer(int Status, string Reason, string? MediaType, string Body)
{
    public bool IsSuccess => Status is >= 200 and <= 299;
}

/// <summary>
/// One HTTP/1.1 request over a blocking loopback socket, for the one request of <c>sparky submit</c>: HttpClient's
/// handler, its connection pool, the socket engine's thread, the thread pool and the timer thread cost a short-lived
/// process more than the request does. It sends what HttpClient sends (Host, Content-Type, Content-Length,
/// Authorization) and reads one answer (Content-Length or chunked).
/// </summary>
internal static class QuickHttp
{
    /// <summary>Thrown when the daemon could not be connected to: nothing was sent, so asking again is safe.</summary>
    public sealed class NotConnected(Exception inner) : Exception(inner.Message, inner);

    /// <summary>The request's bytes: the request line, HttpClient's headers and the body.</summary>
    public static byte[] Request(string method, Uri uri, string? token, byte[] body)
    {
        var head = new StringBuilder()
            .Append(method).Append(' ').Append(uri.PathAndQuery).Append(" HTTP/1.1\r\n")
            .Append("Host: ").Append(uri.Authority).Append("\r\n")
            .Append("Content-Type: application/json; charset=utf-8\r\n")
            .Append("Content-Length: ").Append(body.Length).Append("\r\n");
        if (token is not null) head.Append("Authorization: Bearer ").Append(token).Append("\r\n");
        head.Append("Connection: close\r\n\r\n");
        var bytes = Encoding.ASCII.GetBytes(head.ToString());
        return [.. bytes, .. body];
    }

    /// <summary>Sends the request and reads the answer; <see cref="NotConnected"/> when no connection was made, a
    /// <see cref="SocketException"/> (TimedOut: the time limit ran out) or <see cref="IOException"/> when it broke
    /// after.</summary>
    public static HttpAnswer Send(Uri uri, byte[] request, TimeSpan timeout)
    {
        int fd = Connect(uri, timeout);
        try
        {
            Libc.SendAll(fd, request);
            var buffer = new byte[4096];
            int length = 0;
            while (true)
            {
                if (length == buffer.Length) Array.Resize(ref buffer, buffer.Length * 2);
                int n = Libc.Receive(fd, buffer.AsSpan(length));
                if (n == 0) break;
                length += n;
                if (TryParse(buffer.AsSpan(0, length), out var answer)) return answer!;
            }
            if (TryParse(buffer.AsSpan(0, length), out var last)) return last!;
            throw new IOException("The response ended prematurely.");
        }
        finally
        {
            Libc.Close(fd);
        }
    }

    /// <summary>A blocking socket (libc's: see <see cref="Libc"/>) to the first of the host's addresses that answers.
    /// The time limit is the kernel's (SO_SNDTIMEO, SO_RCVTIMEO).</summary>
    private static int Connect(Uri uri, TimeSpan timeout)
    {
        IPAddress[] addresses;
        try
        {
            addresses = IPAddress.TryParse(uri.DnsSafeHost, out var ip) ? [ip] : Dns.GetHostAddresses(uri.DnsSafeHost);
        }
        catch (SocketException e)
        {
            throw new NotConnected(e);
        }
        string? failure = null;
        foreach (var address in addresses)
        {
            try
            {
                if (Libc.Connect(address, uri.Port, timeout, out failure) is { } fd) return fd;
            }
            catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
            {
                throw new NotConnected(e); // no libc to call (a JIT build on another C library): the tree's HttpClient
            }
        }
        throw new NotConnected(new IOException(failure ?? "No address for the host."));
    }

    /// <summary>A whole answer from its bytes; false while more are needed. Without Content-Length or chunking the
    /// body runs to the end of the connection (the caller parses again at the end).</summary>
    public static bool TryParse(ReadOnlySpan<byte> data, out HttpAnswer? answer)
    {
        answer = null;
        int headEnd = data.IndexOf("\r\n\r\n"u8);
        if (headEnd < 0) return false;
        var lines = Encoding.ASCII.GetString(data[..headEnd]).Split("\r\n");
        // HTTP/1.1 201 Created
        var statusLine = lines[0].Split(' ', 3);
        if (statusLine.Length < 2 || !statusLine[0].StartsWith("HTTP/", StringComparison.Ordinal) || !int.TryParse(statusLine[1], out int status))
            throw new IOException("The server returned an invalid or unrecognized response.");
        string reason = statusLine.Length > 2 ? statusLine[2] : "";
        string? mediaType = null;
        long? contentLength = null;
        bool chunked = false;
        foreach (var line in lines.Skip(1))
        {
            int colon = line.IndexOf(':');
            if (colon <= 0) continue;
            var name = line[..colon].Trim();
            var value = line[(colon + 1)..].Trim();
            if (name.Equals("Content-Type", StringComparison.OrdinalIgnoreCase)) mediaType = value.Split(';')[0].Trim();
            else if (name.Equals("Content-Length", StringComparison.OrdinalIgnoreCase) && long.TryParse(value, out var cl)) contentLength = cl;
            else if (name.Equals("Transfer-Encoding", StringComparison.OrdinalIgnoreCase)) chunked = value.Contains("chunked", StringComparison.OrdinalIgnoreCase);
        }
        var rest = data[(headEnd + 4)..];
        byte[] body;
        if (chunked)
        {
            if (!TryDechunk(rest, out body)) return false;
        }
        else if (contentLength is { } cl)
        {
            if (rest.Length < cl) return false;
            body = rest[..(int)cl].ToArray();
        }
        else if (status is 204 or 304 || status < 200) body = [];
        else return false; // to the end of the connection
        answer = new HttpAnswer(status, reason, mediaType, Encoding.UTF8.GetString(body));
        return true;
    }

    /// <summary>Joins a chunked body's chunks; false until its last (empty) chunk and the blank line after it.</summary>
    private static bool TryDechunk(ReadOnlySpan<byte> data, out byte[] body)
    {
        var into = new List<byte>();
        body = [];
        while (true)
        {
            int eol = data.IndexOf("\r\n"u8);
            if (eol < 0) return false;
            var sizeText = Encoding.ASCII.GetString(data[..eol]).Split(';')[0].Trim();
            if (!int.TryParse(sizeText, System.Globalization.NumberStyles.HexNumber, null, out int size) || size < 0)
                throw new IOException("The server returned an invalid or unrecognized response.");
            data = data[(eol + 2)..];
            if (size == 0)
            {
                // Trailers, if any, end with a blank line.
                if (data.IndexOf("\r\n"u8) < 0) return false;
                body = [.. into];
                return true;
            }
            if (data.Length < size + 2) return false;
            into.AddRange(data[..size]);
            data = data[(size + 2)..];
        }
    }
}
