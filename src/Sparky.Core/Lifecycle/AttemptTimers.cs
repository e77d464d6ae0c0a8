namespace Sparky.Core.Lifecycle;

/// <summary>What an attempt's timers owe at a moment: a SIGTERM for a timeout, a SIGKILL once a stop's grace is over.</summary>
[Flags]
public enum TimerDue { None = 0, Terminate = 1, Kill = 2 }

/// <summary>
/// An attempt's timers, apart from any clock or I/O: its timeout (<c>deadline</c>), which stops it unless another stop
/// stands, and the SIGKILL owed a grace after a stop (<c>killAt</c>). The engine passes the time in, carries out what
/// is due, and sleeps until <see cref="Next"/>.
/// </summary>
public static class AttemptTimers
{
    /// <summary>What is due at <paramref name="now"/>. A timeout that fires sets <paramref name="stop"/> (so the end is
    /// recorded as a timeout) and owes a SIGTERM; a kill that falls due is owed once, and cleared.</summary>
    public static TimerDue Due(DateTimeOffset? deadline, ref DateTimeOffset? killAt, ref StopReason stop, DateTimeOffset now)
    {
        var due = TimerDue.None;
        if (deadline is { } d && d <= now && AttemptEnd.TryStop(ref stop, StopReason.Timeout)) due |= TimerDue.Terminate;
        if (killAt is { } k && k <= now)
        {
            due |= TimerDue.Kill;
            killAt = null;
        }
        return due;
    }

    /// <summary>When the attempt's timers must next be looked at: its timeout while it is not being stopped, and a kill owed.</summary>
    public static DateTimeOffset? Next(DateTimeOffset? deadline, DateTimeOffset? killAt, StopReason stop)
    {
        DateTimeOffset? next = stop == StopReason.None ? deadline : null;
        if (killAt is { } k && (next is null || k < next)) next = k;
        return next;
    }
}

/// <summary>When a timeout fires. Submit refuses one past a year, but a task stored before that check may hold any
/// double: past what a date can hold it never fires rather than throwing on every start.</summary>
public static class Deadlines
{
    public static DateTimeOffset? After(DateTimeOffset start, double? seconds)
    {
        if (seconds is not { } s || double.IsNaN(s)) return null;
        var room = (DateTimeOffset.MaxValue - start).TotalSeconds;
        return s >= room ? DateTimeOffset.MaxValue : start.AddSeconds(Math.Max(0, s));
    }
}
