namespace Sparky.Core.Limiting;

/// <summary>A limit that never moves: the configured one, whatever the samples say.</summary>
public sealed class FixedLimiter : ILimiter
{
    public FixedLimiter(int limit) : this(limit, limit, limit) { }

    /// <summary>Takes the same arguments as the adaptive ones, so config can switch freely; the limit is
    /// <paramref name="initial"/> clamped into [min, max].</summary>
    public FixedLimiter(int min, int max, int initial)
    {
        Limiters.CheckBounds(min, max);
        Min = min;
        Max = max;
        Limit = Math.Clamp(initial, min, max);
    }

    public string Algorithm => "fixed";
    public int Min { get; }
    public int Max { get; }
    public int Limit { get; }
    public int OnSample(in LimiterSample sample) => Limit;
    public int OnPressure(in PressureSample pressure) => Limit;
}
