namespace Sparky.Core.Limiting;

/// <summary>
/// TCP Vegas applied to tasks: from run time against its baseline it estimates how many attempts are queued
/// inside the resource, <c>limit × (1 − baseline / short)</c>, and steers that towards a small band
/// [alpha, beta] that grows with log10 of the limit: below alpha it grows, above beta it shrinks. A failure, or
/// run time doubled against its baseline, cuts by <see cref="Backoff"/> instead.
/// </summary>
/// <remarks>It backs off before failures appear, as soon as run time stretches; it relies on run time
/// rising with crowding, which holds for shared CPUs, disks and GPUs but not for a resource that fails
/// without slowing down (the failure signal still covers that).</remarks>
public sealed class VegasLimiter : AdaptiveLimiter
{
    public VegasLimiter(int min, int max, int initial, double alpha = 1, double beta = 2, double backoff = 0.95)
        : base(min, max, initial)
    {
        if (alpha <= 0 || beta <= alpha) throw new ArgumentOutOfRangeException(nameof(beta), beta, "need 0 < alpha < beta");
        if (backoff is <= 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(backoff), backoff, "must be in (0, 1)");
        Alpha = alpha;
        Beta = beta;
        Backoff = backoff;
    }

    public override string Algorithm => "vegas";

    /// <summary>Queued-inside estimate, per log10 of the limit, below which the limit grows.</summary>
    public double Alpha { get; }

    /// <summary>Queued-inside estimate, per log10 of the limit, above which the limit shrinks.</summary>
    public double Beta { get; }

    /// <summary>Factor applied on a failure.</summary>
    public double Backoff { get; }

    protected override double Propose(in LimiterSample s)
    {
        if (s.Failed) return Decreased(s.Now, Backoff);
        var e = Estimate;
        // Without a trusted run time, grow as AIMD does (one per round) and let failures bound it.
        if (!RunTimeMeaningful(s.Now)) return e + 1.0 / e;

        // Run time doubled or worse: well past any queue band, cut as on a failure rather than step down.
        if (RunTime.Ratio >= 2) return Decreased(s.Now, Backoff);

        // log10 scales the band with the limit (a large limit tolerates a few more queued), at least 1.
        var scale = Math.Max(1.0, Math.Log10(e));
        var queued = e * (1 - 1 / RunTime.Ratio);
        // Moves are per round of completions (1/limit per sample), as Vegas moves once per round trip.
        if (queued <= scale) return e + Beta * scale / e;     // nearly nothing queued: grow fast
        if (queued < Alpha * scale) return e + scale / e;
        if (queued > Beta * scale) return e - scale / e;
        return e;
    }
}
