using System.Runtime.InteropServices;
using System.Text;

namespace Sparky.Execution.Processes;

public sealed record LaunchSpec(
    IReadOnlyList<string> Argv,
    IReadOnlyDictionary<string, string> Env,
    string? Cwd,
    string StdoutPath,
    string StderrPath,
    bool RecordStartTime = true,
    IReadOnlyList<string>? Prefix = null,
    string? Cgroup = null,
    string? StdinPath = null,
    string? MemoryCgroup = null);

/// <summary>How a process ended: an exit code, or the signal that killed it.</summary>
public readonly record struct ProcessExit(int? ExitCode, int? Signal)
{
    public static ProcessExit FromWaitStatus(int status) =>
        (status & 0x7f) == 0 ? new ProcessExit((status >> 8) & 0xff, null) : new ProcessExit(null, status & 0x7f);
}

/// <summary>How a started process got into its cgroup.</summary>
public enum CgroupEntries
{
    /// <summary>Born there: clone3 with CLONE_INTO_CGROUP, by the native build's own spawn (glibc before 2.39).</summary>
    Clone3,
    /// <summary>Born there: glibc 2.39's posix_spawnattr_setcgroup_np.</summary>
    Glibc,
    /// <summary>Moved there by the daemon right after its start, with whatever it had forked by then.</summary>
    Moved,
}

public abstract record LaunchResult
{
    /// <param name="InCgroup">The process is in the spec's cgroup (started there, or moved right after).</param>
    public sealed record Started(int Pid, long StartTime, bool InCgroup = false) : LaunchResult;
    public sealed record Failed(string Reason) : LaunchResult;
}

/// <summary>
/// Starts each task as the leader of a new session (so of its own process group), stdin from
/// /dev/null (or a file, for a handler), stdout and stderr appended to files, and reports exits. Not thread-safe: one owner
/// (the engine's loop) launches and reaps. SIGCHLD only wakes the owner (<paramref name="wake"/>),
/// which then reaps with waitpid on our own pids, never waitpid(-1), so any other child of this
/// process is left alone. No thread of its own: an exit reaches the loop in one hop.
/// </summary>
public sealed unsafe class ProcessLauncher : IDisposable
{
    private readonly Dictionary<int, Action<ProcessExit>> _running = new();
    private readonly System.Runtime.InteropServices.PosixSignalRegistration _registration;
    private readonly nint _sigDefault, _sigMask;
    private readonly List<(int Pid, ProcessExit Exit, Action<ProcessExit> OnExit)> _exited = new();

    public ProcessLauncher(Action wake)
    {
        _sigDefault = Marshal.AllocHGlobal(Libc.SigSetSize);
        _sigMask = Marshal.AllocHGlobal(Libc.SigSetSize);
        // Reset every signal to its default in the child: the runtime ignores SIGPIPE, and an ignored
        // signal would otherwise be inherited through exec (breaking `yes | head`).
        Libc.sigfillset(_sigDefault);
        Libc.sigdelset(_sigDefault, Libc.SIGKILL);
        Libc.sigdelset(_sigDefault, 19); // SIGSTOP
        Libc.sigemptyset(_sigMask);
        _registration = System.Runtime.InteropServices.PosixSignalRegistration.Create(PosixSignal.SIGCHLD, ctx =>
        {
            ctx.Cancel = false;
            wake();
        });
    }

    public int RunningCount => _running.Count;

    /// <summary>glibc 2.39+ starts a child straight in a cgroup (CLONE_INTO_CGROUP): nothing it forks can be outside
    /// it, and the daemon pays no migration. Older glibc: the child is moved right after the spawn.</summary>
    private static readonly delegate* unmanaged<nint, int, int> SetCgroup = FindSetCgroup();

    private static delegate* unmanaged<nint, int, int> FindSetCgroup()
    {
        if (NativeLibrary.TryLoad("libc.so.6", out var libc) && NativeLibrary.TryGetExport(libc, "posix_spawnattr_setcgroup_np", out var f))
            return (delegate* unmanaged<nint, int, int>)f;
        return null;
    }

    /// <summary>
    /// Creates a missing working directory (and its parents), as the replaced runner did: its pipelines name an output
    /// folder as <c>working_dir</c> and rely on it. Null when the directory is there; else why it cannot be.
    /// </summary>
    private static string? CreateWorkingDirectory(string cwd)
    {
        if (Directory.Exists(cwd)) return null;
        try
        {
            Directory.CreateDirectory(cwd);
            return null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            return $"cannot create working directory {cwd}: {e.Message}";
        }
    }

    /// <summary>Starts a process; <paramref name="onExit"/> runs inside <see cref="Reap"/> once it has ended.</summary>
    public LaunchResult Launch(LaunchSpec spec, Action<ProcessExit> onExit)
    {
        var exe = ResolveExecutable(spec.Argv[0], spec.Env);
        if (exe is null) return new LaunchResult.Failed($"command not found: {spec.Argv[0]}");
        if (spec.Cwd is not null && CreateWorkingDirectory(spec.Cwd) is { } cwdProblem) return new LaunchResult.Failed(cwdProblem);
        IReadOnlyList<string> args = spec.Argv;
        if (spec.Prefix is { Count: > 0 } prefix)
        {
            // The command runs under the prefix (setpriv), found here so a missing one still reads "command not found".
            args = [.. prefix, exe, .. spec.Argv.Skip(1)];
            exe = prefix[0];
        }

        using var arena = new NativeArena();
        byte** argv = arena.StringArray(args);
        byte** envp = arena.StringArray(spec.Env.Select(kv => kv.Key + "=" + kv.Value).ToArray());
        nint fa = arena.Alloc(Libc.FileActionsSize);
        nint attr = arena.Alloc(Libc.SpawnAttrSize);
        Libc.posix_spawn_file_actions_init(fa);
        Libc.posix_spawnattr_init(attr);
        int cgroupFd = -1;
        try
        {
            // A handler reads its task's payload on stdin; everything else reads nothing.
            byte* path = arena.Utf8(exe), stdin = arena.Utf8(spec.StdinPath ?? "/dev/null"), stdout = arena.Utf8(spec.StdoutPath),
                stderr = arena.Utf8(spec.StderrPath), cwd = spec.Cwd is null ? null : arena.Utf8(spec.Cwd);
            if (spec.Cgroup is not null && (SetCgroup != null || NativeSpawn.Available))
                cgroupFd = Libc.Open(spec.Cgroup, Libc.O_RDONLY | Libc.O_DIRECTORY | Libc.O_CLOEXEC);
            if (cgroupFd >= 0 && SetCgroup == null)
            {
                // glibc before 2.39 cannot start a child in a cgroup; the native build can (Native/spawn.c).
                var native = NativeSpawn.TrySpawn(path, argv, envp, stdin, stdout, stderr, cwd, cgroupFd, out int child, out int error);
                if (native == NativeSpawn.Outcome.Failed) return Failed(spec, error);
                if (native == NativeSpawn.Outcome.Started)
                {
                    CgroupEntry = CgroupEntries.Clone3;
                    _running[child] = onExit;
                    return Started(spec, child, inCgroup: true);
                }
            }
            Libc.posix_spawn_file_actions_addopen(fa, 0, stdin, Libc.O_RDONLY, 0);
            Libc.posix_spawn_file_actions_addopen(fa, 1, stdout, Libc.O_WRONLY | Libc.O_CREAT | Libc.O_APPEND, 420);
            Libc.posix_spawn_file_actions_addopen(fa, 2, stderr, Libc.O_WRONLY | Libc.O_CREAT | Libc.O_APPEND, 420);
            if (cwd != null) Libc.posix_spawn_file_actions_addchdir_np(fa, cwd);
            short flags = Libc.POSIX_SPAWN_SETSID | Libc.POSIX_SPAWN_SETSIGDEF | Libc.POSIX_SPAWN_SETSIGMASK;
            bool intoCgroup = cgroupFd >= 0 && SetCgroup != null && SetCgroup(attr, cgroupFd) == 0;
            if (intoCgroup) flags |= Libc.POSIX_SPAWN_SETCGROUP;
            Libc.posix_spawnattr_setflags(attr, flags);
            Libc.posix_spawnattr_setsigdefault(attr, _sigDefault);
            Libc.posix_spawnattr_setsigmask(attr, _sigMask);

            int rc = Libc.posix_spawn(out int pid, path, fa, attr, argv, envp);
            if (rc != 0) return Failed(spec, rc);
            _running[pid] = onExit;
            bool inCgroup = spec.Cgroup is not null && (intoCgroup || Containment.Enter(spec.Cgroup, pid));
            if (spec.Cgroup is not null) CgroupEntry = intoCgroup ? CgroupEntries.Glibc : CgroupEntries.Moved;
            return Started(spec, pid, inCgroup);
        }
        finally
        {
            if (cgroupFd >= 0) Libc.close(cgroupFd);
            Libc.posix_spawn_file_actions_destroy(fa);
            Libc.posix_spawnattr_destroy(attr);
        }
    }

    private static LaunchResult Failed(LaunchSpec spec, int errno) =>
        new LaunchResult.Failed($"cannot start {spec.Argv[0]}: {new System.ComponentModel.Win32Exception(errno).Message}");

    private static LaunchResult Started(LaunchSpec spec, int pid, bool inCgroup)
    {
        // A cgroup v1 memory hierarchy has no CLONE_INTO_CGROUP: the process is moved there after its spawn.
        if (spec.MemoryCgroup is not null) Containment.Enter(spec.MemoryCgroup, pid);
        // The start time tells a live process from a reused pid; only re-attachable tasks need it.
        return new LaunchResult.Started(pid, spec.RecordStartTime ? ProcessTable.StartTime(pid) ?? 0 : 0, inCgroup);
    }

    /// <summary>How the last process started with a cgroup got into it (null before the first): its owner says it once.</summary>
    public CgroupEntries? CgroupEntry { get; private set; }

    /// <summary>Signals the whole process group led by <paramref name="pid"/>.</summary>
    public static bool SignalGroup(int pid, int signal) => pid > 1 && Libc.kill(-pid, signal) == 0;

    /// <summary>Collects every ended child and runs its exit callback. Cheap when nothing ended.</summary>
    public void Reap()
    {
        if (_running.Count == 0) return;
        _exited.Clear();
        foreach (var (pid, onExit) in _running)
        {
            int r = Libc.waitpid(pid, out int status, Libc.WNOHANG);
            if (r == pid) _exited.Add((pid, ProcessExit.FromWaitStatus(status), onExit));
            else if (r < 0 && Marshal.GetLastPInvokeError() == Libc.ECHILD) _exited.Add((pid, new ProcessExit(null, null), onExit));
        }
        foreach (var e in _exited)
        {
            _running.Remove(e.Pid);
            e.OnExit(e.Exit);
        }
    }

    /// <summary>PATH look-ups found before, so a stream of `true`s doesn't stat every PATH entry each time.
    /// A stale entry only means posix_spawn reports the command missing.</summary>
    private readonly System.Collections.Concurrent.ConcurrentDictionary<(string Path, string Name), string> _found = new();

    private string? ResolveExecutable(string name, IReadOnlyDictionary<string, string> env)
    {
        if (name.Contains('/')) return File.Exists(name) ? name : null;
        var path = env.TryGetValue("PATH", out var p) ? p : "/usr/local/bin:/usr/bin:/bin";
        if (_found.TryGetValue((path, name), out var cached)) return cached;
        var exe = Search(name, path);
        if (exe is not null) _found[(path, name)] = exe;
        return exe;
    }

    private static string? Search(string name, string path)
    {
        foreach (var dir in path.Split(':', StringSplitOptions.RemoveEmptyEntries))
        {
            var candidate = System.IO.Path.Combine(dir, name);
            if (File.Exists(candidate) && (File.GetUnixFileMode(candidate) & (UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute)) != 0)
                return candidate;
        }
        return null;
    }

    public void Dispose()
    {
        _registration.Dispose();
        Marshal.FreeHGlobal(_sigDefault);
        Marshal.FreeHGlobal(_sigMask);
    }

    /// <summary>Native memory for one spawn, freed together.</summary>
    private sealed class NativeArena : IDisposable
    {
        private readonly List<nint> _blocks = new();

        public nint Alloc(int size)
        {
            var p = Marshal.AllocHGlobal(size);
            new Span<byte>((void*)p, size).Clear();
            _blocks.Add(p);
            return p;
        }

        public byte* Utf8(string s)
        {
            int n = Encoding.UTF8.GetByteCount(s);
            var p = (byte*)Alloc(n + 1);
            Encoding.UTF8.GetBytes(s, new Span<byte>(p, n));
            return p;
        }

        public byte** StringArray(IReadOnlyList<string> items)
        {
            var arr = (byte**)Alloc((items.Count + 1) * sizeof(nint));
            for (int i = 0; i < items.Count; i++) arr[i] = Utf8(items[i]);
            arr[items.Count] = null;
            return arr;
        }

        public void Dispose()
        {
            foreach (var b in _blocks) Marshal.FreeHGlobal(b);
        }
    }
}

public static class Signals
{
    public const int Term = 15;
    public const int Kill = 9;
}
