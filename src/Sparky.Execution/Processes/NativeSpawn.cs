using System.Runtime.InteropServices;

namespace Sparky.Execution.Processes;

/// <summary>
/// Starts a process inside its cgroup (clone3 with CLONE_INTO_CGROUP) where glibc cannot (before 2.39): the native
/// sparky's own spawn (src/Sparky/Native/spawn.c, linked into the executable, bound at link time by DirectPInvoke).
/// The JIT build has no such library: the first call finds that out, and every caller then uses posix_spawn and the
/// move after the start. Not thread-safe to enable or disable; <see cref="ProcessLauncher"/>'s one owner calls it.
/// </summary>
internal static unsafe partial class NativeSpawn
{
    private const string Lib = "sparky-native";
    private const int ENOSYS = 38, EINVAL = 22, E2BIG = 7;

    [StructLayout(LayoutKind.Sequential)]
    private struct Request
    {
        public byte* Path;
        public byte** Argv;
        public byte** Envp;
        public byte* StdinPath;
        public byte* StdoutPath;
        public byte* StderrPath;
        public byte* Cwd;
        public int CgroupFd;
    }

    [LibraryImport(Lib, EntryPoint = "sparky_spawn_in_cgroup")]
    private static partial int SpawnInCgroup(Request* request, int* pid);

    /// <summary>False once this build or this host has shown it cannot (no such library, no clone3 or no
    /// CLONE_INTO_CGROUP in the kernel, an emulator that refuses it).</summary>
    public static bool Available { get; private set; } = true;

    public enum Outcome { Started, Failed, NotHere }

    /// <summary>Started (with its pid), Failed (the process could not be started: <paramref name="error"/> is the errno
    /// posix_spawn would give), or NotHere: start it another way (also for a cgroup that refused it this time).</summary>
    public static Outcome TrySpawn(byte* path, byte** argv, byte** envp, byte* stdinPath, byte* stdoutPath, byte* stderrPath,
        byte* cwd, int cgroupFd, out int pid, out int error)
    {
        pid = 0;
        error = 0;
        if (!Available) return Outcome.NotHere;
        var request = new Request
        {
            Path = path, Argv = argv, Envp = envp, StdinPath = stdinPath, StdoutPath = stdoutPath, StderrPath = stderrPath,
            Cwd = cwd, CgroupFd = cgroupFd,
        };
        int rc, started = 0;
        try { rc = SpawnInCgroup(&request, &started); }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            Available = false; // the JIT build
            return Outcome.NotHere;
        }
        if (rc == 0)
        {
            pid = started;
            return Outcome.Started;
        }
        if (rc > 0)
        {
            error = rc;
            return Outcome.Failed;
        }
        // The kernel (before 5.7) or an emulator (qemu-user) cannot, and never will in this process.
        if (-rc is ENOSYS or EINVAL or E2BIG) Available = false;
        return Outcome.NotHere;
    }
}
