using System.Text.Json.Nodes;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Sparky.Core.Config;
using Sparky.Core.Events;
using Sparky.Core.Limiting;
using Sparky.Execution.Host;
using Sparky.Core.Scheduling;
using Sparky.Core.Lifecycle;
using Sparky.Core.Tasks;
using Sparky.Core.Time;
using Sparky.Execution.Processes;
using Sparky.Execution.Slurm;
using Sparky.Server.Events;
using Sparky.Server.Executors;
using Sparky.Server.Executors.Local;
using Sparky.Server.Executors.Noop;
using Sparky.Server.Executors.Slurm;
using Sparky.Server.Executors.Workers;
using Sparky.Server.Outputs;
using Sparky.Server.Progress;
using Sparky.Store.Sqlite;

namespace Sparky.Server.Daemon;

/// <summary>
/// The daemon's heart: one loop that owns the scheduler and every running attempt, and turns
/// submissions, process exits, cancels and timers into store writes, process starts and events.
/// Everything that touches scheduler state runs on this loop, so none of it needs a lock.
/// </summary>
public sealed partial class Engine : IAsyncDisposable, IAttemptHost
{
    private abstract record Command;
    private sealed record AddedCmd(IReadOnlyList<(TaskId Id, TaskSpec Spec, long SubmittedAt, int Attempts)> Tasks) : Command;
    private sealed record ExitedCmd(TaskId Id, int Attempt, ProcessExit Exit, string? Reason) : Command;
    private sealed record CancelCmd(TaskId Id, TaskCompletionSource<CommandOutcome> Reply) : Command;
    private sealed record SlurmCmd(SlurmReport Report) : Command;
    private sealed record WorkerMsgCmd(WorkerMessage Message) : Command;

    /// <summary>A task submitted to this daemon and not finished: its spec, kept so a start needs no read.</summary>
    private sealed record Known(TaskSpec Spec, long SubmittedAt);

    /// <summary>Past this many unfinished tasks, specs are read from the store at start instead of kept.</summary>
    private const int MaxKnown = 50_000;

    private readonly SparkyConfig _config;
    private readonly SqliteStore _store;
    private readonly EventHub _events;
    private readonly TimeProvider _clock;
    /// <summary>The local executor: processes on this host (launcher, containment, shim and exit files).</summary>
    private readonly LocalExecutor _local;
    /// <summary>The Slurm executor (built at start, when sbatch is found or not), and the class each executor runs.</summary>
    private SlurmAttempts _slurmAttempts = null!;
    /// <summary>The worker executor (built at start): sessions, credits and the pilots that bring workers up.</summary>
    private WorkerExecutor? _onWorkers;
    private readonly Dictionary<string, IExecutor> _executorOf = new(StringComparer.Ordinal);
    private IExecutor[] _executors = [];
    private readonly TaskLogs _taskLogs;
    private readonly ILoggerFactory _logs;
    private readonly ILogger _log;
    private readonly ClassHandlers _handlers;
    /// <summary>Set by every command and every SIGCHLD: the loop sleeps on it.</summary>
    private readonly AutoResetEvent _wake = new(false);
    private readonly Scheduler _scheduler;
    private readonly TaskIdGenerator _ids;
    private readonly RetryPolicy _retry;
    private readonly Channel<Command> _commands = Channel.CreateUnbounded<Command>(new UnboundedChannelOptions { SingleReader = true });
    private readonly Dictionary<TaskId, Attempt> _running = new();
    private readonly Dictionary<TaskId, Known> _known = new();
    /// <summary>The lives of tasks started (or replayed) and not finished: their attempts, stops, timers and budgets.</summary>
    private readonly Dictionary<TaskId, TaskLife> _lives = new();
    private readonly Dictionary<TaskId, TaskState> _recentlyFinished = new();
    private readonly Queue<TaskId> _recentOrder = new();
    private readonly string _logsDir, _runDir, _instance;
    private readonly CancellationTokenSource _stop = new();
    private readonly Random _random = new();
    private readonly Dictionary<string, ILimiter> _limiters = new(StringComparer.Ordinal);
    private readonly IReadOnlySet<string> _slurmClasses;
    private readonly IReadOnlySet<string> _workerClasses;
    private readonly TimeSpan _killGrace;
    /// <summary>The share of one GPU (MiB) a gpu task that asks for none reserves here; 0: a whole GPU.</summary>
    private readonly long _defaultGpuShareMb;
    private SlurmExecutor? _slurm;
    private DateTimeOffset _nextPressure;
    /// <summary>Mean utilisation of the GPUs, 0..1, from the daemon's GPU sampler; NaN where there is no GPU.</summary>
    private double _gpuUtilization = double.NaN;
    private Thread? _loop;
    private long _seq;

    public string DataDir { get; }
    public IReadOnlySet<string> KnownClasses { get; }
    /// <summary>How the native doors (<c>POST /api/v1/tasks</c>, ZeroMQ) parse an envelope: a payload without a command
    /// only where its class has a handler.</summary>
    public EnvelopeOptions NativeDoor { get; }
    /// <summary>How the replaced system's doors (<c>POST /queue/submit</c>, the drop directory) parse one: a payload
    /// without a command in any class, as that system's runner took it.</summary>
    public EnvelopeOptions CompatDoor { get; }
    public bool Ready { get; private set; }
    /// <summary>Told of waits, ends and Slurm jobs as they happen (the daemon's metrics). Set before <see cref="Start"/>.</summary>
    public IEngineObserver Observer { get; set; } = IEngineObserver.None;
    /// <summary>Slurm's last word on a task's current job, or null if it has none in this daemon's memory.</summary>
    public SlurmView? SlurmViewOf(TaskId id) => _slurmAttempts?.ViewOf(id);
    /// <summary>Told of each attempt as it begins and ends, on the loop (the progress follower). Set before <see cref="Start"/>.</summary>
    public IAttemptFollower Follower { get; set; } = IAttemptFollower.None;
    /// <summary>An end's declared artifacts are owed (committed): the daemon's recorder hashes them off this loop.</summary>
    public Action<ArtifactJob>? ArtifactsOwed { get; set; }

    /// <param name="logs">Where the engine and its executors log; null: nowhere (tests of one part).</param>
    public Engine(SparkyConfig config, SqliteStore store, EventHub events, TimeProvider clock, ResourcePool pool, ILoggerFactory? logs = null)
    {
        _logs = logs ?? NullLoggerFactory.Instance;
        _log = _logs.CreateLogger<Engine>();
        _config = config;
        _store = store;
        _events = events;
        // Timeouts, kill graces, backoffs and adoption deadlines are measured on a monotonic clock: a wall-clock
        // step (NTP at boot, a user's date -s) neither fires them early nor holds them back.
        _clock = clock as SteadyClock ?? new SteadyClock(clock);
        _ids = new TaskIdGenerator(clock);
        _killGrace = TimeSpan.FromSeconds(config.KillGraceSeconds);
        _retry = RetryPolicy.Default with { Base = TimeSpan.FromSeconds(config.RetryBaseSeconds) };
        _slurmClasses = config.SlurmClasses;
        _workerClasses = config.WorkerClasses;
        // gpu_memory_default is a limit (the replaced system's DSPY_GPU_MEMORY_LIMIT): where no GPU here is larger
        // than it, a task gets a whole GPU, which is within the limit, rather than a share that fits nowhere.
        long largestGpuMb = pool.Gpus.Count == 0 ? 0 : pool.Gpus.Max(g => g.MemoryMb);
        _defaultGpuShareMb = config.GpuMemoryDefaultMb < largestGpuMb ? config.GpuMemoryDefaultMb : 0;
        // A Slurm task may be submitted while the Slurm jobs it depends on still run (afterok), once their
        // outcome is final: a retry would get a new job id that the held job does not wait for.
        _scheduler = new Scheduler(config.ClassLimits, pool)
        {
            ChainClasses = _slurmClasses,
            CanChainOn = dep => _running.TryGetValue(dep, out var r) && r.Place is SlurmPlacement && r.N > r.Life.Retries,
        };
        if (config.MaxConcurrency > 0) _scheduler.MaxRunning = config.MaxConcurrency;
        foreach (var cls in SparkyConfig.Classes)
        {
            // Each class starts at its ceiling (what a fixed limit would give) and backs off under overload.
            var l = config.ClassLimit(cls);
            _limiters[cls] = Limiters.Create(l.Limiter, l.Min, l.Max, l.Max);
            _scheduler.SetLimit(cls, _limiters[cls].Limit);
        }
        // A worker class runs as many at once as its workers have slots: none until one connects.
        foreach (var cls in _workerClasses)
        {
            _limiters.Remove(cls);
            _scheduler.SetLimit(cls, 0);
        }
        KnownClasses = config.ClassLimits.Keys.ToHashSet();
        DataDir = Path.GetFullPath(config.DataDir);
        _logsDir = Path.Combine(DataDir, "logs");
        _runDir = Path.Combine(DataDir, "run");
        _instance = DataDir;
        _taskLogs = new TaskLogs(_logsDir);
        _handlers = new ClassHandlers(config, _runDir, _workerClasses);
        NativeDoor = new EnvelopeOptions { HandlerClasses = KnownClasses.Where(c => _handlers.HandlerOf(c) is not (null, null)).ToHashSet(StringComparer.Ordinal) };
        CompatDoor = NativeDoor with { CompatDoor = true };
        Directory.CreateDirectory(_logsDir);
        Directory.CreateDirectory(_runDir);
        _local = new LocalExecutor(config, _instance, _runDir, () => _wake.Set(), this, store, events, _taskLogs, _handlers, _logs,
            (id, n, exit) => Post(new ExitedCmd(id, n, exit, null)));
    }

    public int Limit(string cls) => _scheduler.Limit(cls);

    private int _gpuHoldersVersion;
    private IReadOnlyList<GpuHold> _gpuHolders = [];
    /// <summary>Which running tasks hold which GPU (and how much of it): a copy the loop makes when it changes. Any thread.</summary>
    public IReadOnlyList<GpuHold> GpuHolders => Volatile.Read(ref _gpuHolders);

    private void CopyGpuHolders()
    {
        if (_scheduler.GpuHoldersVersion == _gpuHoldersVersion) return;
        _gpuHoldersVersion = _scheduler.GpuHoldersVersion;
        var copy = new List<GpuHold>();
        foreach (var (id, a) in _scheduler.GpuHolders)
            foreach (var uuid in a.GpuUuids)
                copy.Add(new GpuHold(uuid, id, a.Request.GpuMemoryMb > 0 ? a.Request.GpuMemoryMb : null));
        Volatile.Write(ref _gpuHolders, copy);
    }

    /// <summary>Per-task bookkeeping of unfinished tasks (their lives, Slurm look-before-resubmit): for tests that
    /// check it does not outlive its task. Read from another thread: a count, nothing more.</summary>
    internal (int Lives, int LookFirst) Bookkeeping => (_lives.Count, _slurmAttempts?.LookFirstCount ?? 0);

    /// <summary>How attempts' processes are kept together; the plan runner marks its gate checks with it.</summary>
    public Containment Containment => _local.Containment;

    /// <summary>The environment tasks start from: the daemon's, without its own SPARKY_ settings (the token is a secret).</summary>
    public IReadOnlyDictionary<string, string> BaseEnvironment => _local.BaseEnvironment;

    /// <summary>The GPUs' mean utilisation (0..1), or null: fed to the GPU classes' limiters. Any thread.</summary>
    public double? GpuUtilization
    {
        get => double.IsNaN(Volatile.Read(ref _gpuUtilization)) ? null : _gpuUtilization;
        set => Volatile.Write(ref _gpuUtilization, value ?? double.NaN);
    }

    /// <summary>Recovers what a previous daemon left and starts the loop.</summary>
    public void Start()
    {
        if (SlurmExecutor.SbatchFound())
        {
            _slurm = new SlurmExecutor(new SlurmExecutorOptions(_config.SlurmPollInterval, _config.SlurmCommandTimeout), r => Post(new SlurmCmd(r)), _clock, _logs.CreateLogger<SlurmExecutor>());
            var observer = Observer;
            _slurm.PollErrorObserved = observer.SlurmPollError;
        }
        _slurmAttempts = new SlurmAttempts(_config, _slurm, this, _store, _events, _taskLogs, _handlers, Observer, _log, _instance,
            id => _scheduler.RunningDepsOf(id), id => _known.TryGetValue(id, out var k) ? k.SubmittedAt : null);
        // The engine picks each class's executor once: workers first (a pilot class is also a Slurm class), then Slurm.
        var onWorkers = _onWorkers = new WorkerExecutor(_config, _slurm, () => Workers, this, _store, _events, _taskLogs, _handlers, Observer,
            _log, _clock, _scheduler.SetLimit, _scheduler.ReadyCount);
        foreach (var cls in SparkyConfig.Classes)
            _executorOf[cls] = IsWorkerClass(cls) ? onWorkers : _slurmClasses.Contains(cls) ? _slurmAttempts : _local;
        _executors = [_local, _slurmAttempts, onWorkers];
        if (_config.BenchNoopClasses.Count > 0)
        {
            // A benchmark's setting: these classes run nothing, which must never pass unnoticed.
            EngineLog.NoopClasses(_log, string.Join(",", _config.BenchNoopClasses.Order(StringComparer.Ordinal)));
            var noop = new NoopExecutor(this, _store, _events, (id, n, exit) => Post(new ExitedCmd(id, n, exit, null)));
            foreach (var cls in _config.BenchNoopClasses) _executorOf[cls] = noop;
            _executors = [.. _executors, noop];
        }
        Recover();
        Ready = true;
        _loop = new Thread(Loop) { IsBackground = true, Name = "sparky-engine" };
        _loop.Start();
    }

    /// <summary>
    /// <c>logs/&lt;shard&gt;/&lt;id&gt;.&lt;attempt&gt;.out|err</c>: a shard (two hex digits of a hash of the id) keeps
    /// directories small, and no directory is made per task, so a task costs two new inodes, not three.
    /// </summary>
    public string LogPath(TaskId id, int attempt, bool stderr) => _taskLogs.PathOf(id, attempt, stderr);

    /// <summary>Whether tasks of <paramref name="cls"/> go to Slurm one sbatch each (not to workers).</summary>
    public bool RunsOnSlurm(string cls) => _slurmClasses.Contains(cls) && !IsWorkerClass(cls);

    /// <summary>The Slurm job id of a task just submitted, once sbatch has taken its job (see <see cref="SlurmAttempts.JobIdAsync"/>). Any thread.</summary>
    public Task<string?> SlurmJobIdAsync(TaskId id, TimeSpan wait) => _slurmAttempts?.JobIdAsync(id, wait) ?? Task.FromResult<string?>(null);

    /// <summary>The executor that runs tasks of <paramref name="cls"/>: chosen once, at start.</summary>
    private IExecutor ExecutorOf(string cls) => _executorOf.TryGetValue(cls, out var e) ? e : _local;

    // ---------- the loop ----------

    private void Post(Command cmd)
    {
        _commands.Writer.TryWrite(cmd);
        _wake.Set();
    }

    /// <summary>
    /// One thread, one pass per wake-up over everything that changed: exits, commands, timers, then
    /// starts. Waking by event rather than awaiting keeps an exit-to-next-start in one thread hop.
    /// </summary>
    private void Loop()
    {
        var reader = _commands.Reader;
        while (!_stop.IsCancellationRequested)
        {
            Guard(_local.Reap);
            var now = _clock.GetUtcNow();
            // One failure (a full disk, an unreadable file) must not stop the loop that runs every task.
            while (reader.TryRead(out var cmd)) Guard(() => Handle(cmd, now));
            now = _clock.GetUtcNow();
            Guard(() => CheckTimers(now));
            Guard(() => FeedPressure(now));
            Guard(() => StartWhatFits(now));
            foreach (var e in _executors) Guard(() => e.Tick(now));
            CopyGpuHolders();

            if (reader.TryPeek(out _)) continue;
            // A slow poll while children run is only a safety net: SIGCHLD wakes us.
            var wait = NextWake(now) ?? Timeout.InfiniteTimeSpan;
            if (_local.RunningCount > 0 && (wait == Timeout.InfiniteTimeSpan || wait > TimeSpan.FromMilliseconds(500))) wait = TimeSpan.FromMilliseconds(500);
            _wake.WaitOne(wait);
        }
    }

    /// <summary>One failure (a full disk, an unreadable file, a bug) is logged; the loop that runs every task goes on.</summary>
    private void Guard(Action action)
    {
        try { action(); }
        catch (Exception e)
        {
            EngineLog.LoopFailed(_log, e.GetType().Name, e.Message);
        }
    }

    private TimeSpan? NextWake(DateTimeOffset now)
    {
        DateTimeOffset? next = _scheduler.NextDue();
        foreach (var r in _running.Values)
            if (r.Life.NextTimer is { } t && (next is null || t < next)) next = t;
        foreach (var e in _executors)
            if (e.NextWake(now) is { } l && (next is null || l < next)) next = l;
        if (next is null) return null;
        var delay = next.Value - now;
        // A wait holds at most int.MaxValue ms (24.8 days); a timeout further off is looked at again in an hour.
        return delay < TimeSpan.FromMilliseconds(1) ? TimeSpan.FromMilliseconds(1) : delay > TimeSpan.FromHours(1) ? TimeSpan.FromHours(1) : delay;
    }

    private void Handle(Command cmd, DateTimeOffset now)
    {
        switch (cmd)
        {
            case AddedCmd added:
                foreach (var (id, spec, submittedAt, attempts) in added.Tasks)
                {
                    if (_known.Count < MaxKnown) _known[id] = new Known(spec, submittedAt);
                    if (attempts > 0) _lives[id] = new TaskLife(id, spec.Retries, attempts); // a replay numbers its attempts on
                    _recentlyFinished.Remove(id); // a replay is no longer finished
                    Add(id, spec.Class, spec.After, spec.Asks, now);
                }
                break;
            case ExitedCmd exited:
                if (_running.TryGetValue(exited.Id, out var r) && r.N == exited.Attempt) Ended(r, exited.Exit, exited.Reason, now);
                break;
            case SlurmCmd slurm:
                Guard(() => { if (_onWorkers?.Pilots.OnReport(slurm.Report, now) != true) _slurmAttempts.OnReport(slurm.Report, now); });
                break;
            case WorkerMsgCmd worker:
                _onWorkers?.OnMessage(worker.Message, now);
                break;
            case CancelCmd cancel:
                try { Cancel(cancel.Id, cancel.Reply, now); }
                catch { cancel.Reply.TrySetResult(CommandOutcome.Unavailable); throw; }
                break;
            case RemoteCmd remote:
                AnswerRemote(remote, now);
                break;
        }
    }

    /// <summary>Dependencies of the task being added that are still in the scheduler; reused, as a restart adds a million tasks.</summary>
    private readonly List<TaskId> _activeDeps = new();

    private void Add(TaskId id, string cls, IReadOnlyList<TaskId> after, ResourceRequest asks, DateTimeOffset now)
    {
        _activeDeps.Clear();
        bool depFailed = false;
        for (int i = 0; i < after.Count; i++)
        {
            var dep = after[i];
            if (_scheduler.Contains(dep)) { _activeDeps.Add(dep); continue; }
            TaskState? state;
            if (_recentlyFinished.TryGetValue(dep, out var s)) state = s;
            else
            {
                state = _store.StateOf(dep);
                // Many tasks may name one finished dependency (a restart re-adds them all): read it once.
                if (state is { } st && st.IsTerminal()) RememberEnd(dep, st);
            }
            if (state is TaskState.Succeeded) continue;
            if (state is TaskState.Failed or TaskState.Cancelled or null) depFailed = true;
            else _activeDeps.Add(dep); // committed as queued but not yet added: can only happen while recovering, in seq order
        }
        Apply(_scheduler.Add(id, cls, ++_seq, _activeDeps, depFailed, LocalRequest(cls, asks)), now);
    }

    private void Apply(IReadOnlyList<Decision> decisions, DateTimeOffset now)
    {
        foreach (var d in decisions)
        {
            if (d is Decision.Fail fail) Step(LifeOf(fail.Id), new LifeEvent.Refused(fail.Reason), now);
            // Its Slurm job waits on a dependency that will never succeed: taken away; it ends as dependency_failed.
            else if (d is Decision.FailRunning stop && _running.TryGetValue(stop.Id, out var r)) Step(r.Life, LifeEvent.DependencyFailed, now, r);
        }
    }

    /// <summary>A task that runs no attempt ends (cancelled while queued, in its backoff or waiting for a worker's credit;
    /// refused by the scheduler): it leaves the scheduler, its end is stored, and its dependants learn of it.</summary>
    private Task<WriteResult> EndUnstarted(TaskId id, TaskState to, string reason, DateTimeOffset now)
    {
        // A worker task its executor took back before any worker had it.
        if (_running.Remove(id, out var taken)) Follower.Ended(id, taken.N);
        if (!_scheduler.TryCancelNotRunning(id, out var freed)) freed = _scheduler.Finished(id, to);
        var write = Finished(id, TaskState.Queued, to, reason, now);
        Apply(freed, now);
        return write;
    }

    /// <summary>A task that is not running (queued, waiting, or between retries) reaches a terminal state.</summary>
    private Task<WriteResult> Finished(TaskId id, TaskState from, TaskState to, string reason, DateTimeOffset now)
    {
        var spec = _known.TryGetValue(id, out var k) ? k.Spec : _store.SpecOf(id)?.Spec;
        var cls = spec?.Class ?? Classes.CpuShort;
        var write = _store.FinishAsync(id, cls, from, to, reason, now.ToUnixTimeMilliseconds(), spec?.DoneFile == true);
        ExecutorOf(cls).EndedUnstarted(id, write);
        Remember(id, to);
        Observer.TaskCompleted(cls, to.Name(), 0);
        var body = new JsonObject { ["state"] = to.Name(), ["reason"] = reason };
        if (spec?.DoneFile == true) body["done_file"] = true;
        PublishOnceStored(write, Event(SparkyEvent.TaskFinished, id, cls, body));
        return write;
    }

    /// <summary>An end is announced once it is committed: whoever reacts to task.finished (a client asking for
    /// the status, the done-file writer) reads the end, not the state before it.</summary>
    private void PublishOnceStored(Task<WriteResult> write, SparkyEvent e) =>
        write.ContinueWith(_ => _events.Publish(e), TaskContinuationOptions.ExecuteSynchronously);

    /// <summary>
    /// A cancel goes to the task's life. It is answered once what it changed is stored (a queued task's end, a running
    /// attempt's stop), so a restart cannot undo it; a running attempt's end (cancelled) is recorded when it exits, its
    /// worker reports it, or Slurm reports it CANCELLED.
    /// </summary>
    private void Cancel(TaskId id, TaskCompletionSource<CommandOutcome> reply, DateTimeOffset now)
    {
        Task<WriteResult>? write;
        // Not under way anywhere now (a worker task waiting for a credit, or for its worker to come back after a
        // restart): its executor takes it back, and it ends here.
        if (_running.TryGetValue(id, out var r)) write = Step(r.Life, new LifeEvent.Cancel(ExecutorOf(r.Class).Withdraw(r)), now, r);
        else if (_scheduler.Contains(id)) write = Step(LifeOf(id), new LifeEvent.Cancel(), now);
        else
        {
            reply.TrySetResult(_store.StateOf(id) is null ? CommandOutcome.NotFound : CommandOutcome.AlreadyFinished);
            return;
        }
        if (write is null) reply.TrySetResult(CommandOutcome.Done); // stopped already
        else write.ContinueWith(t => reply.TrySetResult(t.Result.Status == WriteStatus.Ok ? CommandOutcome.Done : CommandOutcome.Unavailable),
            TaskContinuationOptions.ExecuteSynchronously);
    }

    /// <summary>Every 2 s: host memory pressure to every limiter, GPU utilisation to the GPU classes'.</summary>
    private void FeedPressure(DateTimeOffset now)
    {
        if (now < _nextPressure) return;
        _nextPressure = now.AddSeconds(2);
        double? memory = MemoryPressure.Read();
        double? gpu = GpuUtilization;
        foreach (var (cls, limiter) in _limiters)
        {
            bool usesGpus = cls is Classes.Gpu;
            _scheduler.SetLimit(cls, limiter.OnPressure(new PressureSample(now, usesGpus ? gpu : null, memory)));
        }
    }

    private void Remember(TaskId id, TaskState state)
    {
        _known.Remove(id);
        // Ended however (a cancel during a backoff or before a start included): its life goes too.
        _lives.Remove(id);
        RememberEnd(id, state);
    }

    /// <summary>Dependants submitted right after their dependency finished may be added before the store has
    /// committed that; this short memory answers for them (and for a finished dependency many tasks name).</summary>
    private void RememberEnd(TaskId id, TaskState state)
    {
        if (_recentlyFinished.TryAdd(id, state)) _recentOrder.Enqueue(id);
        else _recentlyFinished[id] = state;
        if (_recentOrder.Count > 65_536) _recentlyFinished.Remove(_recentOrder.Dequeue());
    }

    /// <summary>What a task of <paramref name="cls"/> reserves on this machine.</summary>
    private ResourceRequest LocalRequest(string cls, ResourceRequest asks) =>
        ResourceRequest.Local(cls, asks, slurmBound: _slurmClasses.Contains(cls) || IsWorkerClass(cls), _defaultGpuShareMb);

    private bool IsWorkerClass(string cls) => _workerClasses.Contains(cls);

    private static void TryDelete(string path)
    {
        try { File.Delete(path); } catch (IOException) { }
    }

    private SparkyEvent Event(string topic, TaskId id, string cls, JsonObject extra) => TaskEvents.Of(topic, id, cls, _clock.GetUtcNow(), extra);

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _wake.Set();
        _loop?.Join();
        _local.Dispose();
        _slurm?.Dispose();
        await Task.CompletedTask;
    }
}
