using System.Runtime.InteropServices;

namespace Sparky.Execution.Processes;

/// <summary>RLIMIT_NOFILE: how many files the daemon may hold open (connections, logs, the store, sockets).</summary>
public static partial class FileLimits
{
    private const int RLIMIT_NOFILE = 7; // Linux

    [StructLayout(LayoutKind.Sequential)]
    private struct RLimit { public ulong Cur, Max; }

    [LibraryImport("libc", SetLastError = true)]
    private static partial int getrlimit(int resource, out RLimit limit);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int setrlimit(int resource, in RLimit limit);

    /// <summary>Raises the soft limit to the hard one (the usual soft limit, 1024, is less than the default
    /// connection bound alone) and returns the soft limit now in force; null where it cannot be read.
    /// Tasks start with the limit Sparky has: the launcher does not lower it again.</summary>
    public static long? RaiseToHard()
    {
        if (!OperatingSystem.IsLinux()) return null;
        try
        {
            if (getrlimit(RLIMIT_NOFILE, out var l) != 0) return null;
            if (l.Cur < l.Max && setrlimit(RLIMIT_NOFILE, new RLimit { Cur = l.Max, Max = l.Max }) == 0) l.Cur = l.Max;
            return l.Cur > long.MaxValue ? long.MaxValue : (long)l.Cur;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException) { return null; }
    }
}
