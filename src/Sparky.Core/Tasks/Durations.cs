using System.Globalization;

namespace Sparky.Core.Tasks;

/// <summary>Parses durations as users write them: <c>90</c> (seconds), <c>30s</c>, <c>5m</c>, <c>1h</c>, <c>1h30m</c>, <c>2d</c>.</summary>
public static class Durations
{
    public static bool TryParseSeconds(string? text, out double seconds)
    {
        seconds = 0;
        if (string.IsNullOrWhiteSpace(text)) return false;
        text = text.Trim();
        if (double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out seconds))
            return seconds > 0 && double.IsFinite(seconds);
        double total = 0;
        int i = 0;
        bool any = false;
        while (i < text.Length)
        {
            int start = i;
            while (i < text.Length && (char.IsAsciiDigit(text[i]) || text[i] == '.')) i++;
            if (start == i || i >= text.Length) return false;
            if (!double.TryParse(text.AsSpan(start, i - start), NumberStyles.Float, CultureInfo.InvariantCulture, out var n)) return false;
            double unit = text[i] switch { 's' => 1, 'm' => 60, 'h' => 3600, 'd' => 86400, _ => 0 };
            if (unit == 0) return false;
            total += n * unit;
            i++;
            any = true;
        }
        seconds = total;
        return any && total > 0 && double.IsFinite(total);
    }

    public static string Format(TimeSpan t) =>
        t.TotalSeconds < 1 ? $"{t.TotalMilliseconds:0}ms"
        : t.TotalMinutes < 1 ? $"{t.TotalSeconds:0.0}s"
        : t.TotalHours < 1 ? $"{(int)t.TotalMinutes}m{t.Seconds:00}s"
        : $"{(int)t.TotalHours}h{t.Minutes:00}m";
}

/// <summary>Parses memory sizes: <c>512</c> (MB), <c>512M</c>, <c>20G</c>, <c>1T</c>.</summary>
public static class MemorySizes
{
    public static bool TryParseMb(string? text, out long mb)
    {
        mb = 0;
        if (string.IsNullOrWhiteSpace(text)) return false;
        text = text.Trim().ToUpperInvariant().TrimEnd('B');
        long mult = 1;
        if (text.EndsWith('K')) { mult = -1024; text = text[..^1]; }
        else if (text.EndsWith('M')) { text = text[..^1]; }
        else if (text.EndsWith('G')) { mult = 1024; text = text[..^1]; }
        else if (text.EndsWith('T')) { mult = 1024 * 1024; text = text[..^1]; }
        if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var n) || n < 0 || !double.IsFinite(n)) return false;
        mb = mult < 0 ? (long)Math.Ceiling(n / -mult) : (long)Math.Ceiling(n * mult);
        return true;
    }
}
