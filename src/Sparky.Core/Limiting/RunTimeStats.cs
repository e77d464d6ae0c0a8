namespace Sparky.Core.Limiting;

/// <summary>
/// Run time of a class's successful attempts, in seconds: a short-window average (what the resource gives now)
/// and a baseline (what it gives when not crowded).
/// </summary>
/// <remarks>
/// The baseline is a long-window minimum of the short average: it drops at once to a new low and rises only
/// slowly, so a limit that crowds the resource shows up as short well above baseline, while a real, lasting
/// change in the tasks' length is absorbed after a few hundred samples. The minimum is taken of the average,
/// not of single samples, because one lucky fast task would otherwise set a baseline nothing can meet.
/// </remarks>
public sealed class RunTimeStats(double shortWeight = 0.1, double baselineRise = 0.002)
{
    /// <summary>Samples before the averages are trusted.</summary>
    public const int Warmup = 10;

    public int Count { get; private set; }
    public double Short { get; private set; }
    public double Baseline { get; private set; }
    public bool Ready => Count >= Warmup;

    /// <summary>Short over baseline: 1 when uncrowded, above 1 as the resource gets crowded.</summary>
    public double Ratio => Baseline > 0 ? Short / Baseline : 1;

    public void Add(double seconds)
    {
        // A zero-length run (clock granularity) would pin the baseline at 0; keep it positive.
        seconds = Math.Max(seconds, 1e-6);
        if (Count == 0)
        {
            Short = Baseline = seconds;
        }
        else
        {
            Short += (seconds - Short) * shortWeight;
            // Until warm, the short average is still mostly its first sample: the baseline just follows it.
            if (Count < Warmup || Short < Baseline) Baseline = Short;
            else Baseline += (Short - Baseline) * baselineRise;
        }
        Count++;
    }
}
