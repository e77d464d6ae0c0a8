using System.Runtime.InteropServices;

namespace Sparky.Execution.Processes;

/// <summary>
/// The few libc calls the process runner needs. posix_spawn rather than System.Diagnostics.Process
/// because a task must get a session (and so a process group) of its own, and its output must go
/// straight to files: no pipes for the daemon to pump, and nothing that dies with the daemon.
/// </summary>
internal static unsafe partial class Libc
{
    private const string Lib = "libc";

    // Opaque glibc structs: 336 and 80 bytes on x86_64 and aarch64; we allocate more to be safe.
    public const int SpawnAttrSize = 1024;
    public const int FileActionsSize = 512;
    public const int SigSetSize = 256;

    public const short POSIX_SPAWN_SETSIGDEF = 0x04;
    public const short POSIX_SPAWN_SETSIGMASK = 0x08;
    public const short POSIX_SPAWN_SETSID = 0x80;
    public const short POSIX_SPAWN_SETCGROUP = 0x100; // glibc 2.39+

    public const int O_RDONLY = 0, O_WRONLY = 1, O_CREAT = 0x40, O_APPEND = 0x400, O_CLOEXEC = 0x80000;
    /// <summary>Differs by architecture: 0x4000 on aarch64 (and arm), 0x10000 on x86_64.</summary>
    public static readonly int O_DIRECTORY = RuntimeInformation.ProcessArchitecture is Architecture.Arm64 or Architecture.Arm ? 0x4000 : 0x10000;
    public const int WNOHANG = 1;
    public const int SIGKILL = 9, SIGTERM = 15;
    public const int ECHILD = 10, ESRCH = 3;

    [LibraryImport(Lib, SetLastError = true)]
    public static partial int posix_spawn(out int pid, byte* path, nint fileActions, nint attr, byte** argv, byte** envp);

    [LibraryImport(Lib)] public static partial int posix_spawn_file_actions_init(nint fa);
    [LibraryImport(Lib)] public static partial int posix_spawn_file_actions_destroy(nint fa);
    [LibraryImport(Lib)] public static partial int posix_spawn_file_actions_addopen(nint fa, int fd, byte* path, int oflag, uint mode);
    [LibraryImport(Lib)] public static partial int posix_spawn_file_actions_addchdir_np(nint fa, byte* path);
    [LibraryImport(Lib)] public static partial int posix_spawnattr_init(nint attr);
    [LibraryImport(Lib)] public static partial int posix_spawnattr_destroy(nint attr);
    [LibraryImport(Lib)] public static partial int posix_spawnattr_setflags(nint attr, short flags);
    [LibraryImport(Lib)] public static partial int posix_spawnattr_setsigmask(nint attr, nint sigset);
    [LibraryImport(Lib)] public static partial int posix_spawnattr_setsigdefault(nint attr, nint sigset);
    [LibraryImport(Lib)] public static partial int sigemptyset(nint set);
    [LibraryImport(Lib)] public static partial int sigfillset(nint set);
    [LibraryImport(Lib)] public static partial int sigdelset(nint set, int signo);

    [LibraryImport(Lib, SetLastError = true)]
    public static partial int waitpid(int pid, out int status, int options);

    [LibraryImport(Lib, SetLastError = true)]
    public static partial int kill(int pid, int sig);

    /// <summary>open(2) of a path given as text (UTF-8, as <see cref="rmdir"/>): -1 and the error for GetLastPInvokeError.</summary>
    [LibraryImport(Lib, EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int Open(string path, int flags, uint mode = 0);

    [LibraryImport(Lib)] public static partial int close(int fd);
    [LibraryImport(Lib, SetLastError = true)] public static partial int fsync(int fd);
    [LibraryImport(Lib, SetLastError = true)] public static partial nint read(int fd, byte* buf, nint count);

    [LibraryImport(Lib, SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int rmdir(string path);
}
