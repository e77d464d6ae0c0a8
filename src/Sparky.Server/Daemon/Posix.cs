using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Sparky.Server.Daemon;

/// <summary>
/// The few libc calls .NET's file API has no way to make: open without following a link and without waiting on a
/// FIFO, the type and identity (device, inode, change time) of an entry or an open handle, rename of any entry, and
/// flock on a directory. Source-generated (LibraryImport): no runtime marshalling, so the native build makes the
/// same calls.
/// </summary>
internal static partial class Posix
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
}
