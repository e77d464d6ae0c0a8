using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Sparky.Server.Daemon;

/// <summary>
/// The few libc calls .NET's file API has no way to make: open without following a link and without waiting on a
/// FIFO, the type and identity (device, inode, change time) of an entry or an open handle, rename of any entry, and
/// flock on a directory. Source-generated (LibraryImport): no runtime marshalling, so the native build makes the
/// same calls. And inotify, for the drop directory (<see cref="Sparky.Server.Intake.PendingWatch"/>).
/// </summary>
internal static unsafe partial class Posix
{
    private const string Lib = "libc";

    public const int ENOENT = 2, EINTR = 4, EAGAIN = 11, ENOMEM = 12, EACCES = 13, EEXIST = 17, ENOTDIR = 20, EISDIR = 21,
        ENFILE = 23, EMFILE = 24, ENOTEMPTY = 39, ELOOP = 40, EPERM = 1, EWOULDBLOCK = EAGAIN;

    private const int O_RDONLY = 0, O_NONBLOCK = 0x800, O_CLOEXEC = 0x80000;
    private const int AT_FDCWD = -100, AT_SYMLINK_NOFOLLOW = 0x100, AT_EMPTY_PATH = 0x1000;
    private const uint STATX_BASIC_STATS = 0x7ff;
    private const int LOCK_EX = 2, LOCK_NB = 4;

    // O_NOFOLLOW and O_DIRECTORY are the two flags whose values differ between the architectures .NET runs on. Where
    // neither value is known, opening still works: the handle's own type and identity are checked against the path's.
    private static readonly int O_NOFOLLOW = RuntimeInformation.ProcessArchitecture switch
    {
        Architecture.X64 or Architecture.X86 => 0x20000,
        Architecture.Arm64 or Architecture.Arm => 0x8000,
        _ => 0,
    };
    private static readonly int O_DIRECTORY = RuntimeInformation.ProcessArchitecture switch
    {
        Architecture.X64 or Architecture.X86 => 0x10000,
        Architecture.Arm64 or Architecture.Arm => 0x4000,
        _ => 0,
    };

    public enum Kind { Regular, Directory, Link, Fifo, Socket, CharDevice, BlockDevice, Unknown }

    /// <summary>What <c>statx</c> says of an entry: enough to tell what it is and whether it is the same file as before.</summary>
    public readonly record struct Entry(Kind Kind, uint Mode, uint Uid, ulong Size, ulong Device, ulong Inode, long MtimeNs, long CtimeNs)
    {
        public bool SameFileAs(Entry other) => Device == other.Device && Inode == other.Inode;
    }

    /// <summary>The entry at <paramref name="path"/>, a link itself rather than what it points to; or the errno.</summary>
    public static int LStat(string path, out Entry entry) => Stat(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW, out entry);

    /// <summary>The file an open handle is on.</summary>
    public static int FStat(SafeFileHandle handle, out Entry entry)
    {
        bool added = false;
        handle.DangerousAddRef(ref added);
        try { return Stat((int)handle.DangerousGetHandle(), "", AT_EMPTY_PATH, out entry); }
        finally { if (added) handle.DangerousRelease(); }
    }

    private static int Stat(int dirFd, string path, int flags, out Entry entry)
    {
        if (statx(dirFd, path, flags, STATX_BASIC_STATS, out var s) != 0)
        {
            entry = default;
            return Marshal.GetLastPInvokeError();
        }
        var kind = (s.Mode & 0xF000) switch
        {
            0x8000 => Kind.Regular, 0x4000 => Kind.Directory, 0xA000 => Kind.Link, 0x1000 => Kind.Fifo,
            0xC000 => Kind.Socket, 0x2000 => Kind.CharDevice, 0x6000 => Kind.BlockDevice, _ => Kind.Unknown,
        };
        entry = new Entry(kind, s.Mode & 0xFFFu, s.Uid, s.Size, ((ulong)s.DevMajor << 32) | s.DevMinor, s.Ino,
            s.MtimeSec * 1_000_000_000 + s.MtimeNsec, s.CtimeSec * 1_000_000_000 + s.CtimeNsec);
        return 0;
    }

    /// <summary>Opens a file to read it: never through a link (the open fails with ELOOP), and never waiting for a writer
    /// (a FIFO opens at once); closed on exec. The handle, or null and the errno.</summary>
    public static SafeFileHandle? OpenToRead(string path, out int errno)
    {
        int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0);
        errno = fd < 0 ? Marshal.GetLastPInvokeError() : 0;
        return fd < 0 ? null : new SafeFileHandle(fd, ownsHandle: true);
    }

    /// <summary>Opens a file to read it, through links (as the replaced runner read a declared output), never waiting
    /// for a writer (a FIFO opens at once); closed on exec. The handle, or null and the errno.</summary>
    public static SafeFileHandle? OpenFollowing(string path, out int errno)
    {
        int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC, 0);
        errno = fd < 0 ? Marshal.GetLastPInvokeError() : 0;
        return fd < 0 ? null : new SafeFileHandle(fd, ownsHandle: true);
    }

    /// <summary>rename(2): moves any entry (a FIFO, a directory, a link as the link), replacing a file at the target.</summary>
    public static int Rename(string from, string to) => rename(from, to) == 0 ? 0 : Marshal.GetLastPInvokeError();

    /// <summary>
    /// Takes an exclusive flock on a directory, held for as long as the returned handle is open (and by nobody after
    /// the process dies). Null with <paramref name="errno"/> EWOULDBLOCK where another open of it holds the lock, or
    /// the errno of what failed (a file system without flock on directories answers EBADF, ENOLCK or EINVAL).
    /// </summary>
    public static SafeFileHandle? LockDirectory(string path, out int errno)
    {
        int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
        if (fd < 0)
        {
            errno = Marshal.GetLastPInvokeError();
            return null;
        }
        var handle = new SafeFileHandle(fd, ownsHandle: true);
        if (flock(fd, LOCK_EX | LOCK_NB) != 0)
        {
            errno = Marshal.GetLastPInvokeError();
            handle.Dispose();
            return null;
        }
        errno = 0;
        return handle;
    }

    public static string Describe(int errno) => Marshal.GetPInvokeErrorMessage(errno);

    // inotify(7): FileSystemWatcher reports neither IN_CLOSE_WRITE nor IN_OPEN, and those are how the drop directory
    // knows that a file written in place has been closed by its writer. The flags' values are the same on every
    // Linux architecture .NET runs on (IN_NONBLOCK is O_NONBLOCK, IN_CLOEXEC is O_CLOEXEC).
    public const uint IN_MODIFY = 0x2, IN_CLOSE_WRITE = 0x8, IN_CLOSE_NOWRITE = 0x10, IN_OPEN = 0x20, IN_MOVED_FROM = 0x40,
        IN_MOVED_TO = 0x80, IN_CREATE = 0x100, IN_DELETE = 0x200, IN_DELETE_SELF = 0x400, IN_MOVE_SELF = 0x800,
        IN_Q_OVERFLOW = 0x4000, IN_IGNORED = 0x8000, IN_ONLYDIR = 0x1000000, IN_EXCL_UNLINK = 0x4000000, IN_ISDIR = 0x40000000;

    /// <summary>A non-blocking inotify descriptor, closed on exec; -1 and the errno on failure.</summary>
    public static int InotifyInit(out int errno)
    {
        int fd = inotify_init1(O_NONBLOCK | O_CLOEXEC);
        errno = fd < 0 ? Marshal.GetLastPInvokeError() : 0;
        return fd;
    }

    /// <summary>The watch descriptor, or -1 and the errno.</summary>
    public static int InotifyAddWatch(int fd, string path, uint mask, out int errno)
    {
        int wd = inotify_add_watch(fd, path, mask);
        errno = wd < 0 ? Marshal.GetLastPInvokeError() : 0;
        return wd;
    }

    public static void InotifyRemoveWatch(int fd, int wd) => inotify_rm_watch(fd, wd);

    /// <summary>A pipe whose two ends are non-blocking and closed on exec: (read end, write end), or the errno.</summary>
    public static unsafe int Pipe(out int readFd, out int writeFd)
    {
        int* fds = stackalloc int[2];
        if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0)
        {
            readFd = writeFd = -1;
            return Marshal.GetLastPInvokeError();
        }
        (readFd, writeFd) = (fds[0], fds[1]);
        return 0;
    }

    /// <summary>Waits until one of the two descriptors can be read: 0 for the first, 1 for the second, -1 with the errno.</summary>
    public static unsafe int WaitReadable(int first, int second, out int errno)
    {
        const short POLLIN = 1;
        var fds = stackalloc PollFd[2];
        fds[0] = new PollFd { Fd = first, Events = POLLIN };
        fds[1] = new PollFd { Fd = second, Events = POLLIN };
        errno = 0;
        if (poll(fds, 2, -1) < 0)
        {
            errno = Marshal.GetLastPInvokeError();
            return -1;
        }
        return fds[0].Revents != 0 ? 0 : 1;
    }

    /// <summary>read(2) into <paramref name="buffer"/>: the count, or -1 with the errno.</summary>
    public static unsafe int Read(int fd, Span<byte> buffer, out int errno)
    {
        fixed (byte* p = buffer)
        {
            nint n = read(fd, p, (nuint)buffer.Length);
            errno = n < 0 ? Marshal.GetLastPInvokeError() : 0;
            return (int)n;
        }
    }

    public static unsafe void WriteByte(int fd)
    {
        byte b = 1;
        _ = write(fd, &b, 1);
    }

    public static void Close(int fd) => close(fd);

    [StructLayout(LayoutKind.Sequential)]
    private struct PollFd
    {
        public int Fd;
        public short Events;
        public short Revents;
    }

    /// <summary>struct statx: the same layout on every Linux architecture (256 bytes).</summary>
    [StructLayout(LayoutKind.Explicit, Size = 256)]
    private struct Statx
    {
        [FieldOffset(20)] public uint Uid;
        [FieldOffset(28)] public ushort Mode;
        [FieldOffset(32)] public ulong Ino;
        [FieldOffset(40)] public ulong Size;
        [FieldOffset(96)] public long CtimeSec;
        [FieldOffset(104)] public uint CtimeNsec;
        [FieldOffset(112)] public long MtimeSec;
        [FieldOffset(120)] public uint MtimeNsec;
        [FieldOffset(136)] public uint DevMajor;
        [FieldOffset(140)] public uint DevMinor;
    }

    [LibraryImport(Lib, SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int statx(int dirfd, string path, int flags, uint mask, out Statx buf);

    [LibraryImport(Lib, SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int open(string path, int flags, uint mode);

    [LibraryImport(Lib, SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int rename(string from, string to);

    [LibraryImport(Lib, SetLastError = true)]
    private static partial int flock(int fd, int operation);

    [LibraryImport(Lib, SetLastError = true)]
    private static partial int inotify_init1(int flags);

    [LibraryImport(Lib, SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int inotify_add_watch(int fd, string path, uint mask);

    [LibraryImport(Lib, SetLastError = true)]
    private static partial int inotify_rm_watch(int fd, int wd);

    [LibraryImport(Lib, SetLastError = true)]
    private static unsafe partial int pipe2(int* fds, int flags);

    [LibraryImport(Lib, SetLastError = true)]
    private static unsafe partial int poll(PollFd* fds, nuint nfds, int timeout);

    [LibraryImport(Lib, SetLastError = true)]
    private static unsafe partial nint read(int fd, byte* buf, nuint count);

    [LibraryImport(Lib, SetLastError = true)]
    private static unsafe partial nint write(int fd, byte* buf, nuint count);

    [LibraryImport(Lib)]
    private static partial int close(int fd);
}
