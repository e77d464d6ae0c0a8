using System.Buffers;
using NetMQ;
using NetMQ.Sockets;
using PolyType;
using Sparky.Execution.Processes;
using Sparky.Workers.Protocol;

namespace Sparky.Worker;

/// <summary>What <c>sparky worker</c> was told.</summary>
public sealed record WorkerOptions
{
    public required string Connect { get; init; }
    public required string Name { get; init; }
    public string Host { get; init; } = Environment.MachineName;
    public int Slots { get; init; } = Environment.ProcessorCount;
    /// <summary>The classes it takes; null: every worker class of the daemon.</summary>
    public IReadOnlyList<string>? Classes { get; init; }
    /// <summary>GPUs it hands out whole, as CUDA_VISIBLE_DEVICES names them (indices or UUIDs).</summary>
    public IReadOnlyList<string> Gpus { get; init; } = [];
    /// <summary>With nothing to run (or no daemon answering) for this long, it leaves; null: never.</summary>
    public TimeSpan? IdleTimeout { get; init; }
    /// <summary>It ends at this age (a pilot's Slurm time limit), draining <see cref="Drain"/> before.</summary>
    public TimeSpan? Walltime { get; init; }
    public TimeSpan Drain { get; init; }
    /// <summary>The daemon's CURVE public key (Z85), where its command socket uses CURVE.</summary>
    public string? ServerKey { get; init; }
    /// <summary>This worker's own key pair (<c>sparky keys --worker NAME</c>), where the daemon checks worker keys: its
    /// CURVE certificate, and each message carries the proof that it holds it.</summary>
    public NetMQCertificate? Key { get; init; }
    /// <summary>The pilot job it runs in, if Sparky started it.</summary>
    public string? Pilot { get; init; }
    /// <summary>Tasks it takes beyond its slots and holds, so the next one starts as a slot frees, without waiting
    /// for the daemon: for many short tasks. A held task's run time (and timeout) counts from when it was sent.</summary>
    public int Prefetch { get; init; }
    /// <summary>How each task's processes are kept together: auto (a cgroup where the host allows) or marker.</summary>
    public string Containment { get; init; } = "auto";
}

/// <summary>
/// <c>sparky worker</c>: a DEALER that says hello to the daemon's command socket, pulls tasks with credits (one per free
/// slot), runs each as a process group of its own (the local executor's launcher), and reports each end once, resending
/// it until the daemon acknowledges it. It heartbeats; if the daemon forgets it (a restart, or it was declared lost),
/// it says hello again listing what it runs, and kills what the daemon no longer wants. One thread (a NetMQPoller's)
/// owns the socket, the launcher and all state.
/// </summary>
public sealed class WorkerAgent : IDisposable
{
    private sealed class Job(string id, int attempt, string stdout, List<string> gpus)
    {
        public string Id { get; } = id;
        public int Attempt { get; } = attempt;
        public string Stdout { get; } = stdout;
        public List<string> Gpus { get; } = gpus;
        public int Pid { get; set; }
        /// <summary>The payload its handler reads, written here, removed at its end.</summary>
        public string? PayloadFile { get; set; }
        /// <summary>The daemon no longer counts it as running here: its end is not reported.</summary>
        public bool Disowned { get; set; }
        /// <summary>Marked and in its own cgroups (its id is well-formed).</summary>
        public bool Contained { get; init; }
        public string? Stderr { get; init; }
        /// <summary>What holds its port: the attempt, so a disowned one still being killed keeps its own.</summary>
        public string PortHolder => $"{Id}/{Attempt}";
    }

    private static readonly TimeSpan Tick = TimeSpan.FromMilliseconds(100);

    private readonly WorkerOptions _o;
    private readonly Action<string> _log;
    private readonly DealerSocket _dealer = new();
    /// <summary>The envelope's <c>auth</c> (public key, proof) where the worker has a key of its own.</summary>
    private readonly (string Key, string Proof)? _auth;
    private readonly NetMQTimer _timer = new(Tick);
    private readonly NetMQQueue<bool> _wake = new();
    private readonly NetMQPoller _poller;
    private readonly ProcessLauncher _launcher;
    /// <summary>Each attempt's processes kept together (a cgroup, else the marker) and held to the memory it asked for,
    /// as the daemon's own attempts are: a cancel, a kill or an end leaves nothing of it running.</summary>
    private readonly Containment _contain;
    private readonly Dictionary<string, Job> _jobs = new(StringComparer.Ordinal);
    /// <summary>Tasks received while every slot was busy (with --prefetch), started in order as slots free.</summary>
    private readonly Queue<TaskMessage> _held = new();
    /// <summary>Ends reported and not yet acknowledged, with when they were last sent. The daemon acknowledges the
    /// ends it handled in its answer to the next heartbeat (no reply per task); one not acknowledged by then is sent again.</summary>
    private readonly Dictionary<(string Id, int Attempt), (Finished Body, DateTimeOffset SentAt)> _unacked = new();
    /// <summary>The highest sequence number of a task received: the daemon counts a task it sent at or below it, and
    /// that this worker no longer holds nor reported, as lost in transit.</summary>
    private long _seenSeq;
    /// <summary>The corr of the last hello: only its answer counts (an earlier one's session is replaced by it).</summary>
    private long _helloCorr;
    private readonly List<string> _freeGpus;
    /// <summary>Ports reserved for the tasks running here, by attempt. The worker holds them, not the daemon: only this
    /// side sees which ports of this host are in use (by its other tasks, by anything else here) and when each of its
    /// tasks ends; the daemon's allocator knows its own host, which may not be this one.</summary>
    private readonly Sparky.Core.Scheduling.PortAllocator _ports = new(
        Sparky.Core.Scheduling.PortAllocator.DefaultFirst, Sparky.Core.Scheduling.PortAllocator.DefaultLast, Sparky.Execution.Host.PortProbe.IsFree);
    private readonly Dictionary<string, string> _baseEnv;
    private readonly IReadOnlyList<string>? _prefix;
    private readonly ArrayBufferWriter<byte> _buffer = new(4096);
    private readonly DateTimeOffset _started = DateTimeOffset.UtcNow;
    /// <summary>Marks this run's tasks (SPARKY_WORKER_RUN) for the guard.</summary>
    private readonly string _runToken = Guid.NewGuid().ToString("N");
    private readonly System.Diagnostics.Process? _guard;
    private string? _session;
    private TimeSpan _heartbeat = TimeSpan.FromSeconds(1), _timeout = TimeSpan.FromSeconds(10);
    private DateTimeOffset _lastHeard, _lastHello = DateTimeOffset.MinValue, _lastBeat, _lastBye = DateTimeOffset.MinValue, _idleSince;
    private bool _draining, _everConnected;
    private volatile bool _terminate;
    private long _corr;
    private int _exitCode;

    public WorkerAgent(WorkerOptions options, Action<string> log)
    {
        _o = options;
        _log = log;
        _freeGpus = options.Gpus.ToList();
        _baseEnv = TaskEnvironment.Inherited(); // the worker's own settings are not the task's
        // A task must not outlive a worker killed with -9 (it is queued again elsewhere). A guard process waits on a
        // pipe from this one; when the pipe closes, however this worker ended, it kills every process carrying this
        // run's mark, whole process groups included. Where the guard cannot start, setpriv makes the kernel kill each
        // task's first process when the worker dies (one more exec per task).
        _guard = StartGuard(_runToken, log);
        _prefix = _guard is null && File.Exists("/usr/bin/setpriv") ? ["/usr/bin/setpriv", "--pdeathsig", "KILL", "--"] : null;
        _launcher = new ProcessLauncher(() => _wake.Enqueue(true));
        // Named by worker and daemon: two workers of one name on this host, for two daemons, never share cgroups.
        _contain = Containment.Create(options.Containment, $"worker:{options.Name}@{options.Connect}");
        _dealer.Options.Linger = TimeSpan.FromSeconds(2); // the last bye gets out
        // A fixed routing id: after a reconnect the daemon's answers find this worker at once.
        _dealer.Options.Identity = System.Text.Encoding.UTF8.GetBytes(options.Name + "/" + _runToken);
        _dealer.Options.SendHighWatermark = 100_000;
        if (options.ServerKey is { } serverKey)
        {
            _dealer.Options.CurveCertificate = options.Key ?? new NetMQCertificate();
            _dealer.Options.CurveServerKey = NetMQCertificate.FromPublicKey(serverKey).PublicKey;
            if (options.Key is { } key) _auth = (key.PublicKeyZ85, Proof(key, serverKey));
        }
        _dealer.ReceiveReady += (_, _) => Guard(OnMessages);
        _timer.Elapsed += (_, _) => Guard(OnTick);
        _wake.ReceiveReady += (_, _) => Guard(OnWake);
        _poller = new NetMQPoller { _dealer, _timer, _wake };
    }

    /// <summary>Runs until the worker leaves (idle, walltime, or <paramref name="stop"/>); returns its exit code.</summary>
    public int Run(CancellationToken stop)
    {
        KillLeftovers();
        // What an earlier run of this worker left in its cgroups (or marked as its) is ended, and those cgroups removed.
        _contain.EndAllExcept(new HashSet<(string, int)>(), TimeSpan.FromSeconds(2));
        _log($"sparky worker: containment {_contain.Mode}");
        _dealer.Connect(_o.Connect);
        _lastHeard = _idleSince = DateTimeOffset.UtcNow;
        using var reg = stop.Register(() => { _terminate = true; _wake.Enqueue(true); });
        SendHello();
        _poller.Run();
        return _exitCode;
    }

    /// <summary>Tasks a previous run of this worker (same name, same daemon, same host) left: queued again by the daemon,
    /// so never run on. Only this worker's: a worker of the same name serving another daemon on this host is not touched.</summary>
    private void KillLeftovers()
    {
        var left = ProcessTable.FindMarked(InstanceVar, Instance);
        foreach (var p in left.Values) ProcessLauncher.SignalGroup(p.Pid, Signals.Kill);
        if (left.Count > 0) _log($"sparky worker: killed {left.Count} task(s) a previous worker named {_o.Name} left running");
    }

    /// <summary>What marks this worker's tasks for <see cref="KillLeftovers"/>: its name and its daemon, as its cgroups are named.</summary>
    private const string InstanceVar = "SPARKY_WORKER_INSTANCE";
    private string Instance => $"{_o.Name}@{_o.Connect}";

    private void Guard(Action a)
    {
        try { a(); }
        catch (Exception e) { _log($"sparky worker: {e.GetType().Name}: {e.Message}"); }
    }

    // ---------- messages from the daemon ----------

    private void OnMessages()
    {
        var frames = new List<byte[]>(2);
        for (int i = 0; i < 1024 && _dealer.TryReceiveMultipartBytes(TimeSpan.Zero, ref frames, 2); i++)
        {
            if (frames.Count != 2 || frames[0].Length != 0 || !WorkerWire.TryRead(frames[1], out var msg)) continue;
            _lastHeard = DateTimeOffset.UtcNow;
            Handle(msg);
        }
    }

    /// <summary>A body this worker cannot read is skipped, as an unknown type is: it comes from a daemon it trusts.</summary>
    private T? Read<T>(Incoming msg) where T : class, IShapeable<T>
    {
        if (WorkerWire.TryRead<T>(msg.Body, out var body) is { } problem) _log($"sparky worker: a {msg.Type} it cannot read ({problem}); ignored");
        return body;
    }

    private void Handle(Incoming msg)
    {
        switch (msg.Type)
        {
            case "hello.ok" when msg.Corr == _helloCorr: // an earlier hello's answer: the last one's session replaces it
                if (Read<HelloOk>(msg) is { } ok) OnHelloOk(ok);
                break;
            case "task":
                if (Read<TaskMessage>(msg) is { } task) OnTask(task);
                break;
            case "kill":
                if (Read<Kill>(msg) is { } kill) OnKill(kill);
                break;
            case "heartbeat.ok":
                foreach (var a in Read<HeartbeatOk>(msg)?.Acked ?? [])
                    if (a is { Id: { } done }) _unacked.Remove((done, a.Attempt ?? 0));
                break;
            case "bye.ok":
                if (Read<ByeOk>(msg) is { Left: true })
                {
                    _log($"sparky worker: {_o.Name} leaves ({(_draining ? "drained before its walltime" : "idle")})");
                    Stop(0);
                }
                break;
            case "error":
                if (Read<ErrorReply>(msg) is { } error) OnError(error);
                break;
        }
    }

    private void OnHelloOk(HelloOk ok)
    {
        _session = ok.Session;
        if (ok.HeartbeatMs is { } hb) _heartbeat = TimeSpan.FromMilliseconds(Math.Max(10, hb));
        if (ok.TimeoutMs is { } to) _timeout = TimeSpan.FromMilliseconds(Math.Max(100, to));
        if (!_everConnected) _log($"sparky worker: {_o.Name} connected to {_o.Connect} with {_o.Slots} slot(s)");
        _everConnected = true;
        foreach (var k in ok.Kill ?? []) Disown(k?.Id, k?.Attempt ?? 0);
        // Draining first: the ends below return credits the daemon must not use.
        if (_draining) Send(new Draining { Session = _session });
        ResendEnds(TimeSpan.Zero);
    }

    private void OnTask(TaskMessage task)
    {
        // A task for an earlier session was queued again when that session was replaced: never run it.
        if (task.Session != _session) return;
        _seenSeq = Math.Max(_seenSeq, task.Seq ?? 0);
        if (_jobs.Count < _o.Slots) StartTask(task);
        else _held.Enqueue(task);
    }

    private void OnKill(Kill kill)
    {
        if (kill.Id is not { } id || kill.Session != _session) return;
        int sig = kill.Signal ?? Signals.Term;
        if (_jobs.TryGetValue(id, out var job) && job.Attempt == kill.Attempt) SignalJob(job, sig);
        else if (Unhold(id, kill.Attempt ?? 0) is { } held)
            Finish(new Job(id, held.Attempt ?? 0, "", []), new ProcessExit(null, sig), null);
    }

    private void OnError(ErrorReply error)
    {
        int status = error.Status ?? 0;
        // Forgotten (a restarted daemon, or declared lost): hello again, once; while a hello is out, its answer decides.
        if (status == 410) { if (_session is not null) { _session = null; SendHello(); } }
        else if (_session is null)
        {
            // The hello itself was refused: a setup problem that retrying won't fix.
            _log($"sparky worker: the daemon refused this worker: {error.Detail}");
            Stop(2);
        }
        else _log($"sparky worker: the daemon says {status}: {error.Detail}");
    }

    /// <summary>Takes a held task out of the queue (killed or disowned before it started).</summary>
    private TaskMessage? Unhold(string id, int attempt)
    {
        TaskMessage? found = null;
        int n = _held.Count;
        for (int i = 0; i < n; i++)
        {
            var t = _held.Dequeue();
            if (found is null && t.Id == id && t.Attempt == attempt) found = t;
            else _held.Enqueue(t);
        }
        return found;
    }

    /// <summary>The daemon queued this attempt again elsewhere (or ended it): it must not run on here.</summary>
    private void Disown(string? id, int attempt)
    {
        if (id is null) return;
        _unacked.Remove((id, attempt));
        Unhold(id, attempt);
        if (_jobs.TryGetValue(id, out var job) && job.Attempt == attempt)
        {
            job.Disowned = true;
            SignalJob(job, Signals.Kill);
        }
    }

    /// <summary>Signals all of an attempt: its process group, its cgroup and every process carrying its marker.</summary>
    private void SignalJob(Job job, int signal)
    {
        ProcessLauncher.SignalGroup(job.Pid, signal);
        if (job.Contained) _contain.Signal(job.Id, job.Attempt, signal);
    }

    private void StartTask(TaskMessage t)
    {
        var (id, attempt, stdout, stderr) = (t.Id, t.Attempt ?? 0, t.Stdout, t.Stderr);
        var argv = t.Command;
        if (id is null || stdout is null || stderr is null || argv is not { Count: > 0 } || argv.Any(a => a is null))
        {
            _log("sparky worker: a task message without id, command or log paths; ignored");
            return;
        }
        var gpus = _freeGpus.Take(t.Gpus ?? 0).ToList();
        _freeGpus.RemoveRange(0, gpus.Count);
        var env = new Dictionary<string, string>(_baseEnv, StringComparer.Ordinal);
        foreach (var (k, v) in t.Env ?? [])
            if (v is not null) env[k] = v;
        env["SPARKY_WORKER"] = _o.Name;
        env[InstanceVar] = Instance;
        env["SPARKY_WORKER_RUN"] = _runToken;
        // The id names its cgroup: only a well-formed one (the daemon's, checked at submit) is trusted as a path.
        bool contained = Sparky.Core.Tasks.TaskId.TryParse(id, out _);
        if (contained) _contain.Mark(env, id, attempt);
        env["CUDA_VISIBLE_DEVICES"] = string.Join(',', gpus);
        if (gpus.Count > 0) env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID";
        var job = new Job(id, attempt, stdout, gpus) { Contained = contained, Stderr = stderr };
        try
        {
            Directory.CreateDirectory(Path.GetDirectoryName(stdout)!);
            Directory.CreateDirectory(Path.GetDirectoryName(stderr)!);
            // A payload that names work: the handler the daemon sent reads it on stdin and in $SPARKY_PAYLOAD_FILE.
            if (t.Payload is { } payload)
            {
                job.PayloadFile = WritePayload(id, attempt, payload);
                env["SPARKY_PAYLOAD_FILE"] = job.PayloadFile;
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Finish(job, new ProcessExit(127, null), $"cannot write its logs or payload here: {e.Message}");
            return;
        }
        if (t.Port == true)
        {
            if (_ports.Reserve(job.PortHolder) is not { } port)
            {
                var none = $"no free port to reserve on {_o.Host}: every port from " +
                    $"{Sparky.Core.Scheduling.PortAllocator.DefaultFirst} to {Sparky.Core.Scheduling.PortAllocator.DefaultLast} is held or in use";
                try { File.AppendAllText(stderr, "sparky worker: " + none + "\n"); } catch (IOException) { }
                Finish(job, new ProcessExit(127, null), none);
                return;
            }
            foreach (var (k, v) in Sparky.Core.Tasks.DistributedEnv.Port(port)) env[k] = v;
        }
        var cgroups = contained ? _contain.Prepare(id, attempt, (t.MemoryMb ?? 0) * 1024 * 1024) : default;
        var launch = _launcher.Launch(new LaunchSpec(argv!, env, t.Cwd, stdout, stderr, RecordStartTime: false, Prefix: _prefix,
            StdinPath: job.PayloadFile, Cgroup: cgroups.Unified, MemoryCgroup: cgroups.Memory), exit => Finish(job, exit, null));
        if (launch is LaunchResult.Started s)
        {
            job.Pid = s.Pid;
            _jobs[id] = job;
        }
        else
        {
            var why = ((LaunchResult.Failed)launch).Reason;
            try { File.AppendAllText(stderr, "sparky worker: " + why + "\n"); } catch (IOException) { }
            Finish(job, new ProcessExit(127, null), why);
        }
    }

    /// <summary>An attempt ended: its GPUs are free, and its end goes to the daemon (again after a reconnect, until acknowledged).</summary>
    private void Finish(Job job, ProcessExit exit, string? spawnFailure)
    {
        if (_jobs.TryGetValue(job.Id, out var current) && ReferenceEquals(current, job)) _jobs.Remove(job.Id);
        if (job.PayloadFile is { } payloadFile) try { File.Delete(payloadFile); } catch (IOException) { }
        // Nothing the attempt started outlives it; what its cgroups say of it goes to the daemon with its end.
        var usage = job.Contained ? _contain.Release(job.Id, job.Attempt, job.Pid, scanMarked: exit.ExitCode != 0) : default;
        if (usage.OutOfMemory && exit.ExitCode != 0 && job.Stderr is { } stderrLog)
            try { File.AppendAllText(stderrLog, "sparky worker: killed by the kernel's OOM killer" + (usage.MemoryPeakBytes is { } p ? $" (peak {p >> 20} MiB)" : "") + "\n"); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        _freeGpus.AddRange(job.Gpus);
        _ports.Release(job.PortHolder);
        _idleSince = DateTimeOffset.UtcNow;
        // A held task takes the slot at once: no round trip to the daemon between two short tasks.
        while (_jobs.Count < _o.Slots && _held.TryDequeue(out var next)) StartTask(next);
        if (job.Disowned) return;
        // The same rule as the daemon's own attempts for the result: the last marker line, and why it gave no result.
        var result = spawnFailure is null && exit.ExitCode == 0 ? ResultLine.Read(job.Stdout) : default;
        var body = new Finished
        {
            Session = _session, Id = job.Id, Attempt = job.Attempt, ExitCode = exit.ExitCode, Signal = exit.Signal, Credit = _draining ? 0 : 1,
            CpuMs = usage.CpuMicros / 1000, MemPeakBytes = usage.MemoryPeakBytes, Oom = usage.OutOfMemory ? true : null,
            Reason = spawnFailure is null ? null : "spawn_failed", Result = result.Json, ResultError = result.Error,
        };
        // Not sent without a session: it goes out after the next hello.
        if (_session is not null) Send(body);
        _unacked[(job.Id, job.Attempt)] = (body, DateTimeOffset.UtcNow);
    }

    // ---------- timers and signals ----------

    private void OnWake()
    {
        while (_wake.TryDequeue(out _, TimeSpan.Zero)) { }
        _launcher.Reap();
        if (_terminate)
        {
            _terminate = false;
            _log("sparky worker: stopping; tasks still running are killed and queued again by the daemon");
            Abandon(143);
        }
    }

    private void OnTick()
    {
        var now = DateTimeOffset.UtcNow;
        _launcher.Reap(); // a safety net: SIGCHLD wakes us
        _contain.Sweep(); // cgroups whose last processes have exited since their attempt's end
        if (_o.Walltime is { } wall)
        {
            if (now - _started >= wall) { _log("sparky worker: walltime reached"); Abandon(0); return; }
            if (!_draining && now - _started >= wall - _o.Drain)
            {
                _draining = true;
                _log($"sparky worker: draining ({(wall - (now - _started)).TotalSeconds:0} s of walltime left)");
                if (_session is not null) Send(new Draining { Session = _session });
            }
        }
        bool idle = _jobs.Count == 0 && _held.Count == 0 && _unacked.Count == 0;
        if (_session is null)
        {
            // ZeroMQ delivers a hello sent before the daemon was up; another goes only if an answer is long overdue.
            if (now - _lastHello >= TimeSpan.FromSeconds(5)) SendHello();
            // Never connected, or the daemon is gone: a pilot does not wait forever. Ends not yet acknowledged don't
            // keep it: no one is there to take them (a restarted daemon finds those attempts lost and runs them again).
            if (_jobs.Count == 0 && _held.Count == 0 && _o.IdleTimeout is { } it && now - _lastHeard >= it)
            {
                _log($"sparky worker: no answer from {_o.Connect} for {it.TotalSeconds:0} s; leaving");
                Stop(_everConnected ? 0 : 1);
            }
            return;
        }
        if (now - _lastBeat >= _heartbeat)
        {
            _lastBeat = now;
            // What it holds, and the last task it saw: a task or an end lost on the way shows as a difference.
            Send(new Heartbeat { Session = _session, Held = Holding(), Seen = _seenSeq });
            ResendEnds(2 * _heartbeat + TimeSpan.FromSeconds(1));
        }
        if (now - _lastHeard > _timeout)
        {
            // The daemon went quiet: say hello again; a restarted daemon follows what runs here.
            _session = null;
            SendHello();
            return;
        }
        bool leave = _draining || (_o.IdleTimeout is { } idleFor && now - _idleSince >= idleFor);
        if (idle && leave && now - _lastBye >= TimeSpan.FromSeconds(1))
        {
            _lastBye = now;
            Send(new Bye { Session = _session });
        }
    }

    /// <summary>Every attempt it holds: running, held for a slot, or ended and not acknowledged.</summary>
    private List<AttemptRef?> Holding()
    {
        var held = new List<AttemptRef?>();
        foreach (var j in _jobs.Values.Where(j => !j.Disowned)) held.Add(new AttemptRef { Id = j.Id, Attempt = j.Attempt });
        foreach (var t in _held) held.Add(new AttemptRef { Id = t.Id, Attempt = t.Attempt });
        foreach (var (id, attempt) in _unacked.Keys) held.Add(new AttemptRef { Id = id, Attempt = attempt });
        return held;
    }

    /// <summary>Sends again the ends not acknowledged within <paramref name="after"/> (under the session of now).</summary>
    private void ResendEnds(TimeSpan after)
    {
        var now = DateTimeOffset.UtcNow;
        foreach (var key in _unacked.Keys.ToList())
        {
            var (body, sentAt) = _unacked[key];
            if (now - sentAt < after) continue;
            Send(body with { Session = _session });
            _unacked[key] = (body, now);
        }
    }

    private void SendHello()
    {
        _lastHello = DateTimeOffset.UtcNow;
        var running = Holding();
        _helloCorr = Send(new Hello
        {
            Name = _o.Name, Host = _o.Host, Slots = _o.Slots, Gpus = _o.Gpus.Count,
            MemoryMb = (Sparky.Execution.Gpus.HostMemory.Read()?.TotalBytes ?? 0) / (1024 * 1024),
            Credits = _draining ? 0 : Math.Max(0, _o.Slots + _o.Prefetch - running.Count), Running = running, Pilot = _o.Pilot,
            Prefetch = _o.Prefetch, Classes = _o.Classes?.ToList<string?>(),
        });
    }

    /// <summary>Sends a message; returns the corr it went under (they increase).</summary>
    private long Send<T>(T body) where T : IMessage<T>, IShapeable<T>
    {
        _buffer.ResetWrittenCount();
        WorkerWire.Write(_buffer, WorkerWire.Corr(++_corr), body, _auth);
        var msg = new NetMQMessage(2);
        msg.AppendEmptyFrame();
        msg.Append(_buffer.WrittenSpan.ToArray());
        _dealer.TrySendMultipartMessage(TimeSpan.Zero, msg); // while no daemon is there, ZeroMQ queues it (up to the high-water mark)
        return _corr;
    }

    /// <summary>The proof of this worker's key for the envelope's <c>auth</c> (docs/security.md).</summary>
    private static string Proof(NetMQCertificate key, string serverKey)
    {
        var shared = new byte[32];
        NaCl.Curve25519.ScalarMultiplication(shared, key.SecretKey ?? throw new ArgumentException("the worker's key has no secret key"),
            NetMQCertificate.FromPublicKey(serverKey).PublicKey);
        return WorkerWire.Proof(shared);
    }

    /// <summary>Leaves now: what runs is killed, and the daemon is told at once so it queues it again.</summary>
    private void Abandon(int exitCode)
    {
        foreach (var j in _jobs.Values)
        {
            j.Disowned = true;
            SignalJob(j, Signals.Kill);
        }
        // Ends sent before the bye arrive before it; what still runs or is held is queued again by the daemon.
        if (_session is not null) Send(new Bye { Session = _session, Abandon = _jobs.Count > 0 || _held.Count > 0 });
        _held.Clear();
        Stop(exitCode);
    }

    private void Stop(int exitCode)
    {
        _exitCode = exitCode;
        _poller.StopAsync();
    }

    private static System.Diagnostics.Process? StartGuard(string token, Action<string> log)
    {
        var self = SelfCommand.Get();
        var psi = new System.Diagnostics.ProcessStartInfo(self[0]) { RedirectStandardInput = true, UseShellExecute = false };
        foreach (var a in self.Skip(1)) psi.ArgumentList.Add(a);
        foreach (var a in new[] { "worker", "--guard", token }) psi.ArgumentList.Add(a);
        try { return System.Diagnostics.Process.Start(psi); }
        catch (Exception e) when (e is System.ComponentModel.Win32Exception or InvalidOperationException)
        {
            log($"sparky worker: cannot start the guard that ends tasks with the worker ({e.Message}); using setpriv instead");
            return null;
        }
    }

    /// <summary>
    /// The guard's side (<c>sparky worker --guard TOKEN</c>): waits until its stdin closes (the worker ended, however),
    /// then kills every process carrying the token. It ignores SIGINT and SIGTERM, which a terminal or a job's end sends
    /// to the worker's whole group: the pipe alone decides.
    /// </summary>
    public static int Guard(string token)
    {
        using var sigint = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGINT, c => c.Cancel = true);
        using var sigterm = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGTERM, c => c.Cancel = true);
        using var stdin = Console.OpenStandardInput();
        var buffer = new byte[256];
        while (stdin.Read(buffer) > 0) { }
        // Again until a pass finds nothing: a task may have started a child during the first pass.
        for (int pass = 0; pass < 10 && MarkedProcesses.KillAll("SPARKY_WORKER_RUN", token) > 0; pass++) Thread.Sleep(20);
        return 0;
    }

    /// <summary>This run's payload files: a folder only this user can enter, removed when the worker ends.</summary>
    private readonly string _payloadDir = Path.Combine(Path.GetTempPath(), "sparky-worker-" + Guid.NewGuid().ToString("N")[..12]);

    private string WritePayload(string id, int attempt, string payload)
    {
        Directory.CreateDirectory(_payloadDir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        // The id is the daemon's (checked at submit), but this side trusts no path it did not make.
        var name = $"{(Sparky.Core.Tasks.TaskId.TryParse(id, out _) ? id : "task")}.{attempt}.payload.json";
        var path = Path.Combine(_payloadDir, name);
        using var f = new FileStream(path, new FileStreamOptions
        {
            Mode = FileMode.Create, Access = FileAccess.Write, UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
        });
        f.Write(System.Text.Encoding.UTF8.GetBytes(payload));
        return path;
    }

    public void Dispose()
    {
        try { if (Directory.Exists(_payloadDir)) Directory.Delete(_payloadDir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        _poller.Dispose();
        _dealer.Dispose();
        _wake.Dispose();
        _launcher.Dispose();
        _contain.Close();
        if (_guard is not null)
        {
            // Closing the pipe is the guard's signal; by now nothing of ours should be left to kill.
            try { _guard.StandardInput.Close(); } catch (IOException) { }
            _guard.WaitForExit(2000);
            _guard.Dispose();
        }
    }
}
