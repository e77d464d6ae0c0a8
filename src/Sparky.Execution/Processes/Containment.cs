using System.Runtime.InteropServices;
using System.Text;
using Microsoft.Extensions.Logging;

namespace Sparky.Execution.Processes;

/// <summary>
/// Keeps every process an attempt starts findable, whatever sessions or process groups its children make
/// (coreutils <c>timeout</c>, <c>setsid</c>, <c>set -m</c> shells, launchers that daemonise), so cancel, timeout,
/// an attempt's end and a restarted daemon's recovery end all of it and two attempts of a task never overlap.
/// <para>Where the host allows, each attempt gets a cgroup v2 of its own (<c>&lt;own cgroup&gt;/sparky-&lt;instance
/// hash&gt;/&lt;task&gt;.&lt;attempt&gt;</c>): a child cannot leave it, <c>cgroup.kill</c> ends all of it in one write, and
/// <c>cpu.stat</c> gives its CPU use. Everywhere (the fallback, and a second net for what a cgroup cannot hold, such as
/// a check started before placement): every process whose environment carries <c>SPARKY_INSTANCE</c> with this
/// daemon's instance and the attempt's <c>SPARKY_TASK_ID</c>/<c>SPARKY_ATTEMPT</c>.</para>
/// Thread-safe: the engine's loop and the plan runner's gate checks both use it.
/// </summary>
public sealed class Containment
{
    public const string InstanceVar = "SPARKY_INSTANCE", TaskVar = "SPARKY_TASK_ID", AttemptVar = "SPARKY_ATTEMPT";

    private readonly string _instance;
    /// <summary>Attempt cgroups whose processes were killed but had not all exited when their end was handled.</summary>
    private readonly HashSet<string> _toRemove = new(StringComparer.Ordinal);
    private readonly object _gate = new();
    private readonly ILogger _log;

    /// <summary>The folder of this daemon's attempt cgroups, or null where attempts are found by their marker only.</summary>
    public string? CgroupRoot { get; }
    /// <summary>"cgroup" or "marker", and why, and how memory is held, for the log.</summary>
    public string Mode { get; }
    /// <summary>How an attempt is held to the memory it asked for, and its memory use read.</summary>
    public MemoryControl Memory { get; }

    private Containment(string instance, string? cgroupRoot, string mode, MemoryControl memory, ILogger log)
    {
        _instance = instance;
        _log = log;
        CgroupRoot = cgroupRoot;
        Memory = memory;
        Mode = mode + "; " + memory.Why;
    }

    /// <summary><paramref name="setting"/>: auto (a cgroup where the host allows), cgroup (the same, saying why not
    /// where it cannot), or marker. <paramref name="enforceMemory"/>: hold each attempt to the memory it asked for
    /// where a memory controller can be had (never in marker mode, which makes no cgroups). Never fails: the marker
    /// always works. <paramref name="log"/>: where an attempt that cannot be contained as planned is reported.</summary>
    public static Containment Create(string setting, string instance, bool enforceMemory = true, ILogger? log = null)
    {
        log ??= Sparky.Core.Logging.LineLoggerProvider.Fallback(typeof(Containment).FullName!);
        if (setting == "marker")
            return new Containment(instance, null, "marker (containment = marker)", MemoryControl.NotHeld("containment = marker makes no cgroups", log), log);
        var folder = "sparky-" + Hash(instance);
        var (root, why) = TryCgroupRoot(folder);
        var memory = enforceMemory ? MemoryControl.Detect(root, folder, log) : MemoryControl.NotHeld("enforce_memory = false", log);
        return root is null
            ? new Containment(instance, null, $"marker (no cgroup: {why})", memory, log)
            : new Containment(instance, root, $"cgroup ({root})", memory, log);
    }

    /// <summary>Makes and tests this daemon's cgroup folder under its own cgroup in the unified (v2) hierarchy.</summary>
    private static (string? Root, string Why) TryCgroupRoot(string folder)
    {
        try
        {
            string? mount = null;
            foreach (var line in File.ReadLines("/proc/self/mountinfo"))
            {
                // "... - cgroup2 cgroup2 rw": field 5 is the mount point, the type follows the separator.
                var sep = line.IndexOf(" - ", StringComparison.Ordinal);
                if (sep < 0 || !line.AsSpan(sep + 3).StartsWith("cgroup2 ")) continue;
                mount = line.Split(' ')[4];
                break;
            }
            if (mount is null) return (null, "no cgroup2 file system is mounted");
            var own = File.ReadLines("/proc/self/cgroup").FirstOrDefault(l => l.StartsWith("0::", StringComparison.Ordinal));
            if (own is null) return (null, "this process has no cgroup v2");
            var dir = Path.Combine(mount + own[3..].TrimEnd('/'), folder);
            if (!File.Exists(Path.Combine(mount, "cgroup.procs"))) return (null, $"{mount} is not a cgroup2 root");
            Directory.CreateDirectory(dir);
            // A cgroup that can be made may still not take processes (no write access to a common ancestor's
            // cgroup.procs): prove it with a throwaway child before promising anything.
            var probe = Path.Combine(dir, "probe");
            Directory.CreateDirectory(probe);
            try
            {
                if (!File.Exists(Path.Combine(probe, "cgroup.kill"))) return (null, "the kernel has no cgroup.kill (Linux 5.14+)");
            }
            finally { TryRemoveDir(probe); }
            return (dir, "");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return (null, e.Message);
        }
    }

    /// <summary>A short, stable name for an instance (its data dir), so two daemons never share cgroups.</summary>
    private static string Hash(string s)
    {
        ulong h = 14695981039346656037;
        foreach (char c in s) h = (h ^ c) * 1099511628211;
        return h.ToString("x16");
    }

    /// <summary>The environment entries that mark a process as one of this attempt's.</summary>
    public void Mark(IDictionary<string, string> env, string task, int attempt)
    {
        env[TaskVar] = task;
        env[AttemptVar] = attempt.ToString();
        env[InstanceVar] = _instance;
    }

    /// <summary>
    /// The cgroups an attempt's processes go in, made now: its own (null in marker mode or if it cannot be made), held
    /// to <paramref name="memoryLimitBytes"/> where memory is unified; and, on a host whose memory controller is on
    /// cgroup v1, a memory cgroup of its own when it asks for memory.
    /// </summary>
    public AttemptCgroups Prepare(string task, int attempt, long memoryLimitBytes = 0)
    {
        var name = $"{task}.{attempt}";
        string? dir = null;
        if (CgroupRoot is not null)
        {
            dir = Path.Combine(CgroupRoot, name);
            try { Directory.CreateDirectory(dir); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                ExecutionLog.CgroupNotMade(_log, dir, e.Message);
                dir = null;
            }
        }
        return new AttemptCgroups(dir, Memory.Prepare(name, dir, memoryLimitBytes));
    }

    /// <summary>
    /// Moves a started process into its attempt's cgroup, where spawn could not start it there (glibc before 2.39).
    /// The process runs while it is moved and may fork first (a shell starts its first command within a few hundred
    /// microseconds, about what a move costs): the children it made by then are moved after it, until a pass finds
    /// none outside. Whatever forks after the move is born inside.
    /// </summary>
    public static bool Enter(string cgroup, int pid)
    {
        var procs = Path.Combine(cgroup, "cgroup.procs");
        if (!Move(procs, pid)) return false;
        var pending = new Stack<int>();
        pending.Push(pid);
        for (int moved = 0; pending.Count > 0 && moved < 1000; moved++)
        {
            int parent = pending.Pop();
            string children;
            try { children = File.ReadAllText($"/proc/{parent}/task/{parent}/children"); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { continue; }
            foreach (var c in children.Split(' ', StringSplitOptions.RemoveEmptyEntries))
                if (int.TryParse(c, out int child) && Move(procs, child)) pending.Push(child);
        }
        return true;
    }

    private static bool Move(string procs, int pid)
    {
        try
        {
            File.WriteAllText(procs, pid.ToString());
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false; // it ended already (ESRCH), or the cgroup is gone: the marker still finds its children
        }
    }

    /// <summary>Signals every process of an attempt: its cgroup (SIGKILL through <c>cgroup.kill</c>) and every
    /// process carrying its marker. Returns how many processes were signalled by marker.</summary>
    public int Signal(string task, int attempt, int signal)
    {
        if (CgroupRoot is not null) SignalCgroup(Path.Combine(CgroupRoot, $"{task}.{attempt}"), signal);
        return SignalMarked(signal, (t, a) => t == task && a == attempt);
    }

    /// <summary>
    /// An attempt's main process has ended: whatever it left behind is ended too, and its cgroup removed (now, or
    /// once its last process has gone). In marker mode, where finding them costs a scan of /proc, the scan runs only
    /// when <paramref name="scanMarked"/> (the attempt failed or was stopped and may be retried); its process group
    /// is always ended.
    /// </summary>
    /// <returns>The attempt's CPU time, peak memory and OOM kill, where its cgroups told them.</returns>
    public AttemptUsage Release(string task, int attempt, int pid, bool scanMarked)
    {
        if (pid > 1) ProcessLauncher.SignalGroup(pid, Signals.Kill);
        var name = $"{task}.{attempt}";
        string? dir = CgroupRoot is null ? null : Path.Combine(CgroupRoot, name);
        string? legacy = Memory.LegacyRoot is { } lr && Directory.Exists(Path.Combine(lr, name)) ? Path.Combine(lr, name) : null;
        var (peak, oom) = Memory.Read(dir, legacy);
        var usage = new AttemptUsage(dir is null ? null : MemoryControl.Field(Path.Combine(dir, "cpu.stat"), "usage_usec"), peak, oom);
        if (dir is not null && !TryRemoveDir(dir) && Directory.Exists(dir))
        {
            // Still populated: end what is left; the cgroup goes at a sweep once its last process has exited.
            SignalCgroup(dir, Signals.Kill);
            lock (_gate) _toRemove.Add(dir);
        }
        if (scanMarked) SignalMarked(Signals.Kill, (t, a) => t == task && a == attempt);
        // A v1 memory cgroup cannot kill: its processes are ended above (cgroup, group, marker) and it goes once empty.
        if (legacy is not null && !TryRemoveDir(legacy)) lock (_gate) _toRemove.Add(legacy);
        return usage;
    }

    /// <summary>Cgroups wait for their last processes to exit before they can be removed: the engine looks again soon.</summary>
    public bool HasPending
    {
        get { lock (_gate) return _toRemove.Count > 0; }
    }

    /// <summary>Removes the cgroups of ended attempts whose last processes have exited since. Cheap when none wait.</summary>
    public void Sweep()
    {
        lock (_gate)
        {
            if (_toRemove.Count == 0) return;
            _toRemove.RemoveWhere(dir => TryRemoveDir(dir) || !Directory.Exists(dir));
        }
    }

    /// <summary>
    /// After a restart, before anything runs: ends every process this instance left (in its cgroups, or carrying its
    /// marker: tasks, gate checks, anything they started) except the attempts <paramref name="keep"/> names
    /// (re-attached: they still run and their end will be read). Waits briefly for the killed to exit, so a retry
    /// never starts beside them. Returns how many processes carried the marker and were killed.
    /// </summary>
    public int EndAllExcept(IReadOnlySet<(string Task, int Attempt)> keep, TimeSpan wait)
    {
        var doomed = new List<string>();
        if (CgroupRoot is not null)
        {
            foreach (var dir in SafeDirectories(CgroupRoot))
            {
                if (Kept(dir)) continue;
                SignalCgroup(dir, Signals.Kill);
                doomed.Add(dir);
            }
        }
        if (Memory.LegacyRoot is { } legacyRoot)
            foreach (var dir in SafeDirectories(legacyRoot))
                if (!Kept(dir)) doomed.Add(dir); // its processes are in the unified cgroup or carry the marker: killed here
        int killed = 0;
        var deadline = DateTime.UtcNow + wait;
        // Until a pass finds none: a process may fork between our reading /proc and its kill.
        for (int pass = 0; pass < 10; pass++)
        {
            int found = SignalMarked(Signals.Kill, (t, a) => !keep.Contains((t, a)));
            killed += found;
            if (found == 0) break;
            Thread.Sleep(10);
        }
        foreach (var dir in doomed)
        {
            while (!TryRemoveDir(dir) && Directory.Exists(dir) && DateTime.UtcNow < deadline) Thread.Sleep(10);
            if (Directory.Exists(dir)) lock (_gate) _toRemove.Add(dir);
        }
        return killed;

        bool Kept(string dir)
        {
            var name = Path.GetFileName(dir);
            int dot = name.LastIndexOf('.');
            return dot > 0 && int.TryParse(name.AsSpan(dot + 1), out int n) && keep.Contains((name[..dot], n));
        }
    }

    /// <summary>Removes this daemon's cgroup folders if nothing is left in them (a clean stop).</summary>
    public void Close()
    {
        Sweep();
        if (CgroupRoot is not null) TryRemoveDir(CgroupRoot);
        if (Memory.LegacyRoot is not null) TryRemoveDir(Memory.LegacyRoot);
    }

    private static void SignalCgroup(string dir, int signal)
    {
        try
        {
            if (signal == Signals.Kill)
            {
                File.WriteAllText(Path.Combine(dir, "cgroup.kill"), "1");
                return;
            }
            foreach (var line in File.ReadLines(Path.Combine(dir, "cgroup.procs")))
                if (int.TryParse(line, out int pid) && pid > 1) Libc.kill(pid, signal);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { } // gone already
    }

    /// <summary>
    /// Signals every process (not this one) whose environment carries this instance's marker and whose task and
    /// attempt <paramref name="match"/> accepts. A gate check's task reads <c>gate:…</c> and its attempt 0.
    /// </summary>
    private int SignalMarked(int signal, Func<string, int, bool> match)
    {
        var needle = Encoding.UTF8.GetBytes(InstanceVar + "=" + _instance + "\0");
        int self = Environment.ProcessId, found = 0;
        foreach (var dir in SafeDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir.AsSpan()), out int pid) || pid == self || pid <= 1) continue;
            byte[] env;
            try { env = File.ReadAllBytes($"/proc/{pid}/environ"); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { continue; }
            if (!HasEntry(env, needle)) continue;
            string? task = null, slurmJob = null;
            int attempt = 0;
            foreach (var entry in Encoding.UTF8.GetString(env).Split('\0'))
            {
                if (entry.StartsWith(TaskVar + "=", StringComparison.Ordinal)) task = entry[(TaskVar.Length + 1)..];
                else if (entry.StartsWith(AttemptVar + "=", StringComparison.Ordinal)) int.TryParse(entry.AsSpan(AttemptVar.Length + 1), out attempt);
                else if (entry.StartsWith("SLURM_JOB_ID=", StringComparison.Ordinal)) slurmJob = entry["SLURM_JOB_ID=".Length..];
            }
            if (task is null || !match(task, attempt) || IsSlurmJobs(slurmJob)) continue;
            if (Libc.kill(pid, signal) == 0) found++;
        }
        return found;
    }

    /// <summary>
    /// A process of a Slurm job (or pilot) this daemon submitted carries its marker too (the job script exports it), but
    /// Slurm owns it: on a node that is also the daemon's host it must not be taken for a local attempt. A local task
    /// carries the daemon's own <c>SLURM_JOB_ID</c>, if any (a daemon inside an allocation).
    /// </summary>
    public static bool IsSlurmJobs(string? slurmJobId) =>
        slurmJobId is not null && slurmJobId != Environment.GetEnvironmentVariable("SLURM_JOB_ID");

    /// <summary>A whole NUL-terminated entry: at the start of the block or right after a NUL.</summary>
    private static bool HasEntry(ReadOnlySpan<byte> env, ReadOnlySpan<byte> entry)
    {
        int from = 0;
        while (from < env.Length)
        {
            int at = env[from..].IndexOf(entry);
            if (at < 0) return false;
            at += from;
            if (at == 0 || env[at - 1] == 0) return true;
            from = at + 1;
        }
        return false;
    }

    private static bool TryRemoveDir(string dir)
    {
        // A cgroup is removed with rmdir alone (its files are the kernel's); it fails while processes are in it.
        return Libc.rmdir(dir) == 0;
    }

    private static IEnumerable<string> SafeDirectories(string dir)
    {
        try { return Directory.GetDirectories(dir); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return []; }
    }
}

/// <summary>Where an attempt's processes go: its own cgroup (null: found by marker only) and, on a host whose memory
/// controller is on cgroup v1, a memory cgroup of its own (null unless it asked for memory there).</summary>
public readonly record struct AttemptCgroups(string? Unified, string? Memory);
