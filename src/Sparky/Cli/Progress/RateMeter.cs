using System.Globalization;

namespace Sparky.Cli.Progress;

/// <summary>
/// How fast something finishes (tasks of a wait or a plan): the count done over a sliding window, and the time
/// left at that rate. Pure: the time is passed in.
/// </summary>
internal sealed class RateMeter(TimeSpan window)
{
    /// <summary>Samples kept, at most one per <see cref="Spacing"/>: a caller may add one per event.</summary>
    private readonly Queue<(DateTimeOffset At, double Done)> _samples = new();
    private static readonly TimeSpan Spacing = TimeSpan.FromMilliseconds(500);
    private DateTimeOffset _lastKept = DateTimeOffset.MinValue;
    private double _done;

    public RateMeter() : this(TimeSpan.FromSeconds(30)) { }

    /// <summary>The count done at <paramref name="at"/>.</summary>
    public void Add(DateTimeOffset at, double done)
    {
        _done = done;
        if (_samples.Count > 0 && at - _lastKept < Spacing) return;
        _samples.Enqueue((at, done));
        _lastKept = at;
        // Keep one sample at or before the window's start: the base the rate is measured from.
        while (_samples.Count > 2 && _samples.ElementAt(1).At <= at - window) _samples.Dequeue();
    }

    /// <summary>Done per second over the window up to <paramref name="now"/>; null until a second has passed.</summary>
    public double? PerSecond(DateTimeOffset now)
    {
        if (_samples.Count == 0) return null;
        var (firstAt, firstDone) = _samples.Peek();
        double seconds = (now - firstAt).TotalSeconds;
        if (seconds < 1) return null;
        return Math.Max(0, _done - firstDone) / seconds;
    }

    /// <summary>How long <paramref name="remaining"/> more take at the current rate; null where the rate is not known or nothing moves.</summary>
    public TimeSpan? Eta(double remaining, DateTimeOffset now)
    {
        if (remaining <= 0) return TimeSpan.Zero;
        if (PerSecond(now) is not { } rate || rate <= 0) return null;
        double seconds = remaining / rate;
        return seconds > TimeSpan.FromDays(365).TotalSeconds ? null : TimeSpan.FromSeconds(seconds);
    }

    /// <summary>"2.5/s", or "12/min" below one a second.</summary>
    public static string RateText(double perSecond) => perSecond >= 1 || perSecond == 0
        ? perSecond.ToString(perSecond >= 10 ? "0" : "0.0", CultureInfo.InvariantCulture) + "/s"
        : (perSecond * 60).ToString(perSecond * 60 >= 10 ? "0" : "0.0", CultureInfo.InvariantCulture) + "/min";

    /// <summary>A duration in whole seconds for people: "42s", "3m05s", "2h10m".</summary>
    public static string DurationText(TimeSpan t) =>
        t.TotalMinutes < 1 ? $"{(int)Math.Ceiling(t.TotalSeconds)}s"
        : t.TotalHours < 1 ? $"{(int)t.TotalMinutes}m{t.Seconds:00}s"
        : $"{(int)t.TotalHours}h{t.Minutes:00}m";
}
