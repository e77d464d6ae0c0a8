using System.Runtime.InteropServices;
using System.Text;

namespace Sparky.Execution.Processes;

/// <summary>
/// What execve takes: the strings of argv and the environment, each with its NUL and a pointer, within ARG_MAX
/// (<c>sysconf(_SC_ARG_MAX)</c>: a quarter of the stack limit, usually 2 MiB). Past it the spawn fails with E2BIG;
/// the engine asks here at submit, so such a task is refused with the reason instead of failing at its start.
/// </summary>
public static partial class ArgLimits
{
    /// <summary>What the engine adds to a task's environment and argv (SPARKY_TASK_ID, SPARKY_INSTANCE,
    /// SPARKY_EXIT_FILE, the GPU variables, the exit-code shim), with room to spare.</summary>
    public const long Headroom = 16 * 1024;

    /// <summary>ARG_MAX as the kernel applies it to this process's children; 2 MiB where it cannot be read.</summary>
    public static long ArgMax { get; } = ReadArgMax();

    /// <summary>The bytes execve counts for these strings: each one's UTF-8, its NUL and its pointer.</summary>
    public static long Bytes(IEnumerable<string> strings)
    {
        long total = 0;
        foreach (var s in strings) total += Encoding.UTF8.GetByteCount(s) + 1 + IntPtr.Size;
        return total;
    }

    private const int _SC_ARG_MAX = 0; // Linux and glibc

    [LibraryImport("libc", EntryPoint = "sysconf")]
    private static partial long sysconf(int name);

    private static long ReadArgMax()
    {
        try
        {
            long v = OperatingSystem.IsLinux() ? sysconf(_SC_ARG_MAX) : -1;
            return v > 0 ? v : 2 * 1024 * 1024;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException) { return 2 * 1024 * 1024; }
    }
}
