namespace Sparky.Core.Limiting;

/// <summary>Builds a limiter from its configured name.</summary>
public static class Limiters
{
    /// <summary>The algorithm used when config names none.</summary>
    public const string Default = "aimd";

    /// <summary>Every name <see cref="Create"/> accepts (lower case; matching ignores case).</summary>
    public static IReadOnlyList<string> Names { get; } = ["aimd", "vegas", "gradient2", "fixed"];

    /// <summary>True when <paramref name="algorithm"/> names a known limiter (any case).</summary>
    public static bool IsKnown(string? algorithm) =>
        algorithm is not null && Names.Contains(algorithm.Trim().ToLowerInvariant());

    /// <summary>
    /// A limiter of the named algorithm, bounded by [min, max] and starting at <paramref name="initial"/>
    /// (clamped into the bounds). Throws <see cref="ArgumentException"/> for an unknown name, and
    /// <see cref="ArgumentOutOfRangeException"/> when min &lt; 1 or max &lt; min.
    /// </summary>
    public static ILimiter Create(string algorithm, int min, int max, int initial)
    {
        ArgumentNullException.ThrowIfNull(algorithm);
        return algorithm.Trim().ToLowerInvariant() switch
        {
            "aimd" => new AimdLimiter(min, max, initial),
            "vegas" => new VegasLimiter(min, max, initial),
            "gradient2" => new Gradient2Limiter(min, max, initial),
            "fixed" => new FixedLimiter(min, max, initial),
            _ => throw new ArgumentException(
                $"unknown limiter '{algorithm}'; use one of: {string.Join(", ", Names)}", nameof(algorithm)),
        };
    }

    internal static void CheckBounds(int min, int max)
    {
        if (min < 1) throw new ArgumentOutOfRangeException(nameof(min), min, "a limiter's min must be at least 1");
        if (max < min) throw new ArgumentOutOfRangeException(nameof(max), max, $"a limiter's max must be at least its min ({min})");
    }
}
