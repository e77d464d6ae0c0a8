using Sparky.Core.Time;

namespace Sparky.Core.Tests.Time;

public sealed class SteadyClockTests
{
    /// <summary>A wall clock and a monotonic counter that tests move separately.</summary>
    private sealed class ManualClock : TimeProvider
    {
        public DateTimeOffset Wall = new(2026, 12, 3, 12, 0, 0, TimeSpan.Zero);
        public long Ticks;
        public override DateTimeOffset GetUtcNow() => Wall;
        public override long GetTimestamp() => Ticks;
        public override long TimestampFrequency => TimeSpan.TicksPerSecond;
    }

    [Fact]
    public void It_starts_at_the_wall_time_and_advances_with_the_monotonic_clock_only()
    {
        var inner = new ManualClock();
        var steady = new SteadyClock(inner);
        Assert.Equal(inner.Wall, steady.GetUtcNow());

        inner.Ticks += TimeSpan.FromSeconds(5).Ticks;
        Assert.Equal(inner.Wall.AddSeconds(5), steady.GetUtcNow());

        // A step of the wall clock, either way, moves nothing.
        var before = steady.GetUtcNow();
        inner.Wall = inner.Wall.AddHours(3);
        Assert.Equal(before, steady.GetUtcNow());
        inner.Wall = inner.Wall.AddHours(-6);
        Assert.Equal(before, steady.GetUtcNow());

        inner.Ticks += TimeSpan.FromSeconds(1).Ticks;
        Assert.Equal(before.AddSeconds(1), steady.GetUtcNow());
    }
}
