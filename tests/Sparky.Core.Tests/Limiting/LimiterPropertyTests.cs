using FsCheck.Xunit;
using Sparky.Core.Limiting;

namespace Sparky.Core.Tests.Limiting;

/// <summary>Random sample and pressure sequences: the limit stays within [min, max] and moves by a bounded step.</summary>
public sealed class LimiterPropertyTests
{
    [Property(MaxTest = 300)]
    public void Limit_stays_in_bounds_and_moves_by_a_bounded_step(int seed)
    {
        var rng = new Random(seed);
        var min = rng.Next(1, 20);
        var max = min + rng.Next(0, 100);
        var l = Limiters.Create(Limiters.Names[rng.Next(Limiters.Names.Count)], min, max, rng.Next(-5, max + 20));
        var now = Feed.T0;
        Assert.InRange(l.Limit, min, max);
        for (int step = 0; step < 2000; step++)
        {
            var before = l.Limit;
            now += TimeSpan.FromMilliseconds(rng.Next(0, 5000));
            if (rng.NextDouble() < 0.05)
            {
                double? gpu = rng.NextDouble() < 0.5 ? null : rng.NextDouble();
                double? mem = rng.NextDouble() < 0.3 ? null : rng.NextDouble() * 100;
                l.OnPressure(new PressureSample(now, gpu, mem));
            }
            else
            {
                var run = TimeSpan.FromSeconds(rng.NextDouble() < 0.1 ? 0 : Math.Exp(rng.NextDouble() * 8 - 3));
                l.OnSample(new LimiterSample(run, TimeSpan.FromSeconds(rng.NextDouble()), rng.NextDouble() < 0.2,
                    rng.Next(0, max + 10), rng.Next(0, 3) * rng.Next(0, 50), now));
            }
            Assert.InRange(l.Limit, min, max);
            // At most a quarter of the limit (at least 1) per input, plus 1 for rounding down.
            var bound = Math.Max(1, before * AdaptiveLimiter.MaxStepFraction) + 1;
            Assert.True(Math.Abs(l.Limit - before) <= bound, $"{l.Algorithm}: {before} -> {l.Limit} in one step");
        }
    }
}
