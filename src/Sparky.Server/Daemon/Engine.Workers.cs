using System.Buffers;
using System.Text.Json.Nodes;
using PolyType;
using Sparky.Core.Events;
using Sparky.Core.Lifecycle;
using Sparky.Core.Tasks;
using Sparky.Core.Workers;
using Sparky.Execution.Processes;
using Sparky.Server.Executors.Workers;
using Sparky.Server.Zmq;
using Sparky.Server.Executors;
using Sparky.Store.Sqlite;
using Sparky.Workers.Protocol;

namespace Sparky.Server.Daemon;

/// <summary>How the engine reaches workers: the command socket's send (any thread), and what pilots need to connect.</summary>
/// <param name="PilotKeyFile">The secret key file pilots authenticate with, where the daemon checks worker keys.</param>
public sealed record WorkerLink(Action<byte[], byte[]> Send, string Endpoint, string? ServerPublicKey, string? PilotKeyFile = null);

/// <summary>
/// The engine's worker half: tasks of worker classes go to workers connected over ZeroMQ (see <c>docs/workers.md</c>).
/// A worker says hello with what it offers and pulls with credits; the daemon gives it at most that many tasks, and
/// hears back one <c>finished</c> per task. A worker silent past <c>worker_timeout</c> is lost: the tasks it held end
/// as <c>worker_lost</c> and are queued again at once. Everything here runs on the engine's loop thread.
/// </summary>
public sealed partial class Engine
{
    /// <param name="Message">The body, read into its record by the command socket; null where it had none.</param>
    /// <param name="Key">The public key the message proved (where the command socket checks keys); null: none checked.</param>
    private sealed record WorkerMsgCmd(byte[] Identity, RequestType Type, byte[] Corr, IFromWorker? Message, string? Key) : Command;

    /// <summary>
    /// What binds a session to its worker: the key its hello proved (a hello under a live session's name from another
    /// key is refused), the attempts it ended lately (an end sent again is acknowledged, not counted), and how many
    /// messages it sent about attempts it was never given: past <see cref="MaxBogusEnds"/> the session is closed.
    /// </summary>
    private sealed class SessionGuard(string? key)
    {
        public string? Key { get; } = key;
        public int Bogus;
        private readonly Queue<(TaskId, int)> _order = new();
        private readonly HashSet<(TaskId, int)> _recent = new();

        public bool Recent(TaskId id, int attempt) => _recent.Contains((id, attempt));

        public void Remember(TaskId id, int attempt)
        {
            if (!_recent.Add((id, attempt))) return;
            _order.Enqueue((id, attempt));
            if (_order.Count > RecentEnds) _recent.Remove(_order.Dequeue());
        }
    }

    /// <summary>Ends a session remembers (for ends sent again); bounded, however long the session lives.</summary>
    private const int RecentEnds = 4096;
    /// <summary>Ends for attempts a session was never given, before it is closed as a misbehaving (or forged) worker.</summary>
    public const int MaxBogusEnds = 100;
    private readonly Dictionary<string, SessionGuard> _guards = new(StringComparer.Ordinal);
    private long _bogusEnds;
    /// <summary>Worker messages dropped: ends for attempts the session was not given, and messages under a session
    /// from another key. For tests and logs.</summary>
    public long RejectedWorkerMessages => Interlocked.Read(ref _bogusEnds);

    private readonly WorkerPool _workers = new();
    private readonly Dictionary<string, byte[]> _workerIdentity = new(StringComparer.Ordinal);
    /// <summary>Attempts of worker classes started and waiting for a worker's credit.</summary>
    private readonly List<Attempt> _awaitingWorker = new();
    private readonly Dictionary<TaskId, int> _lostRequeues = new();
    private readonly ArrayBufferWriter<byte> _workerBuffer = new(4096);
    private IReadOnlySet<string> _workerClasses = new HashSet<string>();
    /// <summary>Attempts found running on a worker at start whose worker has not said hello yet.</summary>
    private int _awaitingAdoption;
    /// <summary>Numbers every task message; a worker's heartbeat says the highest it has seen.</summary>
    private long _taskSeq;
    /// <summary>Ends handled per session since its last heartbeat: acknowledged in the heartbeat's answer.</summary>
    private readonly Dictionary<string, List<AttemptRef>> _acks = new(StringComparer.Ordinal);

    /// <summary>Set by the daemon once its command socket is bound; null: no worker can be reached.</summary>
    public WorkerLink? Workers { get; set; }

    /// <summary>A worker's message, from the command socket's thread.</summary>
    public void OnWorkerMessage(byte[] identity, RequestType type, byte[] corr, IFromWorker? message, string? key = null) =>
        Post(new WorkerMsgCmd(identity, type, corr, message, key));

    private bool IsWorkerClass(string cls) => _workerClasses.Contains(cls);

    /// <summary>Gives waiting attempts to workers with credits, oldest first; one that fits no worker now does not block the rest.</summary>
    private void Dispatch(DateTimeOffset now)
    {
        if (_awaitingWorker.Count == 0 || _workers.Count == 0) return;
        int kept = 0;
        for (int i = 0; i < _awaitingWorker.Count; i++)
        {
            var r = _awaitingWorker[i];
            if (!_running.TryGetValue(r.Id, out var current) || !ReferenceEquals(current, r)) continue; // cancelled meanwhile
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
        r.Deadline = Deadlines.After(now, spec.TimeoutSeconds);
        r.MemoryMb = spec.MemoryMb;
        var env = new Dictionary<string, string?>(spec.Env, StringComparer.Ordinal)
        {
            ["SPARKY_TASK_ID"] = r.Id.Value, ["SPARKY_ATTEMPT"] = r.N.ToString(),
        };
        if (spec.ArrayIndex is { } idx) env["SPARKY_ARRAY_INDEX"] = idx.ToString();
        // A payload that names work goes with its class's handler; the worker writes it to a file of its own for it.
        var command = spec.HandlerPayload is null ? spec.CommandLine : _handlers.HandlerOf(spec.Class).Handler ?? [];
        SendToWorker(w.Session, new TaskMessage
        {
            Session = w.Session, Seq = seq, Id = r.Id.Value, Attempt = r.N, Command = [.. command], Env = env, Cwd = spec.Cwd,
            Gpus = waiting.Gpus, Stdout = r.StdoutPath, Stderr = LogPath(r.Id, r.N, stderr: true), Payload = spec.HandlerPayload,
            MemoryMb = spec.MemoryMb > 0 ? spec.MemoryMb : null, // the worker holds the task to it, as the daemon would
        });
        _ = _store.AttemptStartedAsync(r.Id, r.Class, TaskState.Queued,
            new AttemptRecord(r.N, r.StartedAt, null, null, null, null, null, w.Info.Name, null, null, null));
        _events.Publish(Event(SparkyEvent.TaskStarted, r.Id, r.Class, new JsonObject { ["attempt"] = r.N, ["worker"] = w.Info.Name }));
    }

    private void SendToWorker<T>(string session, T body) where T : IMessage<T>, IShapeable<T>
    {
        if (Workers is not { } link || !_workerIdentity.TryGetValue(session, out var identity)) return;
        link.Send(identity, Encode([], body));
    }

    private byte[] Encode<T>(ReadOnlySpan<byte> corr, T body) where T : IMessage<T>, IShapeable<T>
    {
        _workerBuffer.ResetWrittenCount();
        WorkerWire.Write(_workerBuffer, corr, body);
        return _workerBuffer.WrittenSpan.ToArray();
    }

    private void Reply<T>(WorkerMsgCmd m, T body) where T : IMessage<T>, IShapeable<T> => Workers?.Send(m.Identity, Encode(m.Corr, body));

    private void ReplyError(WorkerMsgCmd m, int status, string detail) => Reply(m, new ErrorReply { Status = status, Detail = detail });

    /// <summary>A worker attempt is told to stop (cancel, timeout); its end comes back as a <c>finished</c>.</summary>
    private void SignalWorkerTask(Attempt r, int signal)
    {
        if (r.Place is WorkerPlacement { Session: { } session })
            SendToWorker(session, new Kill { Session = session, Id = r.Id.Value, Attempt = r.N, Signal = signal });
    }

    /// <summary>Takes a not yet dispatched attempt back: true if it was waiting for a worker.</summary>
    private bool TakeBackUndispatched(Attempt r)
    {
        if (r.Place is not WorkerPlacement { Session: null, AdoptBy: null }) return false;
        _awaitingWorker.Remove(r);
        _running.Remove(r.Id);
        return true;
    }

    /// <summary>A worker's message, one handler per type. A hello opens a session; every other message names one.</summary>
    private void OnWorkerMessage(WorkerMsgCmd m, DateTimeOffset now)
    {
        if (m.Type == RequestType.Hello) { OnHello(m, m.Message as Hello, now); return; }
        var w = _workers.Get((m.Message as ISessionMessage)?.Session);
        var guard = w is null ? null : _guards.GetValueOrDefault(w.Session);
        if (w is not null && guard is not null && guard.Key != m.Key)
        {
            // The session id of another key's worker: not this peer's session. Counted, and answered as unknown.
            Interlocked.Increment(ref _bogusEnds);
            w = null;
        }
        if (w is null)
        {
            // The daemon restarted, or the worker was declared lost: it says hello again, listing what it runs.
            ReplyError(m, 410, "unknown session: say hello again");
            return;
        }
        // Only what shows the worker alive keeps its session: a flood of anything else does not.
        if (m.Type is not (RequestType.Finished or RequestType.Credit)) _workers.Seen(w, now);
        _workerIdentity[w.Session] = m.Identity; // a reconnected DEALER comes back under a new identity
        switch (m.Message)
        {
            case Heartbeat beat: OnHeartbeat(m, w, beat, now); break;
            case Credit credit: OnCredit(w, credit, now); break;
            case Finished end: OnFinished(m, w, end, now); break;
            case Draining: OnDraining(m, w); break;
            case Bye bye: OnBye(m, w, bye, now); break;
        }
    }

    private void OnHeartbeat(WorkerMsgCmd m, Worker w, Heartbeat beat, DateTimeOffset now)
    {
        Reply(m, new HeartbeatOk { Acked = _acks.Remove(w.Session, out var acked) ? acked : [] });
        Reconcile(w, beat, now);
    }

    private void OnCredit(Worker w, Credit credit, DateTimeOffset now)
    {
        _workers.Credit(w, credit.N ?? 0);
        Dispatch(now);
    }

    private void OnDraining(WorkerMsgCmd m, Worker w)
    {
        _workers.Drain(w);
        UpdateWorkerLimits();
        Workers?.Send(m.Identity, EncodeEmpty(m.Corr, DrainingOk.Type));
    }

    private byte[] EncodeEmpty(ReadOnlySpan<byte> corr, string type)
    {
        _workerBuffer.ResetWrittenCount();
        WorkerWire.WriteEmpty(_workerBuffer, type, corr);
        return _workerBuffer.WrittenSpan.ToArray();
    }

    private void OnBye(WorkerMsgCmd m, Worker w, Bye bye, DateTimeOffset now)
    {
        if (bye.Abandon == true)
        {
            LoseWorker(w, now, "it left with tasks running");
            Reply(m, new ByeOk { Left = true });
        }
        else if (w.Running.Count == 0)
        {
            _workers.Remove(w.Session);
            _workerIdentity.Remove(w.Session);
            _acks.Remove(w.Session);
            _guards.Remove(w.Session);
            PilotGone(w, now);
            _events.Publish(WorkerEvent(SparkyEvent.WorkerLeft, w, null));
            WorkersChanged(now);
            Reply(m, new ByeOk { Left = true });
        }
        else
        {
            // Tasks given to it are on their way: it runs them first, then says bye again.
            _workers.Drain(w);
            UpdateWorkerLimits();
            Reply(m, new ByeOk { Left = false, Running = w.Running.Count });
        }
    }

    private void OnFinished(WorkerMsgCmd m, Worker w, Finished end, DateTimeOffset now)
    {
        if (end.Attempted() is not (var id, var attempt))
        {
            ReplyError(m, 400, "finished needs id and attempt");
            return;
        }
        var guard = _guards.GetValueOrDefault(w.Session);
        var placed = _running.TryGetValue(id, out var r) ? r.Place as WorkerPlacement : null;
        bool current = placed is not null && placed.Session == w.Session && r!.N == attempt;
        if (!current && guard?.Recent(id, attempt) != true)
        {
            // An end for an attempt this session was never given (or long forgotten): dropped, and counted. A worker
            // that sends many is not a worker this daemon can trust: its session is closed, its tasks queued again.
            Interlocked.Increment(ref _bogusEnds);
            if (guard is not null && ++guard.Bogus >= MaxBogusEnds)
                LoseWorker(w, now, $"it sent {guard.Bogus} ends for attempts it was not given");
            return;
        }
        // No reply: the answer to the worker's next heartbeat acknowledges it, handled or stale alike.
        if (!_acks.TryGetValue(w.Session, out var acks)) _acks[w.Session] = acks = [];
        acks.Add(new AttemptRef { Id = id.Value, Attempt = attempt });
        if (!current) return; // sent again: it was handled
        _workers.Seen(w, now);
        _workers.Credit(w, end.Credit ?? 0);
        r!.Place = placed! with { Result = end.Result, ResultError = end.ResultError };
        guard?.Remember(id, attempt);
        // What the worker's cgroups said of the attempt, recorded as a local attempt's is.
        var usage = new AttemptUsage(end.CpuMs * 1000, end.MemPeakBytes, end.Oom == true);
        Ended(r, new ProcessExit(end.ExitCode, end.Signal), end.Reason, now, usage);
        Dispatch(now);
    }

    /// <summary>
    /// A heartbeat lists what the worker holds (running, waiting for a slot, ended and not yet acknowledged) and the
    /// highest task number it has seen. An attempt given to it that it has seen yet no longer holds, or that it never
    /// saw long after it was sent, was lost on the way (a message dropped across a reconnect): queued again.
    /// </summary>
    private void Reconcile(Worker w, Heartbeat beat, DateTimeOffset now)
    {
        if (beat.Held is not { } heldList || beat.Seen is not { } seen) return;
        var held = new HashSet<(string, int)>();
        foreach (var e in heldList)
            if (e is { Id: { } hid, Attempt: { } ha }) held.Add((hid, ha));
        List<Attempt>? gone = null;
        foreach (var id in w.Running.Keys)
        {
            if (!_running.TryGetValue(id, out var r) || r.Place is not WorkerPlacement wp || wp.Session != w.Session || held.Contains((id.Value, r.N))) continue;
            bool missing = wp.Seq <= seen || now - DateTimeOffset.FromUnixTimeMilliseconds(r.StartedAt) > _config.WorkerTimeout;
            if (missing) (gone ??= []).Add(r);
        }
        if (gone is null) return;
        foreach (var r in gone)
        {
            EngineLog.TaskLostOnTheWay(_log, w.Info.Name, r.Id.Value, r.N);
            _guards.GetValueOrDefault(w.Session)?.Remember(r.Id, r.N); // its end may still come: acknowledged, not counted
            Ended(r, new ProcessExit(null, null), Reasons.WorkerLost, now);
            // Its credit: spent on a task that never arrived, or coming back with an end that never did.
            if (!w.Draining) _workers.Credit(w, 1);
        }
    }

    private void OnHello(WorkerMsgCmd m, Hello? hello, DateTimeOffset now)
    {
        if (_workerClasses.Count == 0)
        {
            ReplyError(m, 409, "this daemon sends no class to workers: set worker_classes (or pilot_classes) on the daemon");
            return;
        }
        WorkerInfo info = null!;
        int credits = 0;
        List<(string Id, int Attempt)> held = [];
        if ((hello is null ? "the body must be a map" : hello.Validate(out info, out credits, out held)) is { } problem)
        {
            ReplyError(m, 400, "hello: " + problem);
            return;
        }
        // A name is bound to the key of its live session: a hello from another key does not take it over (its tasks,
        // their environment, their ends). The same key again (a restart, a reconnect) does; without keys (loopback,
        // where any local user could run tasks anyway) every peer is the same key, as before.
        if (_workers.ByName(info.Name) is { } holder && _guards.GetValueOrDefault(holder.Session) is { } holderGuard && holderGuard.Key != m.Key)
        {
            ReplyError(m, 409, $"hello: the worker name '{info.Name}' is held by a live session of another key; pick another --name");
            return;
        }
        var session = Guid.NewGuid().ToString("N");
        var (joined, replaced) = _workers.Join(session, info, credits, now);
        _workerIdentity[session] = m.Identity;
        var newGuard = new SessionGuard(m.Key);
        _guards[session] = newGuard;
        // What it says it holds was given to it before (an earlier session): its ends are acknowledged, not counted.
        foreach (var (hid, ha) in held) newGuard.Remember(TaskId.Parse(hid), ha);
        var heldSet = held.ToHashSet();
        if (replaced is not null)
        {
            // The same worker again (restarted, or reconnected after being thought lost). What it still runs moves to
            // the new session; what it no longer mentions died with the old one and is queued again.
            _workerIdentity.Remove(replaced.Session);
            _acks.Remove(replaced.Session);
            _guards.Remove(replaced.Session);
            foreach (var id in replaced.Running.Keys.ToList())
            {
                if (!_running.TryGetValue(id, out var r) || r.Place is not WorkerPlacement wp || wp.Session != replaced.Session) continue;
                if (heldSet.Contains((id.Value, r.N))) { r.Place = wp with { Session = session }; _workers.Adopt(joined, id, wp.Gpus); }
                else Ended(r, new ProcessExit(null, null), Reasons.WorkerLost, now);
            }
        }
        var kill = new List<AttemptRef>();
        var adopted = new List<Attempt>();
        foreach (var (idText, attempt) in held)
        {
            var id = TaskId.Parse(idText);
            var r = _running.GetValueOrDefault(id);
            var wp = r?.N == attempt ? r.Place as WorkerPlacement : null;
            if (wp is not null && wp.Session == session) continue; // moved over above
            if (wp is { AdoptBy: not null } && wp.Name == info.Name)
            {
                // Running there since before this daemon started: follow it again.
                r!.Place = wp with { AdoptBy = null, Session = session };
                _awaitingAdoption--;
                _workers.Adopt(joined, id, wp.Gpus);
                adopted.Add(r);
                continue;
            }
            // Queued again (or finished) meanwhile: the worker must not run it beside the new attempt.
            kill.Add(new AttemptRef { Id = idText, Attempt = attempt });
        }
        // The worker counted those against its credits and reports no end for them: their slots come back here.
        _workers.Credit(joined, kill.Count);
        Reply(m, new HelloOk
        {
            Session = session, HeartbeatMs = (long)_config.WorkerHeartbeat.TotalMilliseconds,
            TimeoutMs = (long)_config.WorkerTimeout.TotalMilliseconds, Kill = kill,
        });
        // Timed out or cancelled while its worker was away: the signal it could not be sent goes now.
        foreach (var r in adopted.Where(r => r.Stop != StopReason.None))
        {
            SignalWorkerTask(r, Signals.Term);
            r.KillAt = now.AddSeconds(_config.KillGraceSeconds);
        }
        PilotConnected(joined);
        _events.Publish(WorkerEvent(SparkyEvent.WorkerJoined, joined, null));
        WorkersChanged(now);
    }

    /// <summary>A worker went quiet (or left mid-task): its tasks end as worker_lost and are queued again.</summary>
    private void LoseWorker(Worker w, DateTimeOffset now, string why)
    {
        var held = _workers.Remove(w.Session);
        _workerIdentity.Remove(w.Session);
        _acks.Remove(w.Session);
        _guards.Remove(w.Session);
        EngineLog.WorkerLost(_log, w.Info.Name, why, held.Count);
        foreach (var id in held)
            if (_running.TryGetValue(id, out var r) && r.Place is WorkerPlacement wp && wp.Session == w.Session)
                Ended(r, new ProcessExit(null, null), Reasons.WorkerLost, now);
        PilotGone(w, now);
        _events.Publish(WorkerEvent(SparkyEvent.WorkerLost, w, new JsonArray(held.Select(i => (JsonNode?)i.Value).ToArray())));
        WorkersChanged(now);
    }

    /// <summary>Timers of the worker half: silent workers, and attempts a restarted daemon found running on a worker that never came back.</summary>
    private void CheckWorkers(DateTimeOffset now)
    {
        if (_workerClasses.Count == 0) return;
        foreach (var w in _workers.Silent(now, _config.WorkerTimeout))
            LoseWorker(w, now, $"silent for {(now - w.LastSeen).TotalSeconds:0.#} s");
        if (_awaitingAdoption == 0) return;
        List<Attempt>? orphans = null;
        foreach (var r in _running.Values)
            if (r.Place is WorkerPlacement { AdoptBy: { } by } && by <= now) (orphans ??= []).Add(r);
        if (orphans is null) return;
        _awaitingAdoption -= orphans.Count;
        foreach (var r in orphans)
        {
            r.Place = (WorkerPlacement)r.Place with { AdoptBy = null };
            Ended(r, new ProcessExit(null, null), Reasons.WorkerLost, now);
        }
    }

    private DateTimeOffset? NextWorkerWake()
    {
        if (_workerClasses.Count == 0) return null;
        DateTimeOffset? next = _workers.NextSilence(_config.WorkerTimeout);
        if (_pilotPlanner is not null && (_awaitingWorker.Count > 0 || _config.PilotClasses.Any(c => _scheduler.ReadyCount(c) > 0)))
        {
            var check = _nextPilotCheck;
            if (next is null || check < next) next = check;
        }
        return next;
    }

    private void WorkersChanged(DateTimeOffset now)
    {
        UpdateWorkerLimits();
        Observer.WorkerCount(_workers.Count);
        Dispatch(now);
    }

    /// <summary>A worker class runs as many tasks at once as its workers have slots.</summary>
    private void UpdateWorkerLimits()
    {
        foreach (var cls in _workerClasses) _scheduler.SetLimit(cls, _workers.Capacity(cls));
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

    /// <summary>The whole GPUs a worker attempt holds: what it asked for, else one for a gpu task.</summary>
    private static int WholeGpus(TaskSpec? spec, string cls) => spec?.Gpus is > 0 and var g ? g : cls == Classes.Gpu ? 1 : 0;
}
