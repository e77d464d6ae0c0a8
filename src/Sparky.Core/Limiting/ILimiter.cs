namespace Sparky.Core.Limiting;

/// <summary>
/// A concurrency limit for one class of tasks, adapting within [<see cref="Min"/>, <see cref="Max"/>].
/// </summary>
/// <remarks>
/// Pure: no I/O, no threads, no clock (time comes in with each sample); not thread-safe, the caller owns it
/// from one thread. The limiter only reports a limit: when it shrinks, running tasks go on, and the scheduler
/// starts no new ones until the class runs below the limit again. Nothing is ever killed because of it.
/// </remarks>
public interface ILimiter
{
    /// <summary>The algorithm's name as <see cref="Limiters.Create"/> takes it.</summary>
    string Algorithm { get; }

    int Min { get; }
    int Max { get; }

    /// <summary>How many attempts of the class may run at once now; always within [Min, Max].</summary>
    int Limit { get; }

    /// <summary>Feeds one finished attempt; returns the limit after it.</summary>
    int OnSample(in LimiterSample sample);

    /// <summary>Feeds the periodic outside signals; returns the limit after them.</summary>
    int OnPressure(in PressureSample pressure);
}
