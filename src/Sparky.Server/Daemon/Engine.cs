using System.Diagnostics;
using System.Text.Json.Nodes;
using System.Threading.Channels;
using Sparky.Core.Config;
using Sparky.Core.Events;
using Sparky.Core.Limiting;
using Sparky.Execution.Host;
using Sparky.Core.Scheduling;
using Sparky.Core.Lifecycle;
using Sparky.Core.Tasks;
using Sparky.Core.Time;
using Sparky.Core.Workers;
using Sparky.Execution.Processes;
using Sparky.Execution.Slurm;
using Sparky.Server.Events;
using Sparky.Server.Executors.Local;
using Sparky.Server.Outputs;
using Sparky.Store.Sqlite;

namespace Sparky.Server.Daemon;

public abstract record SubmitOutcome
{
    /// <summary>Stored; <paramref name="SentAgain"/> of them were stored already with the same envelope (an
    /// idempotent submit: left as they are).</summary>
    public sealed record Accepted(IReadOnlyList<TaskId> Ids, int SentAgain = 0) : SubmitOutcome
    {
        public bool AllSentAgain => SentAgain == Ids.Count;
    }
    public sealed record Invalid(string Reason) : SubmitOutcome;
    public sealed record Conflict(string Reason) : SubmitOutcome;
    public sealed record QueueFull(long Queued, long Bound) : SubmitOutcome;
    public sealed record Unavailable(string Reason) : SubmitOutcome;
}

public enum CommandOutcome { Done, NotFound, AlreadyFinished, NotFinished, Unavailable }

/// <summary>
/// The daemon's heart: one loop that owns the scheduler and every running attempt, and turns
/// submissions, process exits, cancels and timers into store writes, process starts and events.
/// Everything that touches scheduler state runs on this loop, so none of it needs a lock.
/// </summary>
public sealed partial class Engine : IAsyncDisposable
{
    private abstract record Command;
    private sealed record AddedCmd(IReadOnlyList<(TaskId Id, TaskSpec Spec, long SubmittedAt, int Attempts)> Tasks) : Command;
    private sealed record ExitedCmd(TaskId Id, int Attempt, ProcessExit Exit, string? Reason) : Command;
    private sealed record CancelCmd(TaskId Id, TaskCompletionSource<CommandOutcome> Reply) : Command;
    private sealed record SlurmCmd(SlurmReport Report) : Command;
    // WorkerMsgCmd: Engine.Workers.cs

    /// <summary>An attempt in flight, wherever it runs (<see cref="Place"/>): a process of ours, a Slurm job, or a task on a worker.</summary>
    private sealed class Running
    {
        public required TaskId Id;
        public required string Class;
        public required int N;
        public required int Retries;
        public required long StartedAt;
        /// <summary>Where it runs, with what only that executor knows of it.</summary>
        public required Placement Place;
        /// <summary>Why it is being stopped, if it is (<see cref="AttemptEnd.TryStop"/>): decides how its end is recorded,
        /// whatever its exit says.</summary>
        public StopReason Stop;
        public string StdoutPath = "";
        /// <summary>The payload file a handler reads (<c>$SPARKY_PAYLOAD_FILE</c>), removed when the attempt ends.</summary>
        public string? PayloadFile;
        public DateTimeOffset? Deadline;
        public DateTimeOffset? KillAt;
        public bool DoneFile;
        /// <summary>The spec's declared output artifacts and working directory: hashed when it ends.</summary>
        public IReadOnlyList<DeclaredOutput>? Outputs;
        public string? Cwd;
        /// <summary>The memory it asked for (MiB), for the reason an OOM kill gives.</summary>
        public long MemoryMb;
    }

    /// <summary>Where an attempt runs: each executor's own facts about it, and none of another's.</summary>
    private abstract record Placement;

    /// <summary>A process on this host. <paramref name="Spawned"/>: started by this daemon, so its pid (and group) is ours
    /// until reaped, never a stale one from the store. <paramref name="Reattached"/>: found running after a restart; its
    /// end is read from <paramref name="ExitFile"/>, written by the shim it runs under.</summary>
    private sealed record LocalPlacement(int Pid, long PidStart, string? ExitFile, bool Spawned, bool Reattached) : Placement;

    /// <summary>A Slurm job (no pid of ours; Slurm enforces its time limit); its id once sbatch answered.</summary>
    private sealed record SlurmPlacement(string? JobId) : Placement;

    /// <summary>
    /// A task run by a worker over ZeroMQ. <paramref name="Session"/>: the worker session running it; null while it waits
    /// for a credit, or (with <paramref name="AdoptBy"/>) for the worker named <paramref name="Name"/> to say hello again
    /// after a restart. <paramref name="Seq"/>: the number of the task message that gave it to its worker.
    /// <paramref name="Result"/>/<paramref name="ResultError"/>: what the worker read from its output's result line.
    /// <paramref name="Spec"/>: what it is sent with once a worker has a credit for it (null after a restart: it is
    /// followed, never sent again); <paramref name="Gpus"/>: the whole GPUs it holds on its worker.
    /// </summary>
    private sealed record WorkerPlacement(string? Session, string? Name, long Seq, DateTimeOffset? AdoptBy, TaskSpec? Spec, int Gpus,
        string? Result = null, string? ResultError = null) : Placement;

    /// <summary>An attempt that ended before any executor took it (no handler, a start that threw): no process, nothing to signal.</summary>
    private static readonly Placement NotStarted = new LocalPlacement(0, 0, null, Spawned: false, Reattached: false);


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
    /// <summary>Each local attempt's processes, whatever groups or sessions they make: a cgroup, else their marker.</summary>
    /// <summary>Set by every command and every SIGCHLD: the loop sleeps on it.</summary>
    private readonly AutoResetEvent _wake = new(false);
    private readonly Scheduler _scheduler;
    private readonly TaskIdGenerator _ids;
    private readonly RetryPolicy _retry;
    private readonly Channel<Command> _commands = Channel.CreateUnbounded<Command>(new UnboundedChannelOptions { SingleReader = true });
    private readonly Dictionary<TaskId, Running> _running = new();
    private readonly Dictionary<TaskId, Known> _known = new();
    private readonly Dictionary<TaskId, int> _attemptsSoFar = new();
    private readonly HashSet<string> _shardsMade = new(StringComparer.Ordinal);
    private readonly Dictionary<TaskId, TaskState> _recentlyFinished = new();
    private readonly Queue<TaskId> _recentOrder = new();
    private readonly string _logsDir, _runDir, _instance;
    private readonly CancellationTokenSource _stop = new();
    private readonly Random _random = new();
    private readonly Dictionary<string, ILimiter> _limiters = new(StringComparer.Ordinal);
    private readonly IReadOnlySet<string> _slurmClasses;
    /// <summary>The share of one GPU (MiB) a gpu task that asks for none reserves here; 0: a whole GPU.</summary>
    private readonly long _defaultGpuShareMb;
    /// <summary>Slurm tasks recovered as queued: a dead daemon may have run sbatch for them without recording it.</summary>
    private readonly HashSet<TaskId> _slurmLookFirst = new();
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
    public Action<string, double>? QueueWaitObserved { get; set; }
    public Action<string, string, double>? TaskCompletedObserved { get; set; }
    public Action? SlurmJobSubmitted { get; set; }
    public Action<string>? SlurmJobCompleted { get; set; }
    public Action? SlurmPollError { get; set; }
    /// <summary>Slurm's last word on a task's current job, or null if it has none in this daemon's memory.</summary>
    public SlurmView? SlurmViewOf(TaskId id) => _slurm?.ViewOf(id.Value);
    /// <summary>An end's declared artifacts are owed (committed): the daemon's recorder hashes them off this loop.</summary>
    public Action<ArtifactJob>? ArtifactsOwed { get; set; }

    public Engine(SparkyConfig config, SqliteStore store, EventHub events, TimeProvider clock, ResourcePool pool)
    {
        _config = config;
        _store = store;
        _events = events;
        // Timeouts, kill graces, backoffs and adoption deadlines are measured on a monotonic clock: a wall-clock
        // step (NTP at boot, a user's date -s) neither fires them early nor holds them back.
        _clock = clock as SteadyClock ?? new SteadyClock(clock);
        _ids = new TaskIdGenerator(clock);
        _retry = RetryPolicy.Default with { Base = TimeSpan.FromSeconds(config.RetryBaseSeconds) };
        _slurmClasses = config.SlurmClasses;
        _workerClasses = config.WorkerClasses;
        // gpu_memory_default is a limit (the replaced system's DSPY_GPU_MEMORY_LIMIT): where no GPU here is larger
        // than it, a task gets a whole GPU, which is within the limit, rather than a share that fits nowhere.
        long largestGpuMb = pool.Gpus.Count == 0 ? 0 : pool.Gpus.Max(g => g.MemoryMb);
        _defaultGpuShareMb = config.GpuMemoryDefaultMb < largestGpuMb ? config.GpuMemoryDefaultMb : 0;
        if (config.PilotClasses.Count > 0) _pilotPlanner = new PilotPlanner(config.PilotMaxWorkers, config.PilotSlots);
        // A Slurm task may be submitted while the Slurm jobs it depends on still run (afterok), once their
        // outcome is final: a retry would get a new job id that the held job does not wait for.
        _scheduler = new Scheduler(config.ClassLimits, pool)
        {
            ChainClasses = _slurmClasses,
            CanChainOn = dep => _running.TryGetValue(dep, out var r) && r.Place is SlurmPlacement && r.N > r.Retries,
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
        NativeDoor = new EnvelopeOptions { HandlerClasses = KnownClasses.Where(c => HandlerOf(c) is not (null, null)).ToHashSet(StringComparer.Ordinal) };
        CompatDoor = NativeDoor with { CompatDoor = true };
        DataDir = Path.GetFullPath(config.DataDir);
        _logsDir = Path.Combine(DataDir, "logs");
        _runDir = Path.Combine(DataDir, "run");
        _instance = DataDir;
        Directory.CreateDirectory(_logsDir);
        Directory.CreateDirectory(_runDir);
        _local = new LocalExecutor(config, _instance, _runDir, () => _wake.Set());
    }

    public int Limit(string cls) => _scheduler.Limit(cls);

    /// <summary>Per-task bookkeeping of unfinished tasks (lost requeues, Slurm look-before-resubmit): for tests that
    /// check it does not outlive its task. Read from another thread: a count, nothing more.</summary>
    internal (int LostRequeues, int LookFirst) Bookkeeping => (_lostRequeues.Count, _slurmLookFirst.Count);

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
            _slurm = new SlurmExecutor(new SlurmExecutorOptions(_config.SlurmPollInterval, _config.SlurmCommandTimeout), r => Post(new SlurmCmd(r)), _clock);
            _slurm.PollErrorObserved = () => SlurmPollError?.Invoke();
        }
        Recover();
        Ready = true;
        _loop = new Thread(Loop) { IsBackground = true, Name = "sparky-engine" };
        _loop.Start();
    }

    // ---------- the public door: thread-safe ----------

    /// <param name="intakeKey">A dropped file's identity, stored with its tasks (<see cref="SqliteStore.InsertAsync"/>).</param>
    public async Task<SubmitOutcome> SubmitAsync(IReadOnlyList<Submission> submissions, string? intakeKey = null)
    {
        if (!Ready) return new SubmitOutcome.Unavailable("the daemon is starting");
        if (_store.Corruption is { } corrupt) return new SubmitOutcome.Unavailable(corrupt + "; nothing new is accepted until it is repaired");
        var now = _clock.GetUtcNow().ToUnixTimeMilliseconds();
        var tasks = new List<NewTask>();
        var ids = new HashSet<string>(StringComparer.Ordinal);
        // The bound is checked on the count before any task is built (an array can be large), and again by the store's
        // writer, which orders inserts: concurrent submissions that each see room here cannot overshoot it together.
        long total = submissions.Sum(s => (long)(s.Array?.Count ?? 1));
        long queuedNow = _store.Counters.Total(TaskState.Queued);
        if (queuedNow + total > _config.MaxQueued) return new SubmitOutcome.QueueFull(queuedNow, _config.MaxQueued);
        foreach (var s in submissions)
        {
            var envelopeJson = s.Envelope.ToJsonString();
            if (s.Array is { } array)
            {
                foreach (int index in array.Indices())
                {
                    TaskId id;
                    if (s.Id is { } baseId)
                    {
                        if (!TaskId.TryParse($"{baseId.Value}_{index}", out id))
                            return new SubmitOutcome.Invalid($"id '{baseId}' is too long for an array: '{baseId}_{index}' must be at most 128 characters");
                    }
                    else id = _ids.Next();
                    var env = new Dictionary<string, string>(s.Spec.Env) { ["SPARKY_ARRAY_INDEX"] = index.ToString() };
                    tasks.Add(new NewTask(id, s.Spec with { ArrayIndex = index, Env = env }, envelopeJson, now));
                }
            }
            else
            {
                tasks.Add(new NewTask(s.Id ?? _ids.Next(), s.Spec, envelopeJson, now));
            }
        }
        foreach (var t in tasks)
        {
            if (!ids.Add(t.Id.Value)) return new SubmitOutcome.Conflict($"id '{t.Id}' appears twice in the request");
        }
        foreach (var s in submissions)
        {
            if (WhyNeverFits(s.Spec) is { } why) return new SubmitOutcome.Invalid($"this task can never run here: it {why}");
            if (WhyTooBigToExec(s.Spec) is { } big) return new SubmitOutcome.Invalid(big);
            if (WhyTemplateRefuses(s.Spec) is { } refused) return new SubmitOutcome.Invalid(refused);
        }
        // A dependency must exist before its dependant: earlier in this request, or already stored.
        // That alone rules out a task depending on itself and any cycle.
        var earlier = new HashSet<string>(StringComparer.Ordinal);
        foreach (var t in tasks)
        {
            foreach (var dep in t.Spec.After)
            {
                if (dep == t.Id.Value) return new SubmitOutcome.Invalid($"task '{t.Id}' depends on itself");
                if (earlier.Contains(dep)) continue;
                if (ids.Contains(dep)) return new SubmitOutcome.Invalid($"task '{t.Id}' depends on '{dep}', which comes later in the same request: list dependencies first");
                if (_store.StateOf(TaskId.Parse(dep)) is null) return new SubmitOutcome.Invalid($"unknown dependency '{dep}'");
            }
            earlier.Add(t.Id.Value);
        }

        int sentAgain = 0;
        var result = await _store.InsertAsync(tasks, onCommitted: existing =>
        {
            // On the writer thread, in commit order: a dependency always reaches the loop before its
            // dependant. Published before the loop sees the tasks, so task.queued precedes task.started.
            // A task sent again with the same envelope is stored already: nothing new to queue.
            sentAgain = existing.Count;
            var added = existing.Count == 0 ? tasks : tasks.Where(t => !existing.Contains(t.Id.Value)).ToList();
            foreach (var t in added)
                _events.Publish(Event(SparkyEvent.TaskQueued, t.Id, t.Spec.Class, new JsonObject { ["name"] = t.Spec.Name }));
            if (added.Count > 0) Post(new AddedCmd(added.Select(t => (t.Id, t.Spec, t.SubmittedAt, 0)).ToList()));
        }, intakeKey, _config.MaxQueued).ConfigureAwait(false);
        switch (result.Status)
        {
            case WriteStatus.Conflict: return new SubmitOutcome.Conflict(result.Detail!);
            case WriteStatus.Unavailable: return new SubmitOutcome.Unavailable(result.Detail!);
            // Another submission took the room first: the bound is held where inserts are ordered.
            case WriteStatus.QueueFull: return new SubmitOutcome.QueueFull(result.Queued, _config.MaxQueued);
        }
        return new SubmitOutcome.Accepted(tasks.Select(t => t.Id).ToList(), SentAgain: sentAgain);
    }

    public Task<CommandOutcome> CancelAsync(TaskId id)
    {
        var reply = new TaskCompletionSource<CommandOutcome>(TaskCreationOptions.RunContinuationsAsynchronously);
        Post(new CancelCmd(id, reply));
        return reply.Task;
    }

    /// <summary>Replays a finished task: same id, same spec, a new round of attempts.</summary>
    public async Task<CommandOutcome> RetryAsync(TaskId id)
    {
        var state = _store.StateOf(id);
        if (state is null) return CommandOutcome.NotFound;
        if (!state.Value.IsTerminal()) return CommandOutcome.NotFinished;
        var (spec, attempts, _) = _store.SpecOf(id)!.Value;
        var result = await _store.RequeueAsync(id, spec.Class, state.Value, onCommitted: () =>
        {
            _events.Publish(Event(SparkyEvent.TaskQueued, id, spec.Class, new JsonObject { ["replay"] = true }));
            // Its dependencies already succeeded once; a replay doesn't wait on them again.
            Post(new AddedCmd([(id, spec with { After = [] }, _clock.GetUtcNow().ToUnixTimeMilliseconds(), attempts)]));
        }).ConfigureAwait(false);
        if (result.Status == WriteStatus.Conflict) return CommandOutcome.NotFinished;
        if (result.Status != WriteStatus.Ok) return CommandOutcome.Unavailable;
        return CommandOutcome.Done;
    }

    /// <summary>
    /// <c>logs/&lt;shard&gt;/&lt;id&gt;.&lt;attempt&gt;.out|err</c>: a shard (two hex digits of a hash of the id) keeps
    /// directories small, and no directory is made per task, so a task costs two new inodes, not three.
    /// </summary>
    public string LogPath(TaskId id, int attempt, bool stderr) =>
        Path.Combine(LogShard(id), $"{id.Value}.{attempt}.{(stderr ? "err" : "out")}");

    private string LogShard(TaskId id)
    {
        uint h = 2166136261;
        foreach (char c in id.Value) h = (h ^ c) * 16777619;
        return Path.Combine(_logsDir, (h & 0xff).ToString("x2"));
    }

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
            Guard(() => CheckWorkers(now));
            Guard(() => FeedPressure(now));
            Guard(() => StartWhatFits(now));
            Guard(() => ManagePilots(now));
            Guard(_local.Sweep);

            if (reader.TryPeek(out _)) continue;
            // A slow poll while children run is only a safety net: SIGCHLD wakes us.
            var wait = NextWake(now) ?? Timeout.InfiniteTimeSpan;
            if (_local.RunningCount > 0 && (wait == Timeout.InfiniteTimeSpan || wait > TimeSpan.FromMilliseconds(500))) wait = TimeSpan.FromMilliseconds(500);
            _wake.WaitOne(wait);
        }
    }

    /// <summary>One failure (a full disk, an unreadable file, a bug) is logged; the loop that runs every task goes on.</summary>
    private static void Guard(Action action)
    {
        try { action(); }
        catch (Exception e)
        {
            Console.Error.WriteLine($"sparky: engine: {e.GetType().Name}: {e.Message}");
        }
    }

    private TimeSpan? NextWake(DateTimeOffset now)
    {
        DateTimeOffset? next = _scheduler.NextDue();
        foreach (var r in _running.Values)
        {
            if (r.Deadline is { } d && r.Stop == StopReason.None && (next is null || d < next)) next = d;
            if (r.KillAt is { } k && (next is null || k < next)) next = k;
            if (r.Place is LocalPlacement { Reattached: true } && (next is null || now.AddMilliseconds(500) < next)) next = now.AddMilliseconds(500);
            if (r.Place is WorkerPlacement { AdoptBy: { } a } && (next is null || a < next)) next = a;
        }
        if (NextWorkerWake() is { } w && (next is null || w < next)) next = w;
        // An ended attempt's cgroup is removed once its killed leftovers have exited: look again shortly, even when idle.
        if (_local.HasPending && (next is null || now.AddMilliseconds(100) < next)) next = now.AddMilliseconds(100);
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
                    if (attempts > 0) _attemptsSoFar[id] = attempts; // a replay numbers its attempts on
                    _recentlyFinished.Remove(id); // a replay is no longer finished
                    Add(id, spec.Class, spec.After.Count == 0 ? [] : spec.After.Select(TaskId.Parse).ToArray(), spec.Asks, now);
                }
                break;
            case ExitedCmd exited:
                if (_running.TryGetValue(exited.Id, out var r) && r.N == exited.Attempt) Ended(r, exited.Exit, exited.Reason, now);
                break;
            case SlurmCmd slurm:
                Guard(() => { if (!OnPilotReport(slurm.Report, now)) OnSlurm(slurm.Report, now); });
                break;
            case WorkerMsgCmd worker:
                OnWorkerMessage(worker, now);
                break;
            case CancelCmd cancel:
                try { Cancel(cancel.Id, cancel.Reply, now); }
                catch { cancel.Reply.TrySetResult(CommandOutcome.Unavailable); throw; }
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
            if (d is Decision.Fail fail) Finished(fail.Id, TaskState.Queued, TaskState.Failed, fail.Reason, now);
            else if (d is Decision.FailRunning stop && _running.TryGetValue(stop.Id, out var r) && AttemptEnd.TryStop(ref r.Stop, StopReason.DependencyFailed))
            {
                // Its Slurm job waits on a dependency that will never succeed: take it away; it ends as dependency_failed.
                if (r.Place is SlurmPlacement) _slurm?.Cancel(stop.Id.Value);
                else Signal(r, Signals.Kill);
            }
        }
    }

    /// <summary>A task that is not running (queued, waiting, or between retries) reaches a terminal state.</summary>
    private Task<WriteResult> Finished(TaskId id, TaskState from, TaskState to, string reason, DateTimeOffset now)
    {
        var spec = _known.TryGetValue(id, out var k) ? k.Spec : _store.SpecOf(id)?.Spec;
        var cls = spec?.Class ?? Classes.CpuShort;
        var write = _store.FinishAsync(id, cls, from, to, reason, now.ToUnixTimeMilliseconds(), spec?.DoneFile == true);
        ReleaseJobIdWaiterOnceStored(write, id, null);
        Remember(id, to);
        TaskCompletedObserved?.Invoke(cls, to.Name(), 0);
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
    /// A queued task's cancel is answered once it is stored, so a restart cannot run it. A running
    /// task's is answered once it is signalled; its end (cancelled) is recorded when it exits.
    /// </summary>
    private void Cancel(TaskId id, TaskCompletionSource<CommandOutcome> reply, DateTimeOffset now)
    {
        if (_running.TryGetValue(id, out var r) && r.Place is WorkerPlacement wp && (wp.AdoptBy is not null || TakeBackUndispatched(r)))
        {
            // Not on any worker now (waiting for a credit, or for its worker to come back after a restart): ends here.
            if (wp.AdoptBy is not null)
            {
                r.Place = wp with { AdoptBy = null };
                _awaitingAdoption--;
                AttemptEnd.TryStop(ref r.Stop, StopReason.Cancel);
                Ended(r, new ProcessExit(null, null), Reasons.Cancelled, now);
                reply.TrySetResult(CommandOutcome.Done);
                return;
            }
            var freed = _scheduler.Finished(id, TaskState.Cancelled);
            Finished(id, TaskState.Queued, TaskState.Cancelled, Reasons.Cancelled, now)
                .ContinueWith(t => reply.TrySetResult(t.Result.Status == WriteStatus.Ok ? CommandOutcome.Done : CommandOutcome.Unavailable),
                    TaskContinuationOptions.ExecuteSynchronously);
            Apply(freed, now);
            return;
        }
        if (r is not null)
        {
            if (AttemptEnd.TryStop(ref r.Stop, StopReason.Cancel))
            {
                if (r.Place is SlurmPlacement) _slurm?.Cancel(id.Value); // ends when Slurm reports it CANCELLED
                else
                {
                    Signal(r, Signals.Term);
                    r.KillAt = now.AddSeconds(_config.KillGraceSeconds);
                }
            }
            reply.TrySetResult(CommandOutcome.Done);
            return;
        }
        if (!_scheduler.Contains(id))
        {
            reply.TrySetResult(_store.StateOf(id) is null ? CommandOutcome.NotFound : CommandOutcome.AlreadyFinished);
            return;
        }
        _scheduler.TryCancelNotRunning(id, out var decisions);
        Finished(id, TaskState.Queued, TaskState.Cancelled, Reasons.Cancelled, now)
            .ContinueWith(t => reply.TrySetResult(t.Result.Status == WriteStatus.Ok ? CommandOutcome.Done : CommandOutcome.Unavailable),
                TaskContinuationOptions.ExecuteSynchronously);
        Apply(decisions, now);
    }

    private void CheckTimers(DateTimeOffset now)
    {
        List<Running>? reattachedGone = null;
        foreach (var r in _running.Values)
        {
            if (r.Deadline is { } d && d <= now && r.Stop == StopReason.None)
            {
                AttemptEnd.TryStop(ref r.Stop, StopReason.Timeout);
                Signal(r, Signals.Term);
                r.KillAt = now.AddSeconds(_config.KillGraceSeconds);
            }
            if (r.KillAt is { } k && k <= now)
            {
                Signal(r, Signals.Kill);
                r.KillAt = null;
            }
            if (r.Place is LocalPlacement { Reattached: true } lp && LocalExecutor.HasEnded(lp.Pid, lp.PidStart)) (reattachedGone ??= []).Add(r);
        }
        if (reattachedGone is null) return;
        foreach (var r in reattachedGone)
        {
            // Not our child: its exit status comes from the shim's exit file.
            var exit = LocalExecutor.ReadExitFile(ExitFileOf(r));
            Ended(r, exit ?? new ProcessExit(null, null), exit is null ? Reasons.Lost : null, now);
        }
    }

    /// <summary>Signals an attempt's whole process tree, here or on its worker. A Slurm job is not signalled: it is
    /// cancelled through Slurm (scancel), which reports its end.</summary>
    private void Signal(Running r, int signal)
    {
        switch (r.Place)
        {
            case WorkerPlacement:
                SignalWorkerTask(r, signal);
                break;
            case LocalPlacement lp:
                _local.Signal(r.Id, r.N, lp.Pid, signal);
                break;
            case SlurmPlacement:
                break;
        }
    }

    /// <summary>The shim's exit file of a local attempt of a re-attachable class; null for any other.</summary>
    private static string? ExitFileOf(Running r) => r.Place is LocalPlacement lp ? lp.ExitFile : null;

    private void StartWhatFits(DateTimeOffset now)
    {
        foreach (var (id, allocation) in _scheduler.TakeStartable(now))
        {
            try { StartAttempt(id, allocation, now); }
            catch (Exception e)
            {
                // Never strand a slot: whatever went wrong (a full disk, an unreadable store), the attempt
                // ends and is retried by its policy.
                var why = $"{e.GetType().Name}: {e.Message}";
                if (_running.TryGetValue(id, out var r) && r.Place is LocalPlacement { Pid: > 0 }) Ended(r, new ProcessExit(null, null), Reasons.Lost, now);
                else
                {
                    // A recovered task is not in _known: its class and retries come from the store, where it can be read.
                    var spec = _known.TryGetValue(id, out var k) ? k.Spec : StoredSpecOrNull(id);
                    FailStart(r ?? new Running
                    {
                        Id = id, Class = spec?.Class ?? Classes.CpuShort, N = _attemptsSoFar.GetValueOrDefault(id, 1),
                        Retries = spec?.Retries ?? 0, StartedAt = now.ToUnixTimeMilliseconds(), Place = NotStarted,
                    }, why, now);
                }
            }
        }
    }

    private TaskSpec? StoredSpecOrNull(TaskId id)
    {
        try { return _store.SpecOf(id)?.Spec; }
        catch (Exception e) when (e is Microsoft.Data.Sqlite.SqliteException or InvalidOperationException or IOException) { return null; }
    }

    private void StartAttempt(TaskId id, Allocation allocation, DateTimeOffset now)
    {
        TaskSpec spec;
        int attempts;
        long submittedAt;
        if (_known.TryGetValue(id, out var known))
        {
            // Submitted to this daemon: no read needed.
            (spec, attempts, submittedAt) = (known.Spec, _attemptsSoFar.GetValueOrDefault(id), known.SubmittedAt);
        }
        else if (_store.SpecOf(id) is { } found)
        {
            (spec, attempts, submittedAt) = found;
            // The store may not have the previous start committed yet.
            attempts = Math.Max(attempts, _attemptsSoFar.GetValueOrDefault(id));
        }
        else
        {
            _scheduler.Finished(id, TaskState.Failed);
            return;
        }
        int n = attempts + 1;
        _attemptsSoFar[id] = n;
        if (n == 1) QueueWaitObserved?.Invoke(spec.Class, Math.Max(0, now.ToUnixTimeMilliseconds() - submittedAt) / 1000.0);
        // A failure here (a full disk) reaches StartWhatFits, which fails the attempt.
        var dir = LogShard(id);
        if (!_shardsMade.Contains(dir))
        {
            Directory.CreateDirectory(dir);
            _shardsMade.Add(dir);
        }
        IReadOnlyList<string>? handler = null;
        if (spec.HandlerPayload is not null)
        {
            // A payload that names work: its class's handler runs it, or it ends here with the reason and what to set.
            var (handlerArgv, template) = HandlerOf(spec.Class);
            if (handlerArgv is null && template is null)
            {
                FailStart(new Running
                {
                    Id = id, Class = spec.Class, N = n, Retries = 0, StartedAt = now.ToUnixTimeMilliseconds(),
                    StdoutPath = LogPath(id, n, stderr: false), DoneFile = spec.DoneFile, Place = NotStarted,
                }, Handlers.NoHandlerMessage(spec.Class), now, Reasons.NoHandler, exitCode: null);
                return;
            }
            handler = handlerArgv;
        }
        if (IsWorkerClass(spec.Class))
        {
            StartOnWorker(id, spec, n, now);
            return;
        }
        if (_slurmClasses.Contains(spec.Class))
        {
            StartOnSlurm(id, spec, n, now);
            return;
        }
        IReadOnlyList<string> argv = handler ?? spec.CommandLine;
        string? payloadFile = spec.HandlerPayload is { } payload ? WritePayloadFile(id, n, payload) : null;
        var stdout = LogPath(id, n, stderr: false);
        var stderr = LogPath(id, n, stderr: true);
        var run = new Running
        {
            Id = id, Class = spec.Class, N = n, Retries = spec.Retries, StartedAt = now.ToUnixTimeMilliseconds(), Place = NotStarted,
            StdoutPath = stdout, DoneFile = spec.DoneFile, Outputs = spec.Outputs, Cwd = spec.Cwd,
            PayloadFile = payloadFile, MemoryMb = spec.MemoryMb,
            Deadline = DeadlineAfter(now, spec.TimeoutSeconds),
        };
        _running[id] = run;
        var (launch, exitFile) = _local.Start(id, n, spec, allocation, argv, payloadFile, stdout, stderr, exit => Post(new ExitedCmd(id, n, exit, null)));
        if (launch is LaunchResult.Started started)
        {
            run.Place = new LocalPlacement(started.Pid, started.StartTime, exitFile, Spawned: true, Reattached: false);
            _ = _store.AttemptStartedAsync(id, spec.Class, TaskState.Queued,
                new AttemptRecord(n, run.StartedAt, null, null, null, started.Pid, started.StartTime, Environment.MachineName, null, null, exitFile));
            _events.Publish(Event(SparkyEvent.TaskStarted, id, spec.Class, new JsonObject { ["attempt"] = n, ["pid"] = started.Pid }));
        }
        else
        {
            var reason = ((LaunchResult.Failed)launch).Reason;
            try { File.AppendAllText(stderr, "sparky: " + reason + "\n"); } catch (IOException) { }
            FailStart(run, reason, now);
        }
    }

    /// <summary>
    /// An attempt that could not start: recorded as started, then failed at once (exit 127, as a shell
    /// says "not found"), so the attempt history and the counters stay right and the retry policy applies.
    /// Why is written to the attempt's stderr log, where <c>sparky logs --stderr</c> shows it (a spawn failure's
    /// caller has written it there already).
    /// </summary>
    private void FailStart(Running run, string why, DateTimeOffset now, string reason = Reasons.SpawnFailed, int? exitCode = 127)
    {
        Console.Error.WriteLine($"sparky: cannot start {run.Id}: {why}");
        if (reason != Reasons.SpawnFailed)
            try { File.AppendAllText(LogPath(run.Id, run.N, stderr: true), "sparky: " + why + "\n"); } catch (IOException) { }
        _running[run.Id] = run;
        _ = _store.AttemptStartedAsync(run.Id, run.Class, TaskState.Queued,
            new AttemptRecord(run.N, run.StartedAt, null, null, null, null, null, Environment.MachineName, null, null, null));
        Ended(run, new ProcessExit(exitCode, null), reason, now);
    }

    /// <summary>An attempt ended: succeed, retry after a backoff, or fail; then release its slot.</summary>
    /// <param name="reported">What a worker's cgroups said of its attempt (a local attempt's are read here).</param>
    private void Ended(Running r, ProcessExit exit, string? reason, DateTimeOffset now, AttemptUsage reported = default)
    {
        var exitFile = ExitFileOf(r);
        var (outcome, why, ended) = AttemptEnd.Outcome(r.Stop, new AttemptExit(exit.ExitCode, exit.Signal, reason), underShim: exitFile is not null);
        exit = new ProcessExit(ended.ExitCode, ended.Signal);
        _running.Remove(r.Id);
        if (r.PayloadFile is { } payloadFile) TryDelete(payloadFile);
        var worker = r.Place is WorkerPlacement wp ? _workers.Get(wp.Session) : null;
        if (worker is not null) _workers.Release(worker, r.Id);
        var endedAt = now.ToUnixTimeMilliseconds();
        // Nothing an attempt started outlives it: children that ignored SIGTERM, left its group or session, or were
        // left running behind a clean exit, so none can overlap a retry. A pid read back from the store is not
        // signalled (it may be another process's by now); its processes are found by cgroup and marker.
        var usage = r.Place switch
        {
            SlurmPlacement => default,
            WorkerPlacement => reported,
            LocalPlacement lp => _local.Release(r.Id, r.N, lp.Spawned || lp.Reattached ? lp.Pid : 0, failed: outcome != TaskState.Succeeded),
            _ => throw new UnreachableException(),
        };
        int lostBefore = _lostRequeues.GetValueOrDefault(r.Id);
        var end = AttemptEnd.Settle(outcome, why, r.Stop, usage.OutOfMemory, r.N, r.Retries, lostBefore, _retry, _random.NextDouble(), now);
        reason = end.Reason;
        // The kernel's OOM killer ended it (over its --mem, or the host out of memory): say so where its log is read.
        if (usage.OutOfMemory && reason == Reasons.OutOfMemory) OutOfMemoryNote(r, usage);
        var local = r.Place as LocalPlacement;
        var attempt = new AttemptRecord(r.N, r.StartedAt, endedAt, exit.ExitCode, exit.Signal, local?.Pid, local?.PidStart, null,
            outcome == TaskState.Succeeded ? "succeeded" : outcome == TaskState.Cancelled ? "cancelled" : "failed", reason, exitFile,
            CpuMs: usage.CpuMicros / 1000, MemPeakBytes: usage.MemoryPeakBytes);
        double seconds = (endedAt - r.StartedAt) / 1000.0;
        Observe(r.Class, seconds, overload: reason is Reasons.Timeout or Reasons.Signal or Reasons.NonZeroExit, now);

        if (end.LostRequeues != lostBefore) _lostRequeues[r.Id] = end.LostRequeues;
        if (end.RetryAt is { } due)
        {
            _scheduler.RetryAt(r.Id, due);
            LocalExecutor.DeleteExitFileOnceStored(_store.AttemptEndedAsync(r.Id, r.Class, attempt, TaskState.Queued, reason, null), exitFile);
            ReleaseJobIdWaiter(r.Id, (r.Place as SlurmPlacement)?.JobId);
            _events.Publish(Event(SparkyEvent.TaskRetrying, r.Id, r.Class, new JsonObject
            {
                ["attempt"] = r.N, ["exit_code"] = exit.ExitCode, ["signal"] = exit.Signal, ["reason"] = reason,
                ["retry_in_ms"] = (long)(due - now).TotalMilliseconds,
            }));
            return;
        }

        // As the replaced runner: a result only for a run that succeeded.
        var result = outcome != TaskState.Succeeded ? ResultRead.None
            : r.Place is WorkerPlacement done ? new ResultRead(done.Result, done.ResultError) : ResultLine.Read(r.StdoutPath);
        if (result.Error is { } resultError) Console.Error.WriteLine($"sparky: task {r.Id}: no result: {resultError}");
        // Outputs are recorded at the task's end whatever its outcome (the issue's rule): a failed training run's
        // checkpoints are worth their checksums too. (The replaced runner recorded them for a success only.)
        var (artifacts, artifactsDir) = r.Outputs is not { Count: > 0 } outputs ? (null, null) : ArtifactsAtEnd(r, outputs, worker?.Info);
        var endWrite = _store.AttemptEndedAsync(r.Id, r.Class, attempt, outcome, reason, result.Json, r.DoneFile, result.Error,
            artifacts?.ToJsonString(), artifactsDir);
        LocalExecutor.DeleteExitFileOnceStored(endWrite, exitFile);
        if (artifactsDir is not null)
        {
            // Hashed once the end is committed, so the recorded artifacts never land before the end they belong to.
            var job = new ArtifactJob(r.Id, r.N, r.Class, artifactsDir, r.Outputs!, r.DoneFile);
            endWrite.ContinueWith(t => { if (t.Result.Status == WriteStatus.Ok) ArtifactsOwed?.Invoke(job); }, TaskContinuationOptions.ExecuteSynchronously);
        }
        ReleaseJobIdWaiterOnceStored(endWrite, r.Id, (r.Place as SlurmPlacement)?.JobId);
        Remember(r.Id, outcome);
        TaskCompletedObserved?.Invoke(r.Class, outcome.Name(), seconds);
        var body = new JsonObject
        {
            ["state"] = outcome.Name(), ["exit_code"] = exit.ExitCode, ["signal"] = exit.Signal, ["reason"] = reason,
            ["attempt"] = r.N, ["duration_ms"] = endedAt - r.StartedAt,
        };
        if (result.Error is not null) body["result_error"] = result.Error;
        // The done file waits for the artifacts: it is announced by task.artifacts instead.
        if (artifactsDir is not null) body["artifacts"] = ArtifactsJson.Pending;
        else if (r.DoneFile) body["done_file"] = true;
        if (usage.CpuMicros is { } cpu) body["cpu_ms"] = cpu / 1000;
        if (usage.MemoryPeakBytes is { } peak) body["mem_peak_bytes"] = peak;
        PublishOnceStored(endWrite, Event(SparkyEvent.TaskFinished, r.Id, r.Class, body));
        Apply(_scheduler.Finished(r.Id, outcome), now);
    }

    /// <summary>Why an attempt the OOM killer ended failed, in its stderr log (where <c>sparky logs --stderr</c> shows it) and the daemon's.</summary>
    private void OutOfMemoryNote(Running r, AttemptUsage usage)
    {
        long askedMb = r.MemoryMb;
        var why = "killed by the kernel's OOM killer: " + (askedMb > 0 ? $"it went over the {askedMb} MiB it asked for" : "the host ran out of memory")
            + (usage.MemoryPeakBytes is { } peak ? $" (peak {peak >> 20} MiB)" : "");
        Console.Error.WriteLine($"sparky: task {r.Id} attempt {r.N}: {why}");
        if (r.Place is WorkerPlacement) return; // the worker wrote it in the attempt's log
        try { File.AppendAllText(LogPath(r.Id, r.N, stderr: true), "sparky: " + why + "\n"); } catch (IOException) { }
    }

    /// <summary>
    /// A succeeded attempt's declared artifacts, as its end records them: pending, with the directory a relative path
    /// starts from (the task's working directory, else the daemon's, as the process or the Slurm job had it), or
    /// skipped where the daemon cannot see the files. Slurm jobs and pilot workers write on the shared file system
    /// their logs are on; a worker connected from another host writes on its own.
    /// </summary>
    private static (JsonObject? Artifacts, string? BaseDir) ArtifactsAtEnd(Running r, IReadOnlyList<DeclaredOutput> outputs, WorkerInfo? worker)
    {
        if (r.Place is WorkerPlacement)
        {
            if (worker is null)
                return (ArtifactsJson.SkippedOf(outputs, "its worker is gone; where it ran is not known"), null);
            bool sameFiles = worker.Pilot is not null || string.Equals(worker.Host, Environment.MachineName, StringComparison.OrdinalIgnoreCase);
            if (!sameFiles)
                return (ArtifactsJson.SkippedOf(outputs,
                    $"it ran on worker '{worker.Name}' on host {worker.Host}, whose files the daemon cannot see"), null);
            // A worker's relative working directory is from its own, which the daemon does not know.
            if (r.Cwd is null || !Path.IsPathRooted(r.Cwd))
            {
                if (outputs.Any(o => !Path.IsPathRooted(o.Path)))
                    return (ArtifactsJson.SkippedOf(outputs,
                        $"it ran on worker '{worker.Name}' without an absolute working directory, so its relative paths are not known here"), null);
            }
        }
        string dir;
        try { dir = Path.GetFullPath(r.Cwd ?? Environment.CurrentDirectory); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException)
        {
            return (ArtifactsJson.SkippedOf(outputs, $"its working directory is not known: {e.Message}"), null);
        }
        return (ArtifactsJson.PendingOf(outputs), dir);
    }

    /// <summary>An attempt ended: its run time and whether it failed feed its class's limiter.</summary>
    private void Observe(string cls, double seconds, bool overload, DateTimeOffset now)
    {
        if (IsWorkerClass(cls)) return; // its workers' slots are its limit
        if (!_limiters.TryGetValue(cls, out var limiter)) return;
        // Still counted as running in the scheduler until the caller releases it: that is "itself included".
        int limit = limiter.OnSample(new LimiterSample(TimeSpan.FromSeconds(seconds), TimeSpan.Zero, overload,
            _scheduler.Running(cls), _scheduler.ReadyCount(cls), now));
        _scheduler.SetLimit(cls, limit);
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
        _attemptsSoFar.Remove(id);
        // Ended however (a cancel during a backoff or before a start included): its requeue and look-first marks go too.
        _lostRequeues.Remove(id);
        _slurmLookFirst.Remove(id);
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

    // ---------- recovery ----------

    /// <summary>
    /// Rebuilds the scheduler from the store. A task recorded as running is re-attached if its process
    /// still lives and its exit code will be recorded by the shim; otherwise its process group is killed
    /// (so it never runs twice) and the attempt counts as lost, retried under the task's policy. A task
    /// the dead daemon had started but not yet recorded is found by the marker in its environment.
    /// </summary>
    private void Recover()
    {
        var now = _clock.GetUtcNow();
        long unfinished = _store.Counters.Total(TaskState.Queued) + _store.Counters.Total(TaskState.Running);
        if (unfinished == 0)
        {
            _local.EndLeftovers(new HashSet<(string, int)>());
            RemoveStalePayloadFiles();
            return;
        }
        _scheduler.EnsureCapacity((int)Math.Min(unfinished, int.MaxValue / 2));
        var live = ProcessTable.FindMarked("SPARKY_INSTANCE", _instance);
        var toEnd = new List<(Running, ProcessExit, string?)>();
        foreach (var t in _store.ReadUnfinished())
        {
            _seq = Math.Max(_seq, t.Seq);
            live.TryGetValue(t.Id.Value, out var proc);
            if (t.State == TaskState.Queued)
            {
                if (proc.Pid > 0) ProcessLauncher.SignalGroup(proc.Pid, Signals.Kill); // started, never recorded
                if (_slurmClasses.Contains(t.Class)) _slurmLookFirst.Add(t.Id);
                Add(t.Id, t.Class, t.After, t.Asks, now);
                continue;
            }
            var a = t.LastAttempt;
            if (IsWorkerClass(t.Class))
            {
                RecoverOnWorker(t, a, now);
                continue;
            }
            if (_slurmClasses.Contains(t.Class))
            {
                RecoverSlurm(t, a, now, toEnd);
                continue;
            }
            var run = new Running
            {
                Id = t.Id, Class = t.Class, N = a?.N ?? t.Attempts, Retries = t.Retries, StartedAt = a?.StartedAt ?? now.ToUnixTimeMilliseconds(),
                Place = new LocalPlacement(proc.Pid > 0 ? proc.Pid : a?.Pid ?? 0, proc.Pid > 0 ? proc.StartTime : a?.PidStart ?? 0, a?.ExitFile,
                    Spawned: false, Reattached: false),
                StdoutPath = LogPath(t.Id, a?.N ?? t.Attempts, false),
            };
            var spec = _store.SpecOf(t.Id)?.Spec;
            run.DoneFile = spec?.DoneFile == true;
            run.Outputs = spec?.Outputs;
            run.Cwd = spec?.Cwd;
            if (spec?.HandlerPayload is not null) run.PayloadFile = PayloadPath(t.Id, run.N);
            _attemptsSoFar[t.Id] = run.N;
            run.Deadline = DeadlineAfter(DateTimeOffset.FromUnixTimeMilliseconds(run.StartedAt), spec?.TimeoutSeconds);
            _scheduler.AddRunning(t.Id, t.Class, t.Seq, LocalRequest(t.Class, t.Asks), proc.Gpus);
            _running[t.Id] = run;
            bool alive = proc.Pid > 0 && proc.Attempt == run.N;
            if (alive && a?.ExitFile is not null)
            {
                run.Place = ((LocalPlacement)run.Place) with { Reattached = true };
                continue;
            }
            // Any other live process of this task (no shim, or an attempt the store never recorded) must
            // not run beside the retry.
            if (proc.Pid > 0) ProcessLauncher.SignalGroup(proc.Pid, Signals.Kill);
            var exit = alive ? null : LocalExecutor.ReadExitFile(a?.ExitFile);
            toEnd.Add((run, exit ?? new ProcessExit(null, null), exit is null ? Reasons.Lost : null));
        }
        // Before any retry or new start: every process the dead daemon left (a task's children in sessions of their
        // own, an attempt it never recorded, a plan's gate check) is ended, except the re-attached attempts' trees.
        _local.EndLeftovers(_running.Values.Where(r => r.Place is LocalPlacement { Reattached: true }).Select(r => (r.Id.Value, r.N)).ToHashSet());
        RemoveStalePayloadFiles();
        foreach (var (run, exit, reason) in toEnd) Ended(run, exit, reason, now);
    }

    /// <summary>What a task of <paramref name="cls"/> reserves on this machine.</summary>
    private ResourceRequest LocalRequest(string cls, ResourceRequest asks) =>
        ResourceRequest.Local(cls, asks, slurmBound: _slurmClasses.Contains(cls) || IsWorkerClass(cls), _defaultGpuShareMb);

    /// <summary>Argv and environment past what execve takes (E2BIG), counted as the launch will pass them: the
    /// daemon's environment, the task's, and what the engine adds.</summary>
    private string? WhyTooBigToExec(TaskSpec spec)
    {
        // The daemon's environment is the same for every task: its size is counted once, less what the task overrides.
        long bytes = Sparky.Execution.Processes.ArgLimits.Bytes(spec.CommandLine) + BaseEnvBytes + Sparky.Execution.Processes.ArgLimits.Headroom;
        foreach (var (k, v) in spec.Env)
        {
            bytes += Sparky.Execution.Processes.ArgLimits.Bytes([k + "=" + v]);
            if (_local.BaseEnvironment.TryGetValue(k, out var b)) bytes -= Sparky.Execution.Processes.ArgLimits.Bytes([k + "=" + b]);
        }
        long max = Sparky.Execution.Processes.ArgLimits.ArgMax;
        return bytes > max
            ? $"the command and environment come to {bytes} bytes with what Sparky adds; the kernel starts a process with at most {max} (ARG_MAX)"
            : null;
    }

    private long BaseEnvBytes => _baseEnvBytes ??= Sparky.Execution.Processes.ArgLimits.Bytes(_local.BaseEnvironment.Select(kv => kv.Key + "=" + kv.Value));
    private long? _baseEnvBytes;

    /// <summary>Why a task could never run here, or null. Safe from any thread: it reads only the pool's totals.</summary>
    public string? WhyNeverFits(TaskSpec spec)
    {
        if (_config.PilotClasses.Contains(spec.Class) && _slurm is null)
            return $"runs on pilot workers (class {spec.Class}), which Sparky starts with sbatch, and sbatch was not found on this machine";
        if (IsWorkerClass(spec.Class)) return null; // waits for a worker
        if (_slurmClasses.Contains(spec.Class) && _slurm is null)
            return $"runs on Slurm (class {spec.Class}) and sbatch was not found on this machine";
        var local = LocalRequest(spec.Class, spec.Asks);
        if (local.WantsGpu && !_config.EnableGpu)
            return $"asks for a GPU, and GPUs are not handed out here (enable_gpu = '{_config["enable_gpu"]}' from {_config.Settings["enable_gpu"].Origin})";
        return _scheduler.WhyNeverFits(local);
    }

    /// <summary>When a timeout fires. Submit refuses one past a year, but a task stored before that check may hold any
    /// double: past what a date can hold it never fires rather than throwing on every start.</summary>
    private static DateTimeOffset? DeadlineAfter(DateTimeOffset start, double? seconds)
    {
        if (seconds is not { } s || double.IsNaN(s)) return null;
        var room = (DateTimeOffset.MaxValue - start).TotalSeconds;
        return s >= room ? DateTimeOffset.MaxValue : start.AddSeconds(Math.Max(0, s));
    }

    private static void TryDelete(string path)
    {
        try { File.Delete(path); } catch (IOException) { }
    }

    private SparkyEvent Event(string topic, TaskId id, string cls, JsonObject extra)
    {
        extra["id"] = id.Value;
        extra["class"] = cls;
        return new SparkyEvent(topic, _clock.GetUtcNow().ToUnixTimeMilliseconds(), extra);
    }

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
