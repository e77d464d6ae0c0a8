using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Sparky.Core.Tasks;

/// <summary>What a task's stdout said about its result: the JSON of its last marker line, or why there is none.</summary>
/// <param name="Json">The result as compact JSON; null when there is no marker line or its JSON is not valid.</param>
/// <param name="Error">Why the last marker line gave no result (its JSON is empty or invalid); null otherwise.</param>
public readonly record struct ResultRead(string? Json, string? Error)
{
    public static readonly ResultRead None = default;
}

/// <summary>
/// The replaced runner's convention (env_runner_rs, <c>parse_result_marker</c>): of the task's stdout lines, the last
/// one that starts with <c>__DSPY_RESULT__:</c> once trimmed is the result, whatever lines follow it; the text after
/// the marker, trimmed, is JSON. Only that line counts: if its JSON is empty or invalid there is no result (an
/// earlier marker line does not stand in), and Sparky says why (<see cref="ResultRead.Error"/>).
/// <para>
/// Outputs can be gigabytes, so the file is read backwards from its end in blocks, and only the last
/// <see cref="ScanBytes"/> of it are searched: a marker line must start within the last 16 MiB of stdout (a
/// marker line of a few MiB of JSON, followed by some output, fits). A marker near the end costs one 64 KiB read; stdout
/// of more than 16 MiB with no marker costs the whole window (about 5 ms from the page cache on a small VM). Lines end at <c>\n</c>; a <c>\r</c> before it
/// and any Unicode white space around the line are trimmed, as Rust's <c>lines()</c> and <c>trim()</c> do.
/// </para>
/// <para>No I/O here: the caller passes a positioned read over the file (or over bytes, in tests).</para>
/// </summary>
public static class ResultMarker
{
    public const string Prefix = "__DSPY_RESULT__:";
    /// <summary>How much of the end of stdout is searched for the marker: 16 MiB.</summary>
    public const int ScanBytes = 16 * 1024 * 1024;
    /// <summary>White space before a marker on its line, at most: more is not a marker line.</summary>
    private const int MaxIndent = 4096;
    private const int Block = 64 * 1024;
    /// <summary>As deep as the rest of the daemon reads JSON (an API body, a stored result).</summary>
    private const int MaxDepth = 64;

    private static readonly byte[] PrefixBytes = Encoding.ASCII.GetBytes(Prefix);

    /// <summary>Reads up to <c>buffer.Length</c> bytes at <c>offset</c>; returns how many (0 at the end).</summary>
    public delegate int ReadAt(long offset, Span<byte> buffer);

    /// <summary>The result of stdout <paramref name="length"/> bytes long, read through <paramref name="read"/>.</summary>
    public static ResultRead Find(long length, ReadAt read)
    {
        if (length < PrefixBytes.Length) return ResultRead.None;
        long floor = Math.Max(0, length - ScanBytes);
        // Each block is read with the marker's length - 1 bytes of the next one, so a marker across the border is found.
        var buf = System.Buffers.ArrayPool<byte>.Shared.Rent(Block + PrefixBytes.Length - 1);
        try { return Scan(length, floor, buf, read); }
        finally { System.Buffers.ArrayPool<byte>.Shared.Return(buf); }
    }

    private static ResultRead Scan(long length, long floor, byte[] buf, ReadAt read)
    {
        long blockEnd = length;
        while (blockEnd > floor)
        {
            long blockStart = Math.Max(floor, blockEnd - Block);
            int want = (int)(Math.Min(length, blockEnd + PrefixBytes.Length - 1) - blockStart);
            int n = ReadFully(read, blockStart, buf.AsSpan(0, want));
            var span = buf.AsSpan(0, n);
            int searchEnd = n;
            while (true)
            {
                int i = span[..searchEnd].LastIndexOf(PrefixBytes);
                if (i < 0) break;
                long at = blockStart + i;
                if (StartsLine(read, at, span, blockStart)) return ParseFrom(read, at, length);
                // An earlier marker on the same line, or on an earlier one: search before this one.
                searchEnd = i + PrefixBytes.Length - 1;
            }
            blockEnd = blockStart;
        }
        return ResultRead.None;
    }

    /// <summary>The result of one marker line (the line itself, with or without its <c>\r\n</c>).</summary>
    public static ResultRead ParseLine(string line)
    {
        var trimmed = line.Trim();
        if (!trimmed.StartsWith(Prefix, StringComparison.Ordinal)) return ResultRead.None;
        var payload = trimmed[Prefix.Length..].Trim();
        if (payload.Length == 0) return new ResultRead(null, $"the last {Prefix} line has no JSON after the marker");
        try
        {
            var node = JsonNode.Parse(payload, documentOptions: new JsonDocumentOptions { MaxDepth = MaxDepth });
            // Duplicate keys and broken strings only throw when read: read it all now, as the API does with a body.
            if (JsonChecks.FirstProblem(node) is { } problem) return new ResultRead(null, $"the last {Prefix} line is not valid JSON: {problem}");
            return new ResultRead(node?.ToJsonString() ?? "null", null);
        }
        catch (JsonException e)
        {
            return new ResultRead(null, $"the last {Prefix} line is not valid JSON: {FirstLine(e.Message)}");
        }
    }

    /// <summary>Whether the marker at <paramref name="at"/> begins its line: only white space between it and the
    /// previous <c>\n</c> (or the start of the file).</summary>
    private static bool StartsLine(ReadAt read, long at, ReadOnlySpan<byte> block, long blockStart)
    {
        // The bytes before the marker, as far back as an indent may reach: from the block, or read once.
        long from = Math.Max(0, at - MaxIndent - 1);
        ReadOnlySpan<byte> before;
        if (from >= blockStart) before = block[(int)(from - blockStart)..(int)(at - blockStart)];
        else
        {
            var window = new byte[at - from];
            before = window.AsSpan(0, ReadFully(read, from, window));
        }
        bool nonAscii = false;
        int k = before.Length - 1;
        for (; k >= 0; k--)
        {
            byte b = before[k];
            if (b == (byte)'\n') break;
            if (b >= 0x80) { nonAscii = true; continue; } // maybe white space beyond ASCII (U+00A0, U+2003, ...): decoded below
            if (b is not ((byte)' ' or (byte)'\t' or (byte)'\r' or (byte)'\v' or (byte)'\f')) return false;
        }
        if (k < 0 && from > 0) return false; // more indent than MaxIndent
        var indent = before[(k + 1)..];
        return !nonAscii || string.IsNullOrWhiteSpace(Encoding.UTF8.GetString(indent));
    }

    /// <summary>Reads the marker line from <paramref name="at"/> to its <c>\n</c> (or the end) and parses it.</summary>
    private static ResultRead ParseFrom(ReadAt read, long at, long length)
    {
        // Forward in blocks to the line's end; the marker is within the last ScanBytes, so the line is no longer.
        var line = new List<byte[]>();
        var buf = new byte[Block];
        long p = at;
        int total = 0;
        while (p < length)
        {
            int n = ReadFully(read, p, buf.AsSpan(0, (int)Math.Min(Block, length - p)));
            if (n == 0) break;
            int nl = buf.AsSpan(0, n).IndexOf((byte)'\n');
            int take = nl < 0 ? n : nl;
            line.Add(buf[..take]);
            total += take;
            if (nl >= 0) break;
            p += n;
        }
        var bytes = new byte[total];
        int o = 0;
        foreach (var part in line) { part.CopyTo(bytes, o); o += part.Length; }
        return ParseLine(Encoding.UTF8.GetString(bytes));
    }

    private static int ReadFully(ReadAt read, long offset, Span<byte> buffer)
    {
        int total = 0;
        while (total < buffer.Length)
        {
            int n = read(offset + total, buffer[total..]);
            if (n <= 0) break;
            total += n;
        }
        return total;
    }

    private static string FirstLine(string s)
    {
        int nl = s.IndexOf('\n');
        return nl < 0 ? s : s[..nl];
    }

    /// <summary>The result of stdout held in memory (tests, small outputs).</summary>
    public static ResultRead Find(ReadOnlyMemory<byte> stdout) =>
        Find(stdout.Length, (offset, buffer) =>
        {
            if (offset >= stdout.Length) return 0;
            var src = stdout.Span[(int)offset..];
            int n = Math.Min(src.Length, buffer.Length);
            src[..n].CopyTo(buffer);
            return n;
        });
}
