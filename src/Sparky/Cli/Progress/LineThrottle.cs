namespace Sparky.Cli.Progress;

/// <summary>
/// Progress as plain lines (the output is not a terminal): a line when what it says changed, at most one per
/// <c>every</c>, and the final one always, so a log gets the story, not a flood.
/// </summary>
internal sealed class LineThrottle(TimeSpan every)
{
    private string? _lastKey, _lastLine;
    private DateTimeOffset _lastAt = DateTimeOffset.MinValue;

    public LineThrottle() : this(TimeSpan.FromSeconds(1)) { }

    /// <summary>The line to print now, or null.</summary>
    /// <param name="key">What the line says that matters (counts, progress): a change of the rate or the ETA alone is not news.</param>
    /// <param name="final">The last line: printed unless it was just printed.</param>
    public string? Next(string key, string line, DateTimeOffset now, bool final = false)
    {
        if (final ? line == _lastLine : key == _lastKey || now - _lastAt < every) return null;
        (_lastKey, _lastLine, _lastAt) = (key, line, now);
        return line;
    }
}
