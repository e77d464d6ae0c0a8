using Sparky.Core.Limiting;

namespace Sparky.Core.Tests.Limiting;

/// <summary>Drives a limiter with a run of alike samples, in simulated time.</summary>
internal sealed class Feed(ILimiter limiter)
{
    public static readonly DateTimeOffset T0 = DateTimeOffset.Parse("2026-11-24T00:00:00Z");

    public DateTimeOffset Now { get; private set; } = T0;

    /// <summary>
    /// <paramref name="count"/> completions of <paramref name="runSeconds"/> each with the class running at
    /// its limit (or <paramref name="inFlight"/>), time moving on as a full class of such runs would complete.
    /// </summary>
    public Feed Samples(int count, double runSeconds, bool failed = false, int queued = 10, int? inFlight = null)
    {
        for (int i = 0; i < count; i++)
        {
            var running = inFlight ?? limiter.Limit;
            Now += TimeSpan.FromSeconds(runSeconds / Math.Max(1, running));
            limiter.OnSample(new LimiterSample(TimeSpan.FromSeconds(runSeconds), TimeSpan.FromSeconds(3), failed, running, queued, Now));
        }
        return this;
    }

    /// <summary>A failure every <paramref name="everySeconds"/>, <paramref name="count"/> times.</summary>
    public Feed Failures(int count, double everySeconds, double runSeconds = 1)
    {
        for (int i = 0; i < count; i++)
        {
            Now += TimeSpan.FromSeconds(everySeconds);
            limiter.OnSample(new LimiterSample(TimeSpan.FromSeconds(runSeconds), TimeSpan.Zero, true, limiter.Limit, 10, Now));
        }
        return this;
    }

    public Feed Pressure(double? gpu, double? memory)
    {
        limiter.OnPressure(new PressureSample(Now, gpu, memory));
        return this;
    }

    public Feed Wait(double seconds)
    {
        Now += TimeSpan.FromSeconds(seconds);
        return this;
    }
}
