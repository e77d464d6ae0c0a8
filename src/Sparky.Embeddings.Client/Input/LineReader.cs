namespace Sparky.Embeddings.Client.Input;

/// <summary>
/// Reads a file line by line as bytes, keeping each line's number (1-based) and where the next line starts, so a job
/// can record its place and come back to it with a seek. A line is what ends at '\n' (a last line without one counts);
/// the '\n' is not part of it. Lines of any length are read whole.
/// </summary>
public sealed class LineReader : IDisposable
{
    private readonly FileStream _file;
    private byte[] _buffer = new byte[1 << 16];
    private int _start, _end;
    private bool _eof;

    /// <summary>The number of the line the next read returns.</summary>
    public long NextLine { get; private set; }

    /// <summary>The byte offset where the next line starts.</summary>
    public long NextOffset { get; private set; }

    public LineReader(string path, long offset = 0, long line = 1)
    {
        _file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 1, FileOptions.SequentialScan);
        _file.Seek(offset, SeekOrigin.Begin);
        (NextOffset, NextLine) = (offset, line);
    }

    /// <summary>The next line, or false at the end of the file. The span is valid until the next call.</summary>
    public bool TryRead(out long number, out ReadOnlySpan<byte> line)
    {
        while (true)
        {
            int nl = _buffer.AsSpan(_start, _end - _start).IndexOf((byte)'\n');
            if (nl >= 0 || (_eof && _end > _start))
            {
                int length = nl >= 0 ? nl : _end - _start;
                line = _buffer.AsSpan(_start, length);
                int consumed = nl >= 0 ? length + 1 : length;
                _start += consumed;
                number = NextLine++;
                NextOffset += consumed;
                return true;
            }
            if (_eof)
            {
                number = NextLine;
                line = default;
                return false;
            }
            Fill();
        }
    }

    private void Fill()
    {
        if (_start > 0)
        {
            Buffer.BlockCopy(_buffer, _start, _buffer, 0, _end - _start);
            (_end, _start) = (_end - _start, 0);
        }
        if (_end == _buffer.Length) Array.Resize(ref _buffer, _buffer.Length * 2); // a line longer than the buffer
        int n = _file.Read(_buffer, _end, _buffer.Length - _end);
        if (n == 0) _eof = true;
        _end += n;
    }

    /// <summary>How many lines the file has (a last line without '\n' counts; an empty file has none).</summary>
    public static long CountLines(string path)
    {
        using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 1, FileOptions.SequentialScan);
        var buffer = new byte[1 << 20];
        long lines = 0;
        byte last = (byte)'\n';
        int n;
        while ((n = file.Read(buffer, 0, buffer.Length)) > 0)
        {
            lines += buffer.AsSpan(0, n).Count((byte)'\n');
            last = buffer[n - 1];
        }
        return last == (byte)'\n' ? lines : lines + 1;
    }

    public void Dispose() => _file.Dispose();
}
