namespace Sparky.Embeddings.Batching;

/// <summary>
/// How fast inputs arrive, for <see cref="BatchPlanner.Delay"/>: an exponentially weighted mean of the time between
/// arrivals, per input. Pure: the caller passes each arrival's time (seconds on any steady clock) and its input count.
/// A pause counts as one long gap, so after it the rate is low and the next input runs at once.
/// </summary>
public sealed class ArrivalRate
{
    /// <summary>The weight of the newest gap: about the last ten arrivals count.</summary>
    private const double Weight = 0.1;
    private double _meanGap = 1; // seconds an input; starts low (one a second) so that nothing waits before a load is seen
    private double? _last;

    /// <summary>Inputs a second, as now estimated.</summary>
    public double PerSecond => 1 / Math.Max(_meanGap, 1e-9);

    public void Observe(double atSeconds, int inputs)
    {
        if (inputs <= 0) return;
        if (_last is { } last)
        {
            double gap = Math.Max(0, atSeconds - last) / inputs;
            // Each of a request's inputs is an arrival: a request of n counts as n arrivals a gap/n apart.
            double keep = Math.Pow(1 - Weight, inputs);
            _meanGap = keep * _meanGap + (1 - keep) * gap;
        }
        _last = atSeconds;
    }
}
