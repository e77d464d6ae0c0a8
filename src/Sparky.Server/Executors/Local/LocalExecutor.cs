using Sparky.Core.Lifecycle;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using Sparky.Core.Config;
using Sparky.Core.Events;
using Sparky.Core.Scheduling;
using Sparky.Core.Tasks;
using Sparky.Execution.Processes;
using Sparky.Server.Events;
using Sparky.Store.Sqlite;

namespace Sparky.Server.Executors.Local;

/// <summary>A process on this host. <paramref name="Spawned"/>: started by this daemon, so its pid (and group) is ours
/// until reaped, never a stale one from the store. <paramref name="Reattached"/>: found running after a restart; its
/// end is read from <paramref name="ExitFile"/>, written by the shim it runs under.</summary>
internal sealed record LocalPlacement(int Pid, long PidStart, string? ExitFile, bool Spawned, bool Reattached) : Placement;

/// <summary>What a local start gave: the launch's result and the exit file the shim writes (re-attachable classes only).</summary>
public readonly record struct LocalStart(LaunchResult Launch, string? ExitFile);

/// <summary>
/// The local executor: runs attempts as process trees on this host. It owns what only a local attempt has: the
/// process launcher (pids, SIGCHLD, reaping), containment (a cgroup per attempt, the environment marker, memory
/// limits), the re-attach shim and its exit files, and the environment a task starts from. The engine's loop is
/// its only caller, so nothing here is shared between threads except what <see cref="Containment"/> guards.
/// </summary>
internal sealed class LocalExecutor : IExecutor, IDisposable
{
    private readonly ProcessLauncher _launcher;
    private readonly IReadOnlySet<string> _reattachClasses;
    private readonly string _runDir;
    private readonly Dictionary<string, string> _baseEnv;

    private readonly string _instance;
    private readonly IAttemptHost _host;
    private readonly SqliteStore _store;
    private readonly EventHub _events;
    private readonly TaskLogs _logs;
    private readonly ILogger _log;
    private readonly ClassHandlers _handlers;
    private readonly Action<TaskId, int, ProcessExit> _exited;
    /// <summary>Attempts found running after a restart: not our children, so their ends are looked for here.</summary>
    private readonly List<Attempt> _reattached = new();
    /// <summary>Processes carrying this daemon's marker, read once at recovery.</summary>
    private Dictionary<string, MarkedProcess>? _live;
    /// <summary>Ports reserved for running attempts (by task: two attempts of one task never run at once). A re-attached
    /// attempt's port is read back from its environment (<c>SPARKY_PORT</c>), so nothing more is stored.</summary>
    private readonly PortAllocator _ports = new(PortAllocator.DefaultFirst, PortAllocator.DefaultLast, Sparky.Execution.Host.PortProbe.IsFree);

    /// <param name="wake">Called (on a signal thread) when a child exits: the loop then calls <see cref="Reap"/>.</param>
    /// <param name="exited">Called from <see cref="Reap"/> with an attempt's exit: the engine queues it for its loop.</param>
    public LocalExecutor(SparkyConfig config, string instance, string runDir, Action wake, IAttemptHost host, SqliteStore store,
        EventHub events, TaskLogs logs, ClassHandlers handlers, ILoggerFactory logFactory, Action<TaskId, int, ProcessExit> exited)
    {
        _launcher = new ProcessLauncher(wake);
        _reattachClasses = config.ReattachClasses;
        _runDir = runDir;
        _instance = instance;
        _host = host;
        _store = store;
        _events = events;
        _logs = logs;
        _handlers = handlers;
        _exited = exited;
        _log = logFactory.CreateLogger<LocalExecutor>();
        Containment = Containment.Create(config.Containment, instance, config.EnforceMemory, logFactory.CreateLogger<Containment>());
        _baseEnv = TaskEnvironment.Inherited();
    }

    /// <summary>How attempts' processes are kept together; the plan runner marks its gate checks with it.</summary>
    public Containment Containment { get; }

    /// <summary>The environment tasks start from: the daemon's, without its own SPARKY_ settings (the token is a secret).</summary>
    public IReadOnlyDictionary<string, string> BaseEnvironment => _baseEnv;

    /// <summary>Processes started and not yet reaped: the loop looks at least twice a second while there are any.</summary>
    public int RunningCount => _launcher.RunningCount;

    /// <summary>Runs the exit callbacks of every child that ended. Cheap when none did.</summary>
    public void Reap() => _launcher.Reap();

    /// <summary>
    /// Starts an attempt of <paramref name="spec"/>: <paramref name="argv"/> (its command, or its class's handler) with
    /// the daemon's environment, the task's, the attempt's marker and its GPUs, in its own session and cgroups (held
    /// to the memory it asked for), under the shim that records its exit code where its class survives a restart.
    /// <paramref name="onExit"/> runs in <see cref="Reap"/> once it has ended.
    /// </summary>
    private LocalStart Launch(TaskId id, int attempt, TaskSpec spec, Allocation allocation, IReadOnlyList<string> argv, string? payloadFile,
        string stdout, string stderr, Action<ProcessExit> onExit)
    {
        int? port = null;
        if (DistributedEnv.WantsPort(spec, allocation.GpuUuids.Count) && (port = _ports.Reserve(id.Value)) is null)
            return new LocalStart(new LaunchResult.Failed(
                $"no free port to reserve: every port from {PortAllocator.DefaultFirst} to {PortAllocator.DefaultLast} is held or in use"), null);
        bool shim = _reattachClasses.Contains(spec.Class);
        var exitFile = shim ? Path.Combine(_runDir, $"{id.Value}.{attempt}.exit") : null;
        var env = new Dictionary<string, string>(_baseEnv, StringComparer.Ordinal);
        foreach (var (k, v) in spec.Env) env[k] = v;
        foreach (var (k, v) in DistributedEnv.Local(spec, allocation.GpuUuids.Count, port)) env[k] = v;
        Containment.Mark(env, id.Value, attempt);
        if (spec.ArrayIndex is { } idx) env["SPARKY_ARRAY_INDEX"] = idx.ToString();
        GpuEnvironment(env, allocation);
        if (payloadFile is not null) env["SPARKY_PAYLOAD_FILE"] = payloadFile;
        if (exitFile is not null)
        {
            env["SPARKY_EXIT_FILE"] = exitFile;
            argv = ["/bin/sh", "-c", "\"$@\"; rc=$?; echo $rc > \"$SPARKY_EXIT_FILE\"; exit $rc", "sparky-shim", .. argv];
        }
        var cgroups = Containment.Prepare(id.Value, attempt, spec.MemoryMb * 1024 * 1024);
        var launch = _launcher.Launch(new LaunchSpec(argv, env, spec.Cwd, stdout, stderr, RecordStartTime: shim, Cgroup: cgroups.Unified,
            StdinPath: payloadFile, MemoryCgroup: cgroups.Memory), onExit);
        if (_launcher.CgroupEntry is { } entry && entry != _saidCgroupEntry)
        {
            _saidCgroupEntry = entry;
            Daemon.EngineLog.CgroupEntry(_log, Describe(entry));
        }
        return new LocalStart(launch, exitFile);
    }

    private CgroupEntries? _saidCgroupEntry;

    /// <summary>The daemon's log line, once, on how tasks get into their cgroups (a change of it, once more).</summary>
    internal static string Describe(CgroupEntries entry) => entry switch
    {
        CgroupEntries.Clone3 => "tasks start inside their cgroups (clone3 with CLONE_INTO_CGROUP, the native build's spawn)",
        CgroupEntries.Glibc => "tasks start inside their cgroups (clone3 with CLONE_INTO_CGROUP, glibc's posix_spawn)",
        _ => "tasks are moved into their cgroups right after they start (no CLONE_INTO_CGROUP: the JIT build with glibc before 2.39, or the kernel or an emulator refused it)",
    };

    /// <summary>Starts the attempt as a process tree: its command, or its class's handler reading its payload.</summary>
    public void Start(Attempt run, TaskSpec spec, Allocation allocation, DateTimeOffset now)
    {
        var (id, n) = (run.Id, run.N);
        IReadOnlyList<string> argv = spec.HandlerPayload is null ? spec.CommandLine : _handlers.HandlerOf(spec.Class).Handler!;
        if (spec.HandlerPayload is { } payload) run.PayloadFile = _handlers.WritePayloadFile(id, n, payload);
        _host.Report(run, new LifeEvent.UnderWay(spec.TimeoutSeconds), now);
        var stderr = _logs.PathOf(id, n, stderr: true);
        var (launch, exitFile) = Launch(id, n, spec, allocation, argv, run.PayloadFile, run.StdoutPath, stderr, exit => _exited(id, n, exit));
        if (launch is LaunchResult.Started started)
        {
            run.Place = new LocalPlacement(started.Pid, started.StartTime, exitFile, Spawned: true, Reattached: false);
            _ = _store.AttemptStartedAsync(id, spec.Class, TaskState.Queued,
                new AttemptRecord(n, run.StartedAt, null, null, null, started.Pid, started.StartTime, Environment.MachineName, null, null, exitFile));
            _events.Publish(TaskEvents.Of(SparkyEvent.TaskStarted, id, spec.Class, now, new JsonObject { ["attempt"] = n, ["pid"] = started.Pid }));
        }
        else
        {
            _ports.Release(id.Value);
            // The spawn's caller has written why to the attempt's stderr log.
            var reason = ((LaunchResult.Failed)launch).Reason;
            try { File.AppendAllText(stderr, "sparky: " + reason + "\n"); } catch (IOException) { }
            _host.FailStart(run, reason, now);
        }
    }

    public bool KillsAfterGrace => true;

    public void Stop(Attempt run, int signal) => Signal(run.Id, run.N, run.Place is LocalPlacement lp ? lp.Pid : 0, signal);

    /// <summary>A process is under way from its start: it is signalled.</summary>
    public Withdrawn Withdraw(Attempt run) => Withdrawn.No;

    /// <summary>Nothing an attempt started outlives it: children that ignored SIGTERM, left its group or session, or were
    /// left running behind a clean exit, so none can overlap a retry. A pid read back from the store is not signalled
    /// (it may be another process's by now); its processes are found by cgroup and marker.</summary>
    public Released Release(Attempt run, bool failed, AttemptUsage reported)
    {
        var lp = run.Place as LocalPlacement;
        if (lp is { Reattached: true }) _reattached.Remove(run);
        _ports.Release(run.Id.Value);
        return new Released(Release(run.Id, run.N, lp is { Spawned: true } or { Reattached: true } ? lp.Pid : 0, failed));
    }

    public void Settled(Attempt run, Task<WriteResult> endWrite, bool final) =>
        DeleteExitFileOnceStored(endWrite, (run.Place as LocalPlacement)?.ExitFile);

    public void EndedUnstarted(TaskId id, Task<WriteResult> write) { }

    /// <summary>Reads which processes carry this daemon's marker: the attempts it left, recorded or not.</summary>
    public void BeginRecovery() => _live = ProcessTable.FindMarked("SPARKY_INSTANCE", _instance);

    /// <summary>A queued task with a live process was started by a dead daemon that never recorded it: never two.</summary>
    public void RecoverQueued(TaskId id)
    {
        if (_live is not null && _live.TryGetValue(id.Value, out var proc) && proc.Pid > 0) ProcessLauncher.SignalGroup(proc.Pid, Signals.Kill);
    }

    /// <summary>A re-attachable attempt still running under its shim is followed again; any other is killed (so it never
    /// runs twice) and ends with what its exit file says, or as lost.</summary>
    public RecoveredEnd? Recover(Attempt run, TaskSpec? spec, AttemptRecord? a, DateTimeOffset now)
    {
        var proc = _live is not null && _live.TryGetValue(run.Id.Value, out var p) ? p : default;
        run.Place = new LocalPlacement(proc.Pid > 0 ? proc.Pid : a?.Pid ?? 0, proc.Pid > 0 ? proc.StartTime : a?.PidStart ?? 0, a?.ExitFile,
            Spawned: false, Reattached: false);
        if (spec?.HandlerPayload is not null) run.PayloadFile = _handlers.PayloadPath(run.Id, run.N);
        bool alive = proc.Pid > 0 && proc.Attempt == run.N;
        if (alive && a?.ExitFile is not null)
        {
            run.Place = ((LocalPlacement)run.Place) with { Reattached = true };
            _reattached.Add(run);
            // Its port stays its own: no task started after the restart is given it.
            if (proc.Port is { } port) _ports.Hold(run.Id.Value, port);
            // Its timeout counts from its recorded start; a stop stored before the restart is signalled again.
            _host.Report(run, new LifeEvent.UnderWay(spec?.TimeoutSeconds, DateTimeOffset.FromUnixTimeMilliseconds(run.StartedAt)), now);
            return null;
        }
        // Any other live process of this task (no shim, or an attempt the store never recorded) must not run beside the retry.
        if (proc.Pid > 0) ProcessLauncher.SignalGroup(proc.Pid, Signals.Kill);
        var exit = alive ? null : ReadExitFile(a?.ExitFile);
        return new RecoveredEnd(exit ?? new ProcessExit(null, null), exit is null ? Reasons.Lost : null);
    }

    /// <summary>The GPUs a live process of <paramref name="id"/> was given (its environment says), for the scheduler.</summary>
    public IReadOnlyList<string>? RecoveredGpus(TaskId id) =>
        _live is not null && _live.TryGetValue(id.Value, out var p) && p.Pid > 0 ? p.Gpus : null;

    /// <summary>Before any retry or new start: every process the dead daemon left (a task's children in sessions of their
    /// own, an attempt it never recorded, a plan's gate check) is ended, except the re-attached attempts' trees.</summary>
    public void EndRecovery()
    {
        EndLeftovers(_reattached.Select(r => (r.Id.Value, r.N)).ToHashSet());
        _live = null;
    }

    /// <summary>A re-attached attempt is not our child: its exit status comes from the shim's exit file once it is gone.</summary>
    public void Tick(DateTimeOffset now)
    {
        Containment.Sweep();
        if (_reattached.Count == 0) return;
        foreach (var r in _reattached.ToList())
        {
            if (r.Place is not LocalPlacement lp || !HasEnded(lp.Pid, lp.PidStart)) continue;
            var exit = ReadExitFile(lp.ExitFile);
            _host.Ended(r, exit ?? new ProcessExit(null, null), exit is null ? Reasons.Lost : null, now);
        }
    }

    /// <summary>Re-attached attempts are looked at twice a second; an ended attempt's cgroup is removed once its killed
    /// leftovers have exited, so the loop comes back shortly for it, even when idle.</summary>
    public DateTimeOffset? NextWake(DateTimeOffset now) =>
        Containment.HasPending ? now.AddMilliseconds(100) : _reattached.Count > 0 ? now.AddMilliseconds(500) : null;

    /// <summary>GPUs by UUID, in PCI bus order so indices inside the task match nvidia-smi; a task given
    /// no GPU sees none (an empty list), so it cannot grab one by default.</summary>
    private static void GpuEnvironment(Dictionary<string, string> env, Allocation allocation)
    {
        env["CUDA_VISIBLE_DEVICES"] = string.Join(',', allocation.GpuUuids);
        if (allocation.GpuUuids.Count == 0) return;
        env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID";
        // A share of one GPU: the task's budget on it, for frameworks that can cap themselves.
        if (allocation.Request.GpuMemoryMb > 0) env["SPARKY_GPU_MEMORY_MB"] = allocation.Request.GpuMemoryMb.ToString();
    }

    /// <summary>Signals an attempt's whole tree: its process group (<paramref name="pid"/> leads it; 0: none known),
    /// and children in groups or sessions of their own (timeout, setsid, set -m) through its cgroup and marker.</summary>
    public void Signal(TaskId id, int attempt, int pid, int signal)
    {
        ProcessLauncher.SignalGroup(pid, signal);
        Containment.Signal(id.Value, attempt, signal);
    }

    /// <summary>An attempt ended: whatever it left is ended and its cgroups go (see <see cref="Containment.Release"/>).
    /// <paramref name="ownPid"/>: its process group's leader where that pid is ours (not one read back from the store).</summary>
    public AttemptUsage Release(TaskId id, int attempt, int ownPid, bool failed) =>
        Containment.Release(id.Value, attempt, ownPid, scanMarked: failed);

    /// <summary>A re-attached attempt is not our child: its end shows as its process gone (or its pid reused).</summary>
    private static bool HasEnded(int pid, long pidStart) => !ProcessTable.IsSameProcess(pid, pidStart);

    /// <summary>The exit the shim recorded for a re-attached attempt; null where it wrote none (killed with it).</summary>
    public static ProcessExit? ReadExitFile(string? path)
    {
        if (path is null) return null;
        try
        {
            var text = File.ReadAllText(path).Trim();
            if (!int.TryParse(text, out int rc)) return null;
            // The shim only sees $?, where death by signal N reads 128+N.
            return rc > 128 && rc < 160 ? new ProcessExit(rc, rc - 128) : new ProcessExit(rc, null);
        }
        catch (IOException) { return null; }
    }

    /// <summary>The exit file is the only record of a re-attachable attempt's result until its end is committed.</summary>
    private static void DeleteExitFileOnceStored(Task<WriteResult> write, string? exitFile)
    {
        if (exitFile is null) return;
        write.ContinueWith(t =>
        {
            if (t.Result.Status != WriteStatus.Ok) return;
            try { File.Delete(exitFile); } catch (IOException) { }
        }, TaskContinuationOptions.ExecuteSynchronously);
    }

    /// <summary>
    /// After a restart, before anything starts: ends every process a previous daemon left (tasks' children in sessions
    /// of their own, an attempt it never recorded, a plan's gate check), except the re-attached attempts'.
    /// </summary>
    public void EndLeftovers(IReadOnlySet<(string Task, int Attempt)> keep)
    {
        int killed = Containment.EndAllExcept(keep, TimeSpan.FromSeconds(2));
        if (killed > 0) Daemon.EngineLog.LeftoversEnded(_log, killed);
    }

    public void Dispose()
    {
        _launcher.Dispose();
        Containment.Close();
    }
}
