using System.Buffers;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using PolyType;
using Sparky.Core.Config;
using Sparky.Core.Events;
using Sparky.Core.Lifecycle;
using Sparky.Core.Scheduling;
using Sparky.Core.Tasks;
using Sparky.Core.Workers;
using Sparky.Execution.Processes;
using Sparky.Execution.Slurm;
using Sparky.Server.Daemon;
using Sparky.Server.Events;
using Sparky.Store.Sqlite;
using Sparky.Workers.Protocol;

namespace Sparky.Server.Executors.Workers;

/// <summary>
/// The worker executor: tasks of worker classes go to workers connected over ZeroMQ (see <c>docs/workers.md</c>).
/// A worker says hello with what it offers and pulls with credits; the daemon gives it at most that many tasks, and
/// hears back one <c>finished</c> per task. A worker silent past <c>worker_timeout</c> is lost: the tasks it held end
/// as <c>worker_lost</c> and are queued again at once. It owns the sessions (WorkerExecutor.Sessions.cs has their
/// messages) and the pilots that bring workers up on Slurm (<see cref="Pilots"/>). Everything here runs on the engine's
/// loop thread, but for the counts read for tests.
/// </summary>
internal sealed partial class WorkerExecutor : IExecutor
{
    /// <summary>Ends for attempts a session was never given, before it is closed as a misbehaving (or forged) worker.</summary>
    public const int MaxBogusEnds = 100;

    private readonly SparkyConfig _config;
    private readonly Func<WorkerLink?> _link;
    private readonly IAttemptHost _host;
    private readonly SqliteStore _store;
    private readonly EventHub _events;
    private readonly TaskLogs _logs;
    private readonly ClassHandlers _handlers;
    private readonly IEngineObserver _observer;
    private readonly ILogger _log;
    private readonly TimeProvider _clock;
    private readonly Action<string, int> _setLimit;
    private readonly Func<string, int> _readyCount;
    private readonly IReadOnlySet<string> _workerClasses;

    private readonly Dictionary<string, SessionGuard> _guards = new(StringComparer.Ordinal);
    private long _bogusEnds;
    private readonly WorkerPool _workers = new();
    private readonly Dictionary<string, byte[]> _workerIdentity = new(StringComparer.Ordinal);
    /// <summary>Attempts of worker classes started and waiting for a worker's credit.</summary>
    private readonly List<Attempt> _awaitingWorker = new();
    /// <summary>Attempts found running on a worker at start whose worker has not said hello yet.</summary>

    /// <summary>Numbers every task message; a worker's heartbeat says the highest it has seen.</summary>
    private long _taskSeq;
    /// <summary>Ends handled per session since its last heartbeat: acknowledged in the heartbeat's answer.</summary>
    private readonly Dictionary<string, List<AttemptRef>> _acks = new(StringComparer.Ordinal);
    private readonly ArrayBufferWriter<byte> _workerBuffer = new(4096);

    /// <param name="link">The command socket, once the daemon has bound it; null: no worker can be reached.</param>
    /// <param name="clock">The engine's (steady) clock: what worker events are stamped with.</param>
    /// <param name="setLimit">Sets a class's limit in the scheduler: a worker class runs as many as its workers have slots.</param>
    /// <param name="readyCount">A class's tasks ready to start in the scheduler: what pilots are asked for.</param>
    public WorkerExecutor(SparkyConfig config, SlurmExecutor? slurm, Func<WorkerLink?> link, IAttemptHost host, SqliteStore store,
        EventHub events, TaskLogs logs, ClassHandlers handlers, IEngineObserver observer, ILogger log, TimeProvider clock,
        Action<string, int> setLimit, Func<string, int> readyCount)
    {
        _config = config;
        _link = link;
        _host = host;
        _store = store;
        _events = events;
        _logs = logs;
        _handlers = handlers;
        _observer = observer;
        _log = log;
        _clock = clock;
        _setLimit = setLimit;
        _readyCount = readyCount;
        _workerClasses = config.WorkerClasses;
        Pilots = new Pilots(config, slurm, link, _workers, observer, log, logs.Dir);
    }

    /// <summary>The pilot jobs that bring workers up on Slurm for the pilot classes.</summary>
    public Pilots Pilots { get; }

    /// <summary>Worker messages dropped: ends for attempts the session was not given, and messages under a session
    /// from another key. For tests and logs; any thread.</summary>
    public long RejectedMessages => Interlocked.Read(ref _bogusEnds);

    /// <summary>Waits for a worker's credit; recorded as started once a worker takes it.</summary>
    public void Start(Attempt run, TaskSpec spec, Allocation allocation, DateTimeOffset now)
    {
        run.Place = new WorkerPlacement(null, null, 0, null, spec, WholeGpus(spec, spec.Class));
        _awaitingWorker.Add(run);
        Dispatch(now);
    }

    /// <summary>A worker ends a task's tree as the daemon would: SIGKILL after the grace if SIGTERM did not end it.</summary>
    public bool KillsAfterGrace => true;

    /// <summary>A worker attempt is told to stop (cancel, timeout); its end comes back as a <c>finished</c>. One on no
    /// worker now (after a restart) is signalled when its worker comes back (<see cref="LifeEvent.Adopted"/>).</summary>
    public void Stop(Attempt run, int signal)
    {
        if (run.Place is WorkerPlacement { Session: { } session })
            SendToWorker(session, new Kill { Session = session, Id = run.Id.Value, Attempt = run.N, Signal = signal });
    }

    /// <summary>Not on any worker now: one waiting for a credit is taken back before it was recorded as started; one
    /// waiting for its worker to come back after a restart stops waiting.</summary>
    public Withdrawn Withdraw(Attempt run)
    {
        if (run.Place is not WorkerPlacement wp) return Withdrawn.No;
        if (wp.AdoptBy is not null)
        {
            run.Place = wp with { AdoptBy = null };
            return Withdrawn.Started;
        }
        if (wp.Session is not null) return Withdrawn.No;
        _awaitingWorker.Remove(run);
        return Withdrawn.Unstarted;
    }

    /// <summary>Its worker's slot comes back; its usage is what the worker's cgroups reported. Its outputs are seen
    /// where its worker writes on the daemon's file system (a pilot, or the same host) and its paths can be resolved.</summary>
    public Released Release(Attempt run, bool failed, AttemptUsage reported)
    {
        var wp = run.Place as WorkerPlacement;
        var worker = wp is not null ? _workers.Get(wp.Session) : null;
        if (worker is not null) _workers.Release(worker, run.Id);
        // The worker read the result line from the output it wrote, and notes an OOM kill in the attempt's log itself.
        return new Released(reported, run.Outputs is { Count: > 0 } outputs ? OutputsUnseen(run, outputs, worker?.Info) : null,
            wp is null ? null : new ResultRead(wp.Result, wp.ResultError), WritesNotes: true);
    }

    private static string? OutputsUnseen(Attempt run, IReadOnlyList<DeclaredOutput> outputs, WorkerInfo? worker)
    {
        if (worker is null) return "its worker is gone; where it ran is not known";
        bool sameFiles = worker.Pilot is not null || string.Equals(worker.Host, Environment.MachineName, StringComparison.OrdinalIgnoreCase);
        if (!sameFiles) return $"it ran on worker '{worker.Name}' on host {worker.Host}, whose files the daemon cannot see";
        // A worker's relative working directory is from its own, which the daemon does not know.
        if ((run.Cwd is null || !Path.IsPathRooted(run.Cwd)) && outputs.Any(o => !Path.IsPathRooted(o.Path)))
            return $"it ran on worker '{worker.Name}' without an absolute working directory, so its relative paths are not known here";
        return null;
    }

    public void Settled(Attempt run, Task<WriteResult> endWrite, bool final) { }

    public void EndedUnstarted(TaskId id, Task<WriteResult> write) { }

    public void RecoverQueued(TaskId id) { }

    /// <summary>After a restart: an attempt a worker was running is followed again if that worker says hello in time.</summary>
    public RecoveredEnd? Recover(Attempt run, TaskSpec? spec, AttemptRecord? a, DateTimeOffset now)
    {
        // A worker hears nothing for one timeout before it says hello again; give it two.
        var by = now + 2 * _config.WorkerTimeout;
        run.Place = new WorkerPlacement(null, a?.Host, 0, AdoptBy: by, spec, WholeGpus(spec, run.Class));
        // Past that deadline its life ends it as worker_lost; its timeout counts from its recorded start.
        _host.Report(run, new LifeEvent.AwaitingWorker(by), now);
        _host.Report(run, new LifeEvent.UnderWay(spec?.TimeoutSeconds, DateTimeOffset.FromUnixTimeMilliseconds(run.StartedAt)), now);
        return null;
    }

    /// <summary>Silent workers, and pilots. (A restarted daemon's adopt deadlines are its tasks' lives'.)</summary>
    public void Tick(DateTimeOffset now)
    {
        CheckWorkers(now);
        Pilots.Manage(now, PilotBacklog);
    }

    public DateTimeOffset? NextWake(DateTimeOffset now)
    {
        if (_workerClasses.Count == 0) return null;
        var next = _workers.NextSilence(_config.WorkerTimeout);
        if (Pilots.NextCheck is { } check && (_awaitingWorker.Count > 0 || _config.PilotClasses.Any(c => _readyCount(c) > 0)))
            next = Earliest(next, check);
        return next;
    }

    private static DateTimeOffset? Earliest(DateTimeOffset? a, DateTimeOffset? b) => a is null || (b is not null && b < a) ? b : a;

    private void CheckWorkers(DateTimeOffset now)
    {
        if (_workerClasses.Count == 0) return;
        foreach (var w in _workers.Silent(now, _config.WorkerTimeout))
            LoseWorker(w, now, $"silent for {(now - w.LastSeen).TotalSeconds:0.#} s");
    }

    /// <summary>The pilot classes' tasks waiting: ready in the scheduler, or started and waiting for a credit.</summary>
    private int PilotBacklog()
    {
        int backlog = 0;
        foreach (var cls in _config.PilotClasses) backlog += _readyCount(cls);
        foreach (var r in _awaitingWorker) if (_config.PilotClasses.Contains(r.Class)) backlog++;
        return backlog;
    }

    /// <summary>Gives waiting attempts to workers with credits, oldest first; one that fits no worker now does not block the rest.</summary>
    private void Dispatch(DateTimeOffset now)
    {
        if (_awaitingWorker.Count == 0 || _workers.Count == 0) return;
        int kept = 0;
        for (int i = 0; i < _awaitingWorker.Count; i++)
        {
            var r = _awaitingWorker[i];
            if (!ReferenceEquals(_host.InFlight(r.Id), r)) continue; // cancelled meanwhile
            var w = _workers.Assign(r.Id, r.Class, ((WorkerPlacement)r.Place).Gpus);
            if (w is null) { _awaitingWorker[kept++] = r; continue; }
            SendTask(w, r, now);
        }
        _awaitingWorker.RemoveRange(kept, _awaitingWorker.Count - kept);
    }

    private void SendTask(Worker w, Attempt r, DateTimeOffset now)
    {
        var waiting = (WorkerPlacement)r.Place;
        var spec = waiting.Spec!;
        long seq = ++_taskSeq;
        r.Place = waiting with { Session = w.Session, Name = w.Info.Name, Seq = seq };
        r.StartedAt = now.ToUnixTimeMilliseconds();
        _host.Report(r, new LifeEvent.UnderWay(spec.TimeoutSeconds), now);
        r.MemoryMb = spec.MemoryMb;
        var env = new Dictionary<string, string?>(spec.Env, StringComparer.Ordinal)
        {
            ["SPARKY_TASK_ID"] = r.Id.Value, ["SPARKY_ATTEMPT"] = r.N.ToString(),
        };
        if (spec.ArrayIndex is { } idx) env["SPARKY_ARRAY_INDEX"] = idx.ToString();
        // The world size, as a local task gets it. Its port is the worker's to reserve (see TaskMessage.Port): the
        // daemon's PortAllocator probes the daemon's host, and a worker on another host (or beside other workers) has
        // ports of its own in use; only the worker sees them and knows which of its tasks still hold one.
        foreach (var (k, v) in DistributedEnv.Local(spec, waiting.Gpus, port: null)) env[k] = v;
        // A payload that names work goes with its class's handler; the worker writes it to a file of its own for it.
        var command = spec.HandlerPayload is null ? spec.CommandLine : _handlers.HandlerOf(spec.Class).Handler ?? [];
        SendToWorker(w.Session, new TaskMessage
        {
            Session = w.Session, Seq = seq, Id = r.Id.Value, Attempt = r.N, Command = [.. command], Env = env, Cwd = spec.Cwd,
            Gpus = waiting.Gpus, Stdout = r.StdoutPath, Stderr = _logs.PathOf(r.Id, r.N, stderr: true), Payload = spec.HandlerPayload,
            MemoryMb = spec.MemoryMb > 0 ? spec.MemoryMb : null, // the worker holds the task to it, as the daemon would
            Port = DistributedEnv.WantsPort(spec, waiting.Gpus) ? true : null,
        });
        _ = _store.AttemptStartedAsync(r.Id, r.Class, TaskState.Queued,
            new AttemptRecord(r.N, r.StartedAt, null, null, null, null, null, w.Info.Name, null, null, null));
        _events.Publish(TaskEvents.Of(SparkyEvent.TaskStarted, r.Id, r.Class, _clock.GetUtcNow(),
            new JsonObject { ["attempt"] = r.N, ["worker"] = w.Info.Name }));
    }

    private void SendToWorker<T>(string session, T body) where T : IMessage<T>, IShapeable<T>
    {
        if (_link() is not { } link || !_workerIdentity.TryGetValue(session, out var identity)) return;
        link.Send(identity, Encode([], body));
    }

    private byte[] Encode<T>(ReadOnlySpan<byte> corr, T body) where T : IMessage<T>, IShapeable<T>
    {
        _workerBuffer.ResetWrittenCount();
        WorkerWire.Write(_workerBuffer, corr, body);
        return _workerBuffer.WrittenSpan.ToArray();
    }

    /// <summary>A worker went quiet (or left mid-task): its tasks end as worker_lost and are queued again.</summary>
    private void LoseWorker(Worker w, DateTimeOffset now, string why)
    {
        var held = _workers.Remove(w.Session);
        ForgetSession(w.Session);
        WorkersLog.WorkerLost(_log, w.Info.Name, why, held.Count);
        _observer.WorkerLost();
        foreach (var id in held)
            if (_host.InFlight(id) is { Place: WorkerPlacement wp } r && wp.Session == w.Session)
                _host.Ended(r, new ProcessExit(null, null), Reasons.WorkerLost, now);
        Pilots.Gone(w, now);
        _events.Publish(WorkerEvent(SparkyEvent.WorkerLost, w, new JsonArray(held.Select(i => (JsonNode?)i.Value).ToArray())));
        WorkersChanged(now);
    }

    /// <summary>A session ended (or was replaced): what bound it to its peer goes.</summary>
    private void ForgetSession(string session)
    {
        _workerIdentity.Remove(session);
        _acks.Remove(session);
        _guards.Remove(session);
    }

    private void WorkersChanged(DateTimeOffset now)
    {
        UpdateWorkerLimits();
        _observer.WorkerCount(_workers.Count);
        Dispatch(now);
    }

    /// <summary>A worker class runs as many tasks at once as its workers have slots.</summary>
    private void UpdateWorkerLimits()
    {
        foreach (var cls in _workerClasses) _setLimit(cls, _workers.Capacity(cls));
    }

    private SparkyEvent WorkerEvent(string topic, Worker w, JsonArray? tasks)
    {
        var body = new JsonObject
        {
            ["name"] = w.Info.Name, ["host"] = w.Info.Host, ["slots"] = w.Info.Slots, ["gpus"] = w.Info.Gpus,
            ["pilot"] = w.Info.Pilot, ["workers"] = _workers.Count,
        };
        if (tasks is not null) body["tasks"] = tasks;
        return new SparkyEvent(topic, _clock.GetUtcNow().ToUnixTimeMilliseconds(), body);
    }

    /// <summary>The connected workers (by name) with the tasks each holds now, and how many attempts wait for a credit.</summary>
    /// <param name="nameOf">A task's name where the engine still keeps its spec.</param>
    public (IReadOnlyList<WorkerView> Workers, int AwaitingWorker) View(Func<TaskId, string?> nameOf)
    {
        var list = new List<WorkerView>(_workers.Count);
        foreach (var w in _workers.All.OrderBy(w => w.Info.Name, StringComparer.Ordinal))
        {
            var tasks = new List<RemoteTask>(w.Running.Count);
            foreach (var (id, gpus) in w.Running)
                if (_host.InFlight(id) is { } r)
                    tasks.Add(new RemoteTask(id, r.N, r.Class, nameOf(id), gpus, DateTimeOffset.FromUnixTimeMilliseconds(r.StartedAt)));
            tasks.Sort((a, b) => a.StartedAt.CompareTo(b.StartedAt));
            var classes = _workerClasses.Where(w.Serves).Order(StringComparer.Ordinal).ToList();
            list.Add(new WorkerView(w.Connection, w.Info, classes, w.Credits, w.FreeGpus, w.Draining, w.ConnectedAt, w.LastSeen, tasks));
        }
        return (list, _awaitingWorker.Count);
    }

    /// <summary>The whole GPUs a worker attempt holds: what it asked for, else one for a gpu task.</summary>
    private static int WholeGpus(TaskSpec? spec, string cls) => spec?.Gpus is > 0 and var g ? g : cls == Classes.Gpu ? 1 : 0;
}
