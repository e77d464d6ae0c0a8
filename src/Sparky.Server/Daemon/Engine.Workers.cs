using System.Buffers;
using System.Text.Json.Nodes;
using Sparky.Core.Events;
using Sparky.Core.Lifecycle;
using Sparky.Core.Tasks;
using Sparky.Core.Workers;
using Sparky.Execution.Processes;
using Sparky.Server.Zmq;
using Sparky.Store.Sqlite;

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
    /// <param name="Key">The public key the message proved (where the command socket checks keys); null: none checked.</param>
    private sealed record WorkerMsgCmd(byte[] Identity, RequestType Type, byte[] Corr, JsonObject? Body, string? Key) : Command;

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
    private readonly List<Running> _awaitingWorker = new();
    private readonly Dictionary<TaskId, int> _lostRequeues = new();
    private readonly ArrayBufferWriter<byte> _workerBuffer = new(4096);
    private IReadOnlySet<string> _workerClasses = new HashSet<string>();
    /// <summary>Attempts found running on a worker at start whose worker has not said hello yet.</summary>
    private int _awaitingAdoption;
    /// <summary>Numbers every task message; a worker's heartbeat says the highest it has seen.</summary>
    private long _taskSeq;
    /// <summary>Ends handled per session since its last heartbeat: acknowledged in the heartbeat's answer.</summary>
    private readonly Dictionary<string, JsonArray> _acks = new(StringComparer.Ordinal);

    /// <summary>Set by the daemon once its command socket is bound; null: no worker can be reached.</summary>
    public WorkerLink? Workers { get; set; }
    public Action<int>? WorkerCountChanged { get; set; }

    /// <summary>A worker's message, from the command socket's thread.</summary>
    public void OnWorkerMessage(byte[] identity, RequestType type, byte[] corr, JsonObject? body, string? key = null) =>
        Post(new WorkerMsgCmd(identity, type, corr, body, key));

    private bool IsWorkerClass(string cls) => _workerClasses.Contains(cls);

    /// <summary>Waits for a worker's credit; recorded as started once a worker takes it.</summary>
    private void StartOnWorker(TaskId id, TaskSpec spec, int n, DateTimeOffset now)
    {
        var run = new Running
        {
            Id = id, Class = spec.Class, N = n, Retries = spec.Retries, StartedAt = now.ToUnixTimeMilliseconds(),
            StdoutPath = LogPath(id, n, stderr: false), DoneFile = spec.DoneFile, Outputs = spec.Outputs, Cwd = spec.Cwd,
            Place = new WorkerPlacement(null, null, 0, null, spec, WholeGpus(spec, spec.Class)),
        };
        _running[id] = run;
        _awaitingWorker.Add(run);
        Dispatch(now);
    }

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

    private void SendTask(Worker w, Running r, DateTimeOffset now)
    {
        var waiting = (WorkerPlacement)r.Place;
        var spec = waiting.Spec!;
        long seq = ++_taskSeq;
        r.Place = waiting with { Session = w.Session, Name = w.Info.Name, Seq = seq };
        r.StartedAt = now.ToUnixTimeMilliseconds();
        r.Deadline = DeadlineAfter(now, spec.TimeoutSeconds);
        r.MemoryMb = spec.MemoryMb;
        var env = new JsonObject();
        foreach (var (k, v) in spec.Env) env[k] = v;
        env["SPARKY_TASK_ID"] = r.Id.Value;
        env["SPARKY_ATTEMPT"] = r.N.ToString();
        if (spec.ArrayIndex is { } idx) env["SPARKY_ARRAY_INDEX"] = idx.ToString();
        // A payload that names work goes with its class's handler; the worker writes it to a file of its own for it.
        var command = spec.HandlerPayload is null ? spec.CommandLine : HandlerOf(spec.Class).Handler ?? [];
        var body = new JsonObject
        {
            ["session"] = w.Session, ["seq"] = seq,
            ["id"] = r.Id.Value, ["attempt"] = r.N, ["command"] = new JsonArray(command.Select(a => (JsonNode?)a).ToArray()),
            ["env"] = env, ["cwd"] = spec.Cwd, ["gpus"] = waiting.Gpus,
            ["stdout"] = r.StdoutPath, ["stderr"] = LogPath(r.Id, r.N, stderr: true),
        };
        if (spec.HandlerPayload is { } payload) body["payload"] = payload;
        if (spec.MemoryMb > 0) body["memory_mb"] = spec.MemoryMb; // the worker holds the task to it, as the daemon would
        SendToWorker(w.Session, "task", body);
        _ = _store.AttemptStartedAsync(r.Id, r.Class, TaskState.Queued,
            new AttemptRecord(r.N, r.StartedAt, null, null, null, null, null, w.Info.Name, null, null, null));
        _events.Publish(Event(SparkyEvent.TaskStarted, r.Id, r.Class, new JsonObject { ["attempt"] = r.N, ["worker"] = w.Info.Name }));
    }

    private void SendToWorker(string session, string type, JsonNode? body, byte[]? corr = null)
    {
        if (Workers is not { } link || !_workerIdentity.TryGetValue(session, out var identity)) return;
        link.Send(identity, Encode(type, corr, body));
    }

    private byte[] Encode(string type, byte[]? corr, JsonNode? body)
    {
        _workerBuffer.ResetWrittenCount();
        Wire.WriteMessage(_workerBuffer, type, corr ?? [], body);
        return _workerBuffer.WrittenSpan.ToArray();
    }

    private void Reply(WorkerMsgCmd m, string type, JsonNode? body) => Workers?.Send(m.Identity, Encode(type, m.Corr, body));

    private void ReplyError(WorkerMsgCmd m, int status, string detail)
    {
        _workerBuffer.ResetWrittenCount();
        Wire.WriteError(_workerBuffer, m.Corr, status, detail);
        Workers?.Send(m.Identity, _workerBuffer.WrittenSpan.ToArray());
    }

    /// <summary>A worker attempt is told to stop (cancel, timeout); its end comes back as a <c>finished</c>.</summary>
    private void SignalWorkerTask(Running r, int signal)
    {
        if (r.Place is WorkerPlacement { Session: { } session })
            SendToWorker(session, "kill", new JsonObject { ["session"] = session, ["id"] = r.Id.Value, ["attempt"] = r.N, ["signal"] = signal });
    }

    /// <summary>Takes a not yet dispatched attempt back: true if it was waiting for a worker.</summary>
    private bool TakeBackUndispatched(Running r)
    {
        if (r.Place is not WorkerPlacement { Session: null, AdoptBy: null }) return false;
        _awaitingWorker.Remove(r);
        _running.Remove(r.Id);
        return true;
    }

    private void OnWorkerMessage(WorkerMsgCmd m, DateTimeOffset now)
    {
        if (m.Type == RequestType.Hello) { Hello(m, now); return; }
        var session = m.Body?["session"] is JsonValue sv && sv.TryGetValue(out string? s) ? s : null;
        var w = _workers.Get(session);
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
        switch (m.Type)
        {
            case RequestType.Heartbeat:
                Reply(m, "heartbeat.ok", new JsonObject { ["acked"] = _acks.Remove(w.Session, out var acked) ? acked : new JsonArray() });
                Reconcile(w, m.Body!, now);
                break;
            case RequestType.Credit:
                _workers.Credit(w, Int(m.Body, "n") ?? 0);
                Dispatch(now);
                break;
            case RequestType.Finished:
                WorkerFinished(m, w, now);
                break;
            case RequestType.Draining:
                _workers.Drain(w);
                UpdateWorkerLimits();
                Reply(m, "draining.ok", null);
                break;
            case RequestType.Bye:
                if (m.Body?["abandon"] is JsonValue av && av.TryGetValue(out bool abandon) && abandon)
                {
                    LoseWorker(w, now, "it left with tasks running");
                    Reply(m, "bye.ok", new JsonObject { ["left"] = true });
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
                    Reply(m, "bye.ok", new JsonObject { ["left"] = true });
                }
                else
                {
                    // Tasks given to it are on their way: it runs them first, then says bye again.
                    _workers.Drain(w);
                    UpdateWorkerLimits();
                    Reply(m, "bye.ok", new JsonObject { ["left"] = false, ["running"] = w.Running.Count });
                }
                break;
        }
    }

    private void WorkerFinished(WorkerMsgCmd m, Worker w, DateTimeOffset now)
    {
        var b = m.Body!;
        if (b["id"] is not JsonValue iv || !iv.TryGetValue(out string? idText) || !TaskId.TryParse(idText, out var id) || Int(b, "attempt") is not { } attempt)
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
        if (!_acks.TryGetValue(w.Session, out var acks)) _acks[w.Session] = acks = new JsonArray();
        acks.Add((JsonNode)new JsonObject { ["id"] = id.Value, ["attempt"] = attempt });
        if (!current) return; // sent again: it was handled
        _workers.Seen(w, now);
        _workers.Credit(w, Int(b, "credit") ?? 0);
        r!.Place = placed! with
        {
            Result = b["result"] is JsonValue rv && rv.TryGetValue(out string? result) ? result : null,
            ResultError = b["result_error"] is JsonValue ev && ev.TryGetValue(out string? resultError) ? resultError : null,
        };
        string? reason = b["reason"] is JsonValue wv && wv.TryGetValue(out string? why) ? why : null;
        guard?.Remember(id, attempt);
        // What the worker's cgroups said of the attempt, recorded as a local attempt's is.
        var usage = new AttemptUsage(b["cpu_ms"] is JsonValue cv && cv.TryGetValue(out long cpuMs) ? cpuMs * 1000 : null, b["mem_peak_bytes"] is JsonValue mv && mv.TryGetValue(out long peak) ? peak : null,
            b["oom"] is JsonValue ov && ov.TryGetValue(out bool oom) && oom);
        Ended(r, new ProcessExit(Int(b, "exit_code"), Int(b, "signal")), reason, now, usage);
        Dispatch(now);
    }

    /// <summary>
    /// A heartbeat lists what the worker holds (running, waiting for a slot, ended and not yet acknowledged) and the
    /// highest task number it has seen. An attempt given to it that it has seen yet no longer holds, or that it never
    /// saw long after it was sent, was lost on the way (a message dropped across a reconnect): queued again.
    /// </summary>
    private void Reconcile(Worker w, JsonObject b, DateTimeOffset now)
    {
        if (b["held"] is not JsonArray heldList || Int(b, "seen") is null) return;
        long seen = b["seen"] is JsonValue sv && sv.TryGetValue(out long l) ? l : 0;
        var held = new HashSet<(string, int)>();
        foreach (var e in heldList.OfType<JsonObject>())
            if (e["id"] is JsonValue iv && iv.TryGetValue(out string? hid) && Int(e, "attempt") is { } ha) held.Add((hid, ha));
        List<Running>? gone = null;
        foreach (var id in w.Running.Keys)
        {
            if (!_running.TryGetValue(id, out var r) || r.Place is not WorkerPlacement wp || wp.Session != w.Session || held.Contains((id.Value, r.N))) continue;
            bool missing = wp.Seq <= seen || now - DateTimeOffset.FromUnixTimeMilliseconds(r.StartedAt) > _config.WorkerTimeout;
            if (missing) (gone ??= []).Add(r);
        }
        if (gone is null) return;
        foreach (var r in gone)
        {
            Console.Error.WriteLine($"sparky: worker {w.Info.Name} does not hold {r.Id} (attempt {r.N}): lost on the way, queued again");
            _guards.GetValueOrDefault(w.Session)?.Remember(r.Id, r.N); // its end may still come: acknowledged, not counted
            Ended(r, new ProcessExit(null, null), Reasons.WorkerLost, now);
            // Its credit: spent on a task that never arrived, or coming back with an end that never did.
            if (!w.Draining) _workers.Credit(w, 1);
        }
    }

    private void Hello(WorkerMsgCmd m, DateTimeOffset now)
    {
        if (_workerClasses.Count == 0)
        {
            ReplyError(m, 409, "this daemon sends no class to workers: set worker_classes (or pilot_classes) on the daemon");
            return;
        }
        if (ParseHello(m.Body, out var info, out int credits, out var held) is { } problem)
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
        var kill = new JsonArray();
        var adopted = new List<Running>();
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
            kill.Add((JsonNode)new JsonObject { ["id"] = idText, ["attempt"] = attempt });
        }
        // The worker counted those against its credits and reports no end for them: their slots come back here.
        _workers.Credit(joined, kill.Count);
        Reply(m, "hello.ok", new JsonObject
        {
            ["session"] = session, ["heartbeat_ms"] = (long)_config.WorkerHeartbeat.TotalMilliseconds,
            ["timeout_ms"] = (long)_config.WorkerTimeout.TotalMilliseconds, ["kill"] = kill,
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

    private static string? ParseHello(JsonObject? b, out WorkerInfo info, out int credits, out List<(string, int)> held)
    {
        info = null!;
        credits = 0;
        held = [];
        if (b is null) return "the body must be a map";
        if (b["name"] is not JsonValue nv || !nv.TryGetValue(out string? name) || !TaskId.TryParse(name, out _))
            return "name must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$";
        foreach (var key in new[] { "slots", "gpus", "memory_mb", "credits", "prefetch" })
            if (b[key] is { } v && (v is not JsonValue jv || !jv.TryGetValue(out long _))) return $"{key} must be an integer";
        string host = b["host"] is JsonValue hv && hv.TryGetValue(out string? h) && h.Length is > 0 and <= 255 && !h.Any(char.IsControl) ? h : name;
        int slots = Int(b, "slots") ?? 1;
        if (slots is < 1 or > 100_000) return "slots must be from 1 to 100000";
        int gpus = Int(b, "gpus") ?? 0;
        if (gpus is < 0 or > 4096) return "gpus must be from 0 to 4096";
        long memory = b["memory_mb"] is JsonValue mv && mv.TryGetValue(out long mb) ? mb : 0;
        HashSet<string>? classes = null;
        if (b["classes"] is JsonArray ca)
        {
            classes = new HashSet<string>(StringComparer.Ordinal);
            foreach (var c in ca)
            {
                if (c is not JsonValue cv || !cv.TryGetValue(out string? cls)) return "classes must be a list of class names";
                classes.Add(cls);
            }
        }
        string? pilot = b["pilot"] is JsonValue pv && pv.TryGetValue(out string? p) ? p : null;
        int prefetch = Int(b, "prefetch") ?? 0;
        if (prefetch is < 0 or > 100_000) return "prefetch must be from 0 to 100000";
        credits = Int(b, "credits") ?? slots;
        if (b["running"] is JsonArray ra)
        {
            foreach (var e in ra)
            {
                if (e is not JsonObject o || o["id"] is not JsonValue iv || !iv.TryGetValue(out string? id) || !TaskId.TryParse(id, out _) || Int(o, "attempt") is not { } a)
                    return "running must be a list of {id, attempt}";
                held.Add((id, a));
            }
        }
        info = new WorkerInfo(name, host, slots, gpus, memory, classes, pilot, prefetch);
        return null;
    }

    private static int? Int(JsonObject? b, string key) =>
        b?[key] is JsonValue v && v.TryGetValue(out long l) ? (int)Math.Clamp(l, int.MinValue, int.MaxValue) : null;

    /// <summary>A worker went quiet (or left mid-task): its tasks end as worker_lost and are queued again.</summary>
    private void LoseWorker(Worker w, DateTimeOffset now, string why)
    {
        var held = _workers.Remove(w.Session);
        _workerIdentity.Remove(w.Session);
        _acks.Remove(w.Session);
        _guards.Remove(w.Session);
        Console.Error.WriteLine($"sparky: worker {w.Info.Name} lost ({why}); {held.Count} task(s) queued again");
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
        List<Running>? orphans = null;
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
        WorkerCountChanged?.Invoke(_workers.Count);
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

    /// <summary>After a restart: an attempt a worker was running is followed again if that worker says hello in time.</summary>
    private void RecoverOnWorker(ActiveTask t, AttemptRecord? a, DateTimeOffset now)
    {
        var spec = _store.SpecOf(t.Id)?.Spec;
        var run = new Running
        {
            Id = t.Id, Class = t.Class, N = a?.N ?? t.Attempts, Retries = t.Retries, StartedAt = a?.StartedAt ?? now.ToUnixTimeMilliseconds(),
            StdoutPath = LogPath(t.Id, a?.N ?? t.Attempts, false), DoneFile = spec?.DoneFile == true,
            Outputs = spec?.Outputs, Cwd = spec?.Cwd,
            // A worker hears nothing for one timeout before it says hello again; give it two.
            Place = new WorkerPlacement(null, a?.Host, 0, AdoptBy: now + 2 * _config.WorkerTimeout, spec, WholeGpus(spec, t.Class)),
        };
        run.Deadline = DeadlineAfter(DateTimeOffset.FromUnixTimeMilliseconds(run.StartedAt), spec?.TimeoutSeconds);
        _attemptsSoFar[t.Id] = run.N;
        _scheduler.AddRunning(t.Id, t.Class, t.Seq);
        _running[t.Id] = run;
        _awaitingAdoption++;
    }
}
