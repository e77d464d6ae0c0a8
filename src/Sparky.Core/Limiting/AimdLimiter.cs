namespace Sparky.Core.Limiting;

/// <summary>
/// Additive increase, multiplicative decrease: the default. While attempts succeed with run time within
/// <see cref="Tolerance"/> of the baseline and work is queued, it grows a little per round of completions;
/// on a failure or on run time beyond tolerance it cuts by <see cref="Backoff"/> (and, in the base, on memory
/// pressure).
/// </summary>
/// <remarks>
/// Needs no model of the resource, only a clear overload signal; its cost is a sawtooth around the best limit,
/// kept small by a gentle cut and a slow creep back (every probe past the knee costs failed and slow runs).
/// Two additions keep it from being slow when far from the knee: slow start (one more per completion until
/// the first overload) and growth that speeds up the longer nothing overloads.
/// </remarks>
public sealed class AimdLimiter : AdaptiveLimiter
{
    /// <summary>Quiet rounds after which the growth step has doubled.</summary>
    private const double AccelerationRounds = 10;

    private bool _slowStart = true;
    private double _roundsSinceCut;

    public AimdLimiter(int min, int max, int initial, double backoff = 0.95, double tolerance = 1.4, double increase = 0.05)
        : base(min, max, initial)
    {
        if (backoff is <= 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(backoff), backoff, "must be in (0, 1)");
        if (tolerance <= 1) throw new ArgumentOutOfRangeException(nameof(tolerance), tolerance, "must be above 1");
        if (increase is <= 0 or > 1) throw new ArgumentOutOfRangeException(nameof(increase), increase, "must be in (0, 1]");
        Backoff = backoff;
        Tolerance = tolerance;
        Increase = increase;
    }

    public override string Algorithm => "aimd";

    /// <summary>Factor applied to the limit on an overload signal.</summary>
    public double Backoff { get; }

    /// <summary>Short-window run time over baseline above which the resource counts as crowded.</summary>
    public double Tolerance { get; }

    /// <summary>Growth per round of completions just after a cut.</summary>
    public double Increase { get; }

    protected override double Propose(in LimiterSample s)
    {
        var overloaded = s.Failed || (RunTimeMeaningful(s.Now) && RunTime.Ratio > Tolerance);
        if (overloaded)
        {
            // Slow start may have doubled past the knee in its last round: leave it with the largest cut one
            // sample may make, then back off gently.
            var next = Decreased(s.Now, _slowStart ? 1 - MaxStepFraction : Backoff);
            if (next < Estimate)
            {
                _slowStart = false;
                _roundsSinceCut = 0;
            }
            return next;
        }
        // Slow start: one more per completion (doubling per round) until the first overload, so a class that
        // starts low reaches its working range in a few rounds, not dozens of long task run times.
        if (_slowStart) return Estimate + 1;
        // Just after a cut the limit is near the knee: creep. The longer nothing overloads, the likelier the
        // knee has moved up, so the step grows by a tenth of itself per quiet round, up to one per round.
        _roundsSinceCut += 1.0 / Estimate;
        var perRound = Math.Min(1.0, Increase * (1 + _roundsSinceCut / AccelerationRounds));
        return Estimate + perRound / Estimate;
    }
}
