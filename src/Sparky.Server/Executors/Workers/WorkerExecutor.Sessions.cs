using PolyType;
using Sparky.Core.Events;
using Sparky.Core.Lifecycle;
using Sparky.Core.Tasks;
using Sparky.Core.Workers;
using Sparky.Execution.Processes;
using Sparky.Server.Zmq;
using Sparky.Workers.Protocol;

namespace Sparky.Server.Executors.Workers;

/// <summary>The worker executor's sessions: a handler per message a worker sends (hello, heartbeat, credit, finished,
/// draining, bye), on the engine's loop.</summary>
internal sealed partial class WorkerExecutor
{
    /// <summary>A worker's message, one handler per type. A hello opens a session; every other message names one.</summary>
    public void OnMessage(WorkerMessage m, DateTimeOffset now)
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

    private void Reply<T>(WorkerMessage m, T body) where T : IMessage<T>, IShapeable<T> => _link()?.Send(m.Identity, Encode(m.Corr, body));

    private void ReplyError(WorkerMessage m, int status, string detail) => Reply(m, new ErrorReply { Status = status, Detail = detail });

    private void OnHeartbeat(WorkerMessage m, Worker w, Heartbeat beat, DateTimeOffset now)
    {
        Reply(m, new HeartbeatOk { Acked = _acks.Remove(w.Session, out var acked) ? acked : [] });
        Reconcile(w, beat, now);
    }

    private void OnCredit(Worker w, Credit credit, DateTimeOffset now)
    {
        _workers.Credit(w, credit.N ?? 0);
        Dispatch(now);
    }

    private void OnDraining(WorkerMessage m, Worker w)
    {
        _workers.Drain(w);
        UpdateWorkerLimits();
        _link()?.Send(m.Identity, EncodeEmpty(m.Corr, DrainingOk.Type));
    }

    private byte[] EncodeEmpty(ReadOnlySpan<byte> corr, string type)
    {
        _workerBuffer.ResetWrittenCount();
        WorkerWire.WriteEmpty(_workerBuffer, type, corr);
        return _workerBuffer.WrittenSpan.ToArray();
    }

    private void OnBye(WorkerMessage m, Worker w, Bye bye, DateTimeOffset now)
    {
        if (bye.Abandon == true)
        {
            LoseWorker(w, now, "it left with tasks running");
            Reply(m, new ByeOk { Left = true });
        }
        else if (w.Running.Count == 0)
        {
            _workers.Remove(w.Session);
            ForgetSession(w.Session);
            Pilots.Gone(w, now);
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

    private void OnFinished(WorkerMessage m, Worker w, Finished end, DateTimeOffset now)
    {
        if (end.Attempted() is not (var id, var attempt))
        {
            ReplyError(m, 400, "finished needs id and attempt");
            return;
        }
        var guard = _guards.GetValueOrDefault(w.Session);
        var r = _host.InFlight(id);
        var placed = r?.Place as WorkerPlacement;
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
        _host.Ended(r, new ProcessExit(end.ExitCode, end.Signal), end.Reason, now, usage);
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
            if (_host.InFlight(id) is not { Place: WorkerPlacement wp } r || wp.Session != w.Session || held.Contains((id.Value, r.N))) continue;
            bool missing = wp.Seq <= seen || now - DateTimeOffset.FromUnixTimeMilliseconds(r.StartedAt) > _config.WorkerTimeout;
            if (missing) (gone ??= []).Add(r);
        }
        if (gone is null) return;
        foreach (var r in gone)
        {
            WorkersLog.TaskLostOnTheWay(_log, w.Info.Name, r.Id.Value, r.N);
            _guards.GetValueOrDefault(w.Session)?.Remember(r.Id, r.N); // its end may still come: acknowledged, not counted
            _host.Ended(r, new ProcessExit(null, null), Reasons.WorkerLost, now);
            // Its credit: spent on a task that never arrived, or coming back with an end that never did.
            if (!w.Draining) _workers.Credit(w, 1);
        }
    }

    private void OnHello(WorkerMessage m, Hello? hello, DateTimeOffset now)
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
            ForgetSession(replaced.Session);
            foreach (var id in replaced.Running.Keys.ToList())
            {
                if (_host.InFlight(id) is not { Place: WorkerPlacement wp } r || wp.Session != replaced.Session) continue;
                if (heldSet.Contains((id.Value, r.N))) { r.Place = wp with { Session = session }; _workers.Adopt(joined, id, wp.Gpus); }
                else _host.Ended(r, new ProcessExit(null, null), Reasons.WorkerLost, now);
            }
        }
        var kill = new List<AttemptRef>();
        var adopted = new List<Attempt>();
        foreach (var (idText, attempt) in held)
        {
            var id = TaskId.Parse(idText);
            var r = _host.InFlight(id);
            var wp = r?.N == attempt ? r.Place as WorkerPlacement : null;
            if (wp is not null && wp.Session == session) continue; // moved over above
            if (wp is { AdoptBy: not null } && wp.Name == info.Name)
            {
                // Running there since before this daemon started: follow it again.
                r!.Place = wp with { AdoptBy = null, Session = session };
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
        // Followed again; one timed out or cancelled while its worker was away is signalled now.
        foreach (var r in adopted) _host.Report(r, LifeEvent.Adopted, now);
        Pilots.Connected(joined);
        _events.Publish(WorkerEvent(SparkyEvent.WorkerJoined, joined, null));
        WorkersChanged(now);
    }
}
