using System.Runtime;

namespace Sparky.Server.Daemon;

/// <summary>
/// Gives a burst's memory back once the daemon is idle again.
/// </summary>
/// <remarks>
/// The GC keeps the memory a burst of work made it commit until its next collection (about 90 MB after 5,000
/// tasks, against a live heap of 8 MB), and an idle daemon allocates nothing that would start one. So every
/// <see cref="Period"/> the daemon looks at its counters, and once nothing has been queued, run or ended for a
/// whole period after some work, it makes one compacting collection that returns the free memory to the system:
/// a few milliseconds, once per burst, never while tasks wait or run.
/// </remarks>
public sealed class IdleTrim : IDisposable
{
    public static readonly TimeSpan Period = TimeSpan.FromSeconds(5);

    private readonly Func<Activity> _read;
    private readonly Timer _timer;
    private readonly Lock _gate = new();
    private Activity? _lastLook;
    private long _trimmedAtWork;

    /// <param name="read">The store's counters now: tasks queued or running, and a count that grows with every
    /// submission and end.</param>
    public IdleTrim(Func<Activity> read)
    {
        _read = read;
        _trimmedAtWork = read().Work; // what was recovered at start is not a burst of this run
        _timer = new Timer(_ => Look(), null, Period, Period);
    }

    /// <summary>Tasks queued or running, and submissions plus ends so far.</summary>
    public readonly record struct Activity(long Active, long Work);

    /// <summary>Whether to collect now: idle since the last look (nothing queued or running, no submission or end
    /// in between), and some work done since the last collection.</summary>
    public static bool ShouldTrim(Activity now, Activity? lastLook, long trimmedAtWork) =>
        now.Active == 0 && lastLook is { } last && last.Active == 0 && last.Work == now.Work && now.Work != trimmedAtWork;

    private void Look()
    {
        lock (_gate)
        {
            var now = _read();
            if (ShouldTrim(now, _lastLook, _trimmedAtWork))
            {
                GCSettings.LargeObjectHeapCompactionMode = GCLargeObjectHeapCompactionMode.CompactOnce;
                GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
                _trimmedAtWork = now.Work;
            }
            _lastLook = now;
        }
    }

    public void Dispose() => _timer.Dispose();
}
