namespace Sparky.Core.Tasks;

/// <summary>
/// When one task's progress is announced and stored: <c>task.progress</c> at most once per <see cref="EventEvery"/>, the
/// store at most once per <see cref="StoreEvery"/> while it changes and at once when the attempt has ended. The latest
/// value always wins and is never dropped (a trailing edge): a burst of lines is one event now and one with its last
/// value when the interval is up. Pure: the caller passes a monotonic time in ms and carries out what is due.
/// </summary>
public sealed class ProgressPace
{
    public const long EventEveryMs = 500;
    public const long StoreEveryMs = 2000;
    public static TimeSpan EventEvery => TimeSpan.FromMilliseconds(EventEveryMs);
    public static TimeSpan StoreEvery => TimeSpan.FromMilliseconds(StoreEveryMs);

    /// <summary>Bumped by each change; what was announced and stored is known by the version it had.</summary>
    private long _version, _published, _stored;
    private long _publishedAt = long.MinValue / 2, _storedAt = long.MinValue / 2;

    /// <summary>The progress last seen; null before any.</summary>
    public TaskProgress? Latest { get; private set; }

    /// <summary>A progress line was read. The same value again changes nothing: a task that repeats itself is not
    /// announced or stored again. Returns whether it changed.</summary>
    public bool Saw(TaskProgress progress)
    {
        if (Latest == progress) return false;
        Latest = progress;
        _version++;
        return true;
    }

    /// <summary>Whether the latest value is to be announced now; if so it counts as announced.</summary>
    public bool TakeEvent(long nowMs)
    {
        if (_published == _version || nowMs - _publishedAt < EventEveryMs) return false;
        (_published, _publishedAt) = (_version, nowMs);
        return true;
    }

    /// <summary>Whether the latest value is to be stored now (<paramref name="ended"/>: its attempt has ended, so at once,
    /// whatever the interval); if so it counts as stored.</summary>
    public bool TakeStore(long nowMs, bool ended)
    {
        if (_stored == _version || (!ended && nowMs - _storedAt < StoreEveryMs)) return false;
        (_stored, _storedAt) = (_version, nowMs);
        return true;
    }

    /// <summary>The latest value is announced and stored: nothing is owed.</summary>
    public bool Settled => _published == _version && _stored == _version;
}
