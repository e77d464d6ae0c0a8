namespace Sparky.Core.Time;

/// <summary>
/// Wall-clock time that never jumps: the wall time when it was made plus the monotonic time elapsed since.
/// The engine's timers (timeouts, kill graces, retry backoffs, adoption deadlines) run on it, so a wall-clock step
/// (NTP correcting a machine without a battery-backed clock, an operator's <c>date -s</c>) neither fires a timeout
/// early nor holds a retry back. The cost: after a step, the times it stamps differ from the wall by the step until
/// the daemon restarts (and it stands still while the machine sleeps, as the tasks do).
/// </summary>
public sealed class SteadyClock : TimeProvider
{
    private readonly TimeProvider _inner;
    private readonly DateTimeOffset _anchor;
    private readonly long _anchorTicks;

    public SteadyClock(TimeProvider inner)
    {
        _inner = inner;
        _anchor = inner.GetUtcNow();
        _anchorTicks = inner.GetTimestamp();
    }

    public override DateTimeOffset GetUtcNow() => _anchor + _inner.GetElapsedTime(_anchorTicks);
    public override long GetTimestamp() => _inner.GetTimestamp();
    public override long TimestampFrequency => _inner.TimestampFrequency;
    public override TimeZoneInfo LocalTimeZone => _inner.LocalTimeZone;
    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period) =>
        _inner.CreateTimer(callback, state, dueTime, period);
}
