using System.Globalization;

namespace Sparky.Execution.Host;

/// <summary>Host memory pressure from Linux PSI (<c>/proc/pressure/memory</c>): a limiter input, absent on old kernels.</summary>
public static class MemoryPressure
{
    /// <summary>The "some avg10" percentage: share of the last 10 s in which some task stalled on memory. Null if unavailable.</summary>
    public static double? Read(string path = "/proc/pressure/memory")
    {
        try { return Parse(File.ReadAllText(path)); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return null; }
    }

    /// <summary>Parses PSI text such as <c>some avg10=1.23 avg60=0.50 avg300=0.10 total=12345</c>.</summary>
    public static double? Parse(string text)
    {
        foreach (var line in text.Split('\n'))
        {
            if (!line.StartsWith("some ", StringComparison.Ordinal)) continue;
            foreach (var field in line.Split(' ', StringSplitOptions.RemoveEmptyEntries))
                if (field.StartsWith("avg10=", StringComparison.Ordinal)
                    && double.TryParse(field.AsSpan(6), NumberStyles.Float, CultureInfo.InvariantCulture, out var v))
                    return v;
        }
        return null;
    }
}
