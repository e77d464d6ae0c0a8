using System.Runtime.InteropServices;
using System.Text;
using Microsoft.Extensions.Logging;
using Sparky.Server.Daemon;

namespace Sparky.Server.Intake;

/// <summary>
/// inotify on one directory, read on a thread of its own: each event is handed to <c>post</c> as it comes. Unlike
/// FileSystemWatcher it reports <c>IN_OPEN</c>, <c>IN_MODIFY</c> and <c>IN_CLOSE_WRITE</c>, which is how the drop
/// directory knows whether a file written in place still has a writer.
/// </summary>
internal sealed class PendingWatch : IDisposable
{
    /// <summary>One event: the watch it came from, its mask, and the entry's name (null for an event on the directory itself).</summary>
    public readonly record struct Change(int Wd, uint Mask, string? Name);

    private const uint Events = Posix.IN_CREATE | Posix.IN_OPEN | Posix.IN_MODIFY | Posix.IN_CLOSE_WRITE | Posix.IN_CLOSE_NOWRITE
        | Posix.IN_MOVED_TO | Posix.IN_MOVED_FROM | Posix.IN_DELETE | Posix.IN_DELETE_SELF | Posix.IN_MOVE_SELF
        | Posix.IN_ONLYDIR | Posix.IN_EXCL_UNLINK;

    private readonly int _fd, _wakeRead, _wakeWrite;
    private readonly Action<Change> _post;
    private readonly ILogger _log;
    private readonly Thread _thread;
    private volatile bool _stopping, _failed;

    /// <summary>The reader met an error it cannot go on from: events no longer come (the drop directory scans instead).</summary>
    public bool Failed => _failed;

    private PendingWatch(int fd, int wakeRead, int wakeWrite, Action<Change> post, ILogger log)
    {
        (_fd, _wakeRead, _wakeWrite, _post, _log) = (fd, wakeRead, wakeWrite, post, log);
        _thread = new Thread(Loop) { IsBackground = true, Name = "sparky-drop-inotify" };
    }

    /// <summary>An inotify instance and its reader; null with the reason where the kernel gives none (the per-user
    /// limit on instances, say).</summary>
    public static PendingWatch? Start(Action<Change> post, ILogger log, out string? problem)
    {
        int fd = Posix.InotifyInit(out int err);
        if (fd < 0)
        {
            problem = $"inotify_init1: {Posix.Describe(err)}";
            return null;
        }
        err = Posix.Pipe(out int r, out int w);
        if (err != 0)
        {
            Posix.Close(fd);
            problem = $"pipe2: {Posix.Describe(err)}";
            return null;
        }
        var watch = new PendingWatch(fd, r, w, post, log);
        watch._thread.Start();
        problem = null;
        return watch;
    }

    /// <summary>Watches <paramref name="dir"/>: the watch descriptor, or -1 with the reason.</summary>
    public int Add(string dir, out string? problem)
    {
        int wd = Posix.InotifyAddWatch(_fd, dir, Events, out int err);
        problem = wd < 0 ? $"inotify_add_watch {dir}: {Posix.Describe(err)}" : null;
        return wd;
    }

    public void Remove(int wd) => Posix.InotifyRemoveWatch(_fd, wd);

    private void Loop()
    {
        // struct inotify_event is 16 bytes, then the name (padded). 64 KiB holds thousands of events per read.
        var buffer = new byte[64 * 1024];
        while (!_stopping)
        {
            int which = Posix.WaitReadable(_fd, _wakeRead, out int err);
            if (which < 0)
            {
                if (err == Posix.EINTR) continue;
                IntakeLog.PollFailed(_log, Posix.Describe(err));
                _failed = true;
                return;
            }
            if (which == 1 || _stopping) return;
            while (true)
            {
                int n = Posix.Read(_fd, buffer, out err);
                if (n < 0)
                {
                    if (err == Posix.EINTR) continue;
                    if (err == Posix.EAGAIN) break; // all read
                    if (_stopping) return;
                    IntakeLog.InotifyReadFailed(_log, Posix.Describe(err));
                    _failed = true;
                    return;
                }
                int at = 0;
                while (at + 16 <= n)
                {
                    var span = buffer.AsSpan(at);
                    int wd = MemoryMarshal.Read<int>(span);
                    uint mask = MemoryMarshal.Read<uint>(span[4..]);
                    int len = (int)MemoryMarshal.Read<uint>(span[12..]);
                    string? name = null;
                    if (len > 0)
                    {
                        var raw = span.Slice(16, len);
                        int end = raw.IndexOf((byte)0);
                        name = Encoding.UTF8.GetString(end < 0 ? raw : raw[..end]);
                    }
                    _post(new Change(wd, mask, name));
                    at += 16 + len;
                }
            }
        }
    }

    public void Dispose()
    {
        _stopping = true;
        Posix.WriteByte(_wakeWrite);
        _thread.Join(TimeSpan.FromSeconds(2));
        Posix.Close(_fd);
        Posix.Close(_wakeRead);
        Posix.Close(_wakeWrite);
    }
}
