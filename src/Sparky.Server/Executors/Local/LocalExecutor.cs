using Sparky.Core.Config;
using Sparky.Core.Scheduling;
using Sparky.Core.Tasks;
using Sparky.Execution.Processes;
using Sparky.Store.Sqlite;

namespace Sparky.Server.Executors.Local;

/// <summary>What a local start gave: the launch's result and the exit file the shim writes (re-attachable classes only).</summary>
public readonly record struct LocalStart(LaunchResult Launch, string? ExitFile);

/// <summary>
/// The local executor: runs attempts as process trees on this host. It owns what only a local attempt has: the
/// process launcher (pids, SIGCHLD, reaping), containment (a cgroup per attempt, the environment marker, memory
/// limits), the re-attach shim and its exit files, and the environment a task starts from. The engine's loop is
/// its only caller, so nothing here is shared between threads except what <see cref="Containment"/> guards.
/// </summary>
public sealed class LocalExecutor : IDisposable
{
    private readonly ProcessLauncher _launcher;
    private readonly IReadOnlySet<string> _reattachClasses;
    private readonly string _runDir;
    private readonly Dictionary<string, string> _baseEnv;

    /// <param name="wake">Called (on a signal thread) when a child exits: the loop then calls <see cref="Reap"/>.</param>
    public LocalExecutor(SparkyConfig config, string instance, string runDir, Action wake)
    {
        _launcher = new ProcessLauncher(wake);
        _reattachClasses = config.ReattachClasses;
        _runDir = runDir;
        Containment = Containment.Create(config.Containment, instance, config.EnforceMemory);
        _baseEnv = InheritedEnvironment();
    }

    /// <summary>This process's environment without its own <c>SPARKY_</c> settings: what a task (here or on a worker)
    /// starts from. The daemon's settings are not the task's business, and the token is a secret.</summary>
    public static Dictionary<string, string> InheritedEnvironment()
    {
        var env = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (System.Collections.DictionaryEntry kv in Environment.GetEnvironmentVariables())
        {
            var key = (string)kv.Key;
            if (!key.StartsWith("SPARKY_", StringComparison.Ordinal)) env[key] = (string?)kv.Value ?? "";
        }
        return env;
    }

    /// <summary>How attempts' processes are kept together; the plan runner marks its gate checks with it.</summary>
    public Containment Containment { get; }

    /// <summary>The environment tasks start from: the daemon's, without its own SPARKY_ settings (the token is a secret).</summary>
    public IReadOnlyDictionary<string, string> BaseEnvironment => _baseEnv;

    /// <summary>Processes started and not yet reaped: the loop looks at least twice a second while there are any.</summary>
    public int RunningCount => _launcher.RunningCount;

    /// <summary>Cgroups of ended attempts wait for their last processes: the loop comes back shortly to remove them.</summary>
    public bool HasPending => Containment.HasPending;

    /// <summary>Runs the exit callbacks of every child that ended. Cheap when none did.</summary>
    public void Reap() => _launcher.Reap();

    /// <summary>Removes the cgroups whose last processes have exited since their attempt ended.</summary>
    public void Sweep() => Containment.Sweep();

    /// <summary>
    /// Starts an attempt of <paramref name="spec"/>: <paramref name="argv"/> (its command, or its class's handler) with
    /// the daemon's environment, the task's, the attempt's marker and its GPUs, in its own session and cgroups (held
    /// to the memory it asked for), under the shim that records its exit code where its class survives a restart.
    /// <paramref name="onExit"/> runs in <see cref="Reap"/> once it has ended.
    /// </summary>
    public LocalStart Start(TaskId id, int attempt, TaskSpec spec, Allocation allocation, IReadOnlyList<string> argv, string? payloadFile,
        string stdout, string stderr, Action<ProcessExit> onExit)
    {
        bool shim = _reattachClasses.Contains(spec.Class);
        var exitFile = shim ? Path.Combine(_runDir, $"{id.Value}.{attempt}.exit") : null;
        var env = new Dictionary<string, string>(_baseEnv, StringComparer.Ordinal);
        foreach (var (k, v) in spec.Env) env[k] = v;
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
        return new LocalStart(launch, exitFile);
    }

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
    public static bool HasEnded(int pid, long pidStart) => !ProcessTable.IsSameProcess(pid, pidStart);

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
    public static void DeleteExitFileOnceStored(Task<WriteResult> write, string? exitFile)
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
        if (killed > 0) Console.Error.WriteLine($"sparky: ended {killed} process(es) a previous daemon left running");
    }

    public void Dispose()
    {
        _launcher.Dispose();
        Containment.Close();
    }
}
