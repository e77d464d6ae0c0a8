namespace Sparky.Core.Limiting;

/// <summary>
/// Gradient2: compares the short-window run time with a long-window average of it. The gradient
/// <c>tolerance × long / short</c>, clamped to [0.5, 1], scales the limit down as run time stretches beyond
/// tolerance; a queue allowance of √limit is added so the limit probes upwards while the gradient is 1.
/// The result is smoothed.
/// </summary>
/// <remarks>Tracks a moving optimum without a minimum to hold on to: the long average follows a lasting change.
/// When the short window drops well below the long one (load went away), the long one decays quickly so the
/// next rise is judged against what the resource gives now.</remarks>
public sealed class Gradient2Limiter : AdaptiveLimiter
{
    private double _long;

    public Gradient2Limiter(int min, int max, int initial, double tolerance = 1.5, double smoothing = 0.05,
        int longWindow = 600, double backoff = 0.9)
        : base(min, max, initial)
    {
        if (tolerance < 1) throw new ArgumentOutOfRangeException(nameof(tolerance), tolerance, "must be at least 1");
        if (smoothing is <= 0 or > 1) throw new ArgumentOutOfRangeException(nameof(smoothing), smoothing, "must be in (0, 1]");
        if (longWindow < 1) throw new ArgumentOutOfRangeException(nameof(longWindow), longWindow, "must be at least 1");
        if (backoff is <= 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(backoff), backoff, "must be in (0, 1)");
        Tolerance = tolerance;
        Smoothing = smoothing;
        LongWindow = longWindow;
        Backoff = backoff;
    }

    public override string Algorithm => "gradient2";
    public double Tolerance { get; }
    public double Smoothing { get; }
    public int LongWindow { get; }
    public double Backoff { get; }

    /// <summary>The long-window average run time, in seconds (0 before the first success).</summary>
    public double LongRunTime => _long;

    protected override double Propose(in LimiterSample s)
    {
        if (s.Failed) return Decreased(s.Now, Backoff);
        var shortRt = RunTime.Short;
        _long = _long == 0 ? shortRt : _long + (shortRt - _long) / LongWindow;
        // Load went away: let the long average catch up downwards instead of waiting hundreds of samples.
        if (_long > 2 * shortRt) _long *= 0.95;

        var e = Estimate;
        var gradient = RunTimeMeaningful(s.Now) ? Math.Clamp(Tolerance * _long / shortRt, 0.5, 1.0) : 1.0;
        var wanted = e * gradient + Math.Sqrt(e);
        // Down: a smoothing step per sample, since stretched run times are urgent. Up: one per round of
        // completions (1/limit of it per sample), so the queue allowance probes gently.
        return wanted < e ? e + (wanted - e) * Smoothing : e + (wanted - e) * Smoothing / e;
    }
}
