using Microsoft.Extensions.Logging;

namespace Sparky.Execution.Processes;

/// <summary>What an attempt's cgroups recorded of it by its end (null: not known on this host).</summary>
/// <param name="OutOfMemory">The kernel's OOM killer ended a process of the attempt (over its limit, or the host out of memory).</param>
public readonly record struct AttemptUsage(long? CpuMicros, long? MemoryPeakBytes, bool OutOfMemory);

/// <summary>
/// The memory controller for attempts: an attempt that asks for memory (<c>--mem</c>) is held to it, as Slurm's
/// <c>ConstrainRAMSpace</c> does (past it the kernel's OOM killer ends it), and its peak use and any OOM kill are read
/// at its end.
/// <list type="bullet">
/// <item><b>Unified</b> (cgroup v2): the controller is enabled for the daemon's attempt cgroups, which then account
/// every attempt's memory; a limit is <c>memory.max</c> (and no swap beyond it), with <c>memory.oom.group</c> so an
/// OOM ends the whole attempt.</item>
/// <item><b>Legacy</b> (a cgroup v1 memory hierarchy beside the unified one, as on hybrid hosts): a memory cgroup of
/// its own for each attempt that asks for memory only (each costs a mkdir, a move and an rmdir); its limit is
/// <c>memory.limit_in_bytes</c> (and <c>memory.memsw.limit_in_bytes</c> where swap is accounted).</item>
/// </list>
/// Where neither is possible the scheduler's accounting stands alone (<see cref="Why"/> says why).
/// </summary>
public sealed class MemoryControl
{
    public enum Kind { None, Unified, Legacy }

    public Kind Where { get; }
    /// <summary>Legacy: the folder of this daemon's memory cgroups.</summary>
    public string? LegacyRoot { get; }
    /// <summary>For the daemon's start line.</summary>
    public string Why { get; }

    private readonly ILogger _log;

    private MemoryControl(Kind where, string? legacyRoot, string why, ILogger? log)
    {
        _log = log ?? Sparky.Core.Logging.LineLoggerProvider.Fallback(typeof(MemoryControl).FullName!);
        Where = where;
        LegacyRoot = legacyRoot;
        Why = why;
    }

    public static MemoryControl NotHeld(string why, ILogger? log = null) => new(Kind.None, null, $"memory not enforced ({why})", log);

    /// <summary>Finds the memory controller for attempt cgroups under <paramref name="unifiedRoot"/> (the daemon's v2
    /// attempts folder, if any), else in a v1 memory hierarchy, under a folder named <paramref name="folder"/>.</summary>
    public static MemoryControl Detect(string? unifiedRoot, string folder, ILogger? log = null)
    {
        string whyNotUnified = unifiedRoot is null ? "no cgroup v2 for attempts" : "";
        if (unifiedRoot is not null)
        {
            if (EnableUnified(unifiedRoot) is { } no) whyNotUnified = no;
            else return new MemoryControl(Kind.Unified, null, "memory: cgroup v2", log);
        }
        var (legacy, whyNotLegacy) = TryLegacyRoot(folder);
        return legacy is not null
            ? new MemoryControl(Kind.Legacy, legacy, $"memory: cgroup v1 ({legacy}), for tasks that ask for memory", log)
            : new MemoryControl(Kind.None, null, $"memory not enforced ({whyNotUnified}; {whyNotLegacy})", log);
    }

    /// <summary>
    /// Turns the memory controller on for the attempts' cgroups. It must be on in their parent's
    /// <c>cgroup.subtree_control</c> already (a delegated subtree), or be turned on there: the kernel allows that
    /// only in the root cgroup or in one without processes of its own (the daemon's own cgroup has the daemon).
    /// Null when on; else why not.
    /// </summary>
    private static string? EnableUnified(string root)
    {
        try
        {
            if (!HasWord(Path.Combine(root, "cgroup.controllers"), "memory"))
            {
                var parent = Path.GetDirectoryName(root)!;
                if (!HasWord(Path.Combine(parent, "cgroup.controllers"), "memory") && !IsRoot(parent))
                    return "the memory controller is not delegated to the daemon's cgroup";
                TryWrite(Path.Combine(parent, "cgroup.subtree_control"), "+memory");
                if (!HasWord(Path.Combine(root, "cgroup.controllers"), "memory"))
                    return "the memory controller is not on in the daemon's cgroup (cgroup v2 is on here: it is elsewhere, or the daemon's cgroup has processes)";
            }
            TryWrite(Path.Combine(root, "cgroup.subtree_control"), "+memory");
            return HasWord(Path.Combine(root, "cgroup.subtree_control"), "memory") ? null : "cannot turn on the memory controller for attempts";
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return e.Message;
        }
    }

    private static bool IsRoot(string cgroupDir) => !File.Exists(Path.Combine(cgroupDir, "cgroup.type")) && File.Exists(Path.Combine(cgroupDir, "cgroup.procs"));

    /// <summary>The v1 memory hierarchy's mount and this process's place in it: <c>&lt;mount&gt;&lt;own&gt;/&lt;folder&gt;</c>, made and proven.</summary>
    private static (string? Root, string Why) TryLegacyRoot(string folder)
    {
        try
        {
            string? mount = null;
            foreach (var line in File.ReadLines("/proc/self/mountinfo"))
            {
                // "... - cgroup cgroup rw,memory": the super options name the controllers the hierarchy holds.
                var sep = line.IndexOf(" - ", StringComparison.Ordinal);
                if (sep < 0) continue;
                var tail = line[(sep + 3)..].Split(' ');
                if (tail.Length < 3 || tail[0] != "cgroup" || !tail[2].Split(',').Contains("memory")) continue;
                mount = line.Split(' ')[4];
                break;
            }
            if (mount is null) return (null, "no cgroup v1 memory hierarchy is mounted");
            // "4:memory:/path" (several controllers may share a line: "4:cpu,memory:/path").
            var own = File.ReadLines("/proc/self/cgroup").Select(l => l.Split(':', 3))
                .FirstOrDefault(p => p.Length == 3 && p[1].Split(',').Contains("memory"));
            if (own is null) return (null, "this process has no cgroup v1 memory cgroup");
            var dir = Path.Combine(mount + own[2].TrimEnd('/'), folder);
            Directory.CreateDirectory(dir);
            if (!File.Exists(Path.Combine(dir, "memory.limit_in_bytes"))) return (null, $"{dir} is not a memory cgroup");
            return (dir, "");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return (null, e.Message);
        }
    }

    /// <summary>
    /// Prepares an attempt's memory: in the unified case its limit on the attempt's cgroup (<paramref name="unified"/>);
    /// in the legacy case a memory cgroup of its own, returned, which the process is moved into after its spawn.
    /// Never fails the attempt: a limit that cannot be set is logged, and the attempt runs on the scheduler's accounting.
    /// </summary>
    public string? Prepare(string name, string? unified, long limitBytes)
    {
        try
        {
            switch (Where)
            {
                case Kind.Unified when unified is not null && limitBytes > 0:
                    File.WriteAllText(Path.Combine(unified, "memory.max"), limitBytes.ToString());
                    TryWrite(Path.Combine(unified, "memory.swap.max"), "0");
                    TryWrite(Path.Combine(unified, "memory.oom.group"), "1");
                    return null;
                case Kind.Legacy when limitBytes > 0:
                    var dir = Path.Combine(LegacyRoot!, name);
                    Directory.CreateDirectory(dir);
                    File.WriteAllText(Path.Combine(dir, "memory.limit_in_bytes"), limitBytes.ToString());
                    // Where swap is accounted, memory plus swap is held to the same bound: the limit is the memory asked for.
                    TryWrite(Path.Combine(dir, "memory.memsw.limit_in_bytes"), limitBytes.ToString());
                    return dir;
                default:
                    return null;
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            ExecutionLog.MemoryNotHeld(_log, name, limitBytes >> 20, e.Message);
            return null;
        }
    }

    /// <summary>The attempt's peak memory and whether the OOM killer struck in it, from its cgroup (unified) or its
    /// memory cgroup (legacy); nothing where memory is not accounted for it.</summary>
    public (long? Peak, bool Oom) Read(string? unified, string? legacy)
    {
        if (Where == Kind.Unified && unified is not null)
            return (ReadLong(Path.Combine(unified, "memory.peak")), Field(Path.Combine(unified, "memory.events"), "oom_kill") > 0);
        if (legacy is not null)
            return (ReadLong(Path.Combine(legacy, "memory.max_usage_in_bytes")), Field(Path.Combine(legacy, "memory.oom_control"), "oom_kill") > 0);
        return (null, false);
    }

    private static long? ReadLong(string path)
    {
        try { return long.TryParse(File.ReadAllText(path).Trim(), out long v) ? v : null; }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return null; }
    }

    /// <summary>A "key value" line of a cgroup's flat keyed file (memory.events, memory.oom_control, cpu.stat): null
    /// where the file or the line is missing. Read with one open, read and close (a few hundred bytes; the first 8 KB are
    /// read): each attempt's end reads one, and a FileStream would add a stat and a lock to each.</summary>
    public static unsafe long? Field(string path, string key)
    {
        Span<byte> text = stackalloc byte[8192];
        int length = 0;
        int fd = Libc.Open(path, Libc.O_RDONLY | Libc.O_CLOEXEC);
        if (fd < 0) return null;
        try
        {
            fixed (byte* t = text)
                for (nint n; length < text.Length && (n = Libc.read(fd, t + length, text.Length - length)) > 0;) length += (int)n;
        }
        finally
        {
            Libc.close(fd);
        }
        foreach (var range in text[..length].Split((byte)'\n'))
        {
            var line = text[range];
            if (line.Length > key.Length && line[key.Length] == (byte)' ' && System.Text.Ascii.Equals(line[..key.Length], key)
                && System.Buffers.Text.Utf8Parser.TryParse(line[(key.Length + 1)..], out long v, out int used) && used == line.Length - key.Length - 1)
                return v;
        }
        return null;
    }

    private static bool HasWord(string path, string word) =>
        File.Exists(path) && File.ReadAllText(path).Split((char[])[' ', '\n'], StringSplitOptions.RemoveEmptyEntries).Contains(word);

    private static void TryWrite(string path, string text)
    {
        try { File.WriteAllText(path, text); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { } // absent (no swap, older kernel) or refused: checked by the caller where it matters
    }
}
