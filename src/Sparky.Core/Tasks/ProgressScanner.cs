namespace Sparky.Core.Tasks;

/// <summary>
/// Finds <see cref="TaskProgress"/> lines in a task's stdout as it grows, fed in pieces of any size: a line may be cut
/// anywhere between two pieces (the marker itself included). Output without the marker costs one vectorised search for
/// it per piece and nothing per line, so a task that prints no progress costs next to nothing to follow. Only the line
/// being read is kept, and only while it can still be a progress line, never more than
/// <see cref="TaskProgress.MaxLineBytes"/>. No I/O: the caller reads the file.
/// </summary>
public sealed class ProgressScanner
{
    private enum Where { LineStart, InMarkerLine, SkippingLine }

    private static ReadOnlySpan<byte> Marker => TaskProgress.MarkerBytes;

    private Where _where = Where.LineStart;
    /// <summary>The start of a line that may be a progress line, while its end has not been read.</summary>
    private byte[]? _line;
    private int _lineLength;

    /// <summary>Reads the next piece of output; returns the last progress among the lines it completed, or null.</summary>
    public TaskProgress? Feed(ReadOnlySpan<byte> piece)
    {
        TaskProgress? last = null;
        while (!piece.IsEmpty)
        {
            switch (_where)
            {
                case Where.SkippingLine:
                {
                    int nl = piece.IndexOf((byte)'\n');
                    if (nl < 0) return last;
                    piece = piece[(nl + 1)..];
                    _where = Where.LineStart;
                    break;
                }
                case Where.InMarkerLine:
                {
                    int nl = piece.IndexOf((byte)'\n');
                    var part = nl < 0 ? piece : piece[..nl];
                    if (!Append(part)) _where = nl < 0 ? Where.SkippingLine : Where.LineStart; // too long: not progress
                    else if (nl >= 0)
                    {
                        last = TaskProgress.ParseLine(_line.AsSpan(0, _lineLength)) ?? last;
                        _lineLength = 0;
                        _where = Where.LineStart;
                    }
                    else if (!MayBeMarkerLine(_line.AsSpan(0, _lineLength))) Skip();
                    piece = nl < 0 ? default : piece[(nl + 1)..];
                    break;
                }
                default:
                    piece = FromLineStart(piece);
                    break;
            }
        }
        return last;
    }

    /// <summary>At the start of a line: moves to the next line that starts with the marker, or to the end of the piece.</summary>
    private ReadOnlySpan<byte> FromLineStart(ReadOnlySpan<byte> piece)
    {
        int from = 0;
        while (true)
        {
            int i = piece[from..].IndexOf(Marker);
            if (i < 0) break;
            i += from;
            if (i == 0 || piece[i - 1] == (byte)'\n')
            {
                _where = Where.InMarkerLine;
                return piece[i..];
            }
            from = i + 1; // within a line: not a marker line
        }
        // No marker line starts in the piece; its last line, unfinished, may be the start of one.
        var tail = piece[(piece.LastIndexOf((byte)'\n') + 1)..];
        if (tail.IsEmpty) _where = Where.LineStart;
        else if (Marker.StartsWith(tail))
        {
            _where = Where.InMarkerLine;
            Append(tail);
        }
        else _where = Where.SkippingLine;
        return default;
    }

    /// <summary>The attempt ended: a last line without its <c>\n</c> counts. The scanner starts afresh after it.</summary>
    public TaskProgress? Finish()
    {
        var last = _where == Where.InMarkerLine ? TaskProgress.ParseLine(_line.AsSpan(0, _lineLength)) : null;
        Reset();
        return last;
    }

    /// <summary>The output starts again from its beginning (the file was truncated or replaced).</summary>
    public void Reset()
    {
        _where = Where.LineStart;
        _lineLength = 0;
    }

    /// <summary>What follows is read from the middle of a line (the reader jumped ahead): that line is not read.</summary>
    public void Skip()
    {
        _where = Where.SkippingLine;
        _lineLength = 0;
    }

    /// <summary>Adds to the line being read; false (and the line dropped) past <see cref="TaskProgress.MaxLineBytes"/>.</summary>
    private bool Append(ReadOnlySpan<byte> part)
    {
        if (_lineLength + part.Length > TaskProgress.MaxLineBytes)
        {
            _lineLength = 0;
            return false;
        }
        _line ??= new byte[TaskProgress.MaxLineBytes];
        part.CopyTo(_line.AsSpan(_lineLength));
        _lineLength += part.Length;
        return true;
    }

    private static bool MayBeMarkerLine(ReadOnlySpan<byte> start) => start.StartsWith(Marker) || Marker.StartsWith(start);
}
