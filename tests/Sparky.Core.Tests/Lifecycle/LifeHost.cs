using Sparky.Core.Lifecycle;
using Sparky.Core.Scheduling;
using Sparky.Core.Tasks;

namespace Sparky.Core.Tests.Lifecycle;

/// <summary>
/// The engine's part around <see cref="TaskLife"/>, in memory, for scenario tests: the real scheduler, a clock the test
/// moves, a "store" of what was written (the only thing a restart keeps), and processes that do what the test says.
/// Effects are carried out as the engine does, in order; what was signalled is kept for the test to look at.
/// </summary>
internal sealed class LifeHost
{
    public static readonly DateTimeOffset T0 = new(2026, 12, 7, 12, 0, 0, TimeSpan.Zero);
    public static readonly RetryPolicy Policy = new(TimeSpan.FromSeconds(1), TimeSpan.FromMinutes(1));
    public static readonly TimeSpan KillGrace = TimeSpan.FromSeconds(5);

    /// <summary>One task as the store keeps it: its spec's part that matters here, its state, its attempts.</summary>
    public sealed class Stored
    {
        public required int Retries;
        public double? Timeout;
        public bool OnWorker;
        public TaskId[] After = [];
        public TaskState State = TaskState.Queued;
        public string? Reason;
        public readonly List<StoredAttempt> Attempts = [];
    }

    /// <summary>An attempt as stored: its reason is its stop while it runs (<see cref="Effect.RecordStop"/>), its end's after.</summary>
    public sealed record StoredAttempt(int N, DateTimeOffset StartedAt)
    {
        public bool Ended;
        public TaskState? Outcome;
        public string? Reason;
    }

    private readonly Scheduler _scheduler;
    private readonly Dictionary<TaskId, TaskLife> _lives = new();
    private readonly List<Effect> _outbox = new();
    private long _seq;

    public DateTimeOffset Now = T0;
    /// <summary>The backoff's random number: fixed, so a retry's time is known (0.5 s, 1 s … scaled by 0.75).</summary>
    public double Jitter = 0.5;
    public readonly Dictionary<TaskId, Stored> Store;
    /// <summary>Signals sent, per task, in order ("TERM", "KILL").</summary>
    public readonly Dictionary<TaskId, List<string>> Signals = new();
    /// <summary>Starts, in order: task and attempt.</summary>
    public readonly List<(TaskId Id, int Attempt)> Starts = new();
    /// <summary>Attempts whose process runs now (a restart of the daemon leaves them running, as the shim does).</summary>
    public readonly HashSet<(TaskId, int)> Processes;
    /// <summary>Whether an attempt's executor ends leftovers after a SIGTERM's grace (local, workers) or not (Slurm).</summary>
    public bool KillAfterGrace = true;

    /// <param name="chain">Tasks start while their dependencies run their last attempt, as Slurm jobs held by afterok.</param>
    public LifeHost(bool chain = false) : this(new Dictionary<TaskId, Stored>(), new HashSet<(TaskId, int)>(), chain) { }

    private LifeHost(Dictionary<TaskId, Stored> store, HashSet<(TaskId, int)> processes, bool chain)
    {
        Store = store;
        Processes = processes;
        _chain = chain;
        _scheduler = new Scheduler(new Dictionary<string, int> { ["cpu"] = 8 })
        {
            ChainClasses = chain ? new HashSet<string> { "cpu" } : new HashSet<string>(),
            CanChainOn = dep => _lives.TryGetValue(dep, out var d) && d.Phase == LifePhase.Running && d.Attempt > d.Retries,
        };
    }

    private readonly bool _chain;

    public TaskLife Life(string id) => _lives[TaskId.Parse(id)];
    public Stored Task(string id) => Store[TaskId.Parse(id)];
    public IReadOnlyList<string> SignalsOf(string id) => Signals.GetValueOrDefault(TaskId.Parse(id)) ?? [];
    public bool Runs(string id, int attempt) => Processes.Contains((TaskId.Parse(id), attempt));
    /// <summary>How each of its attempts ended, as stored: "failed/timeout", "succeeded/" …; "running" for one that runs.</summary>
    public IReadOnlyList<string> AttemptsOf(string id) =>
        Task(id).Attempts.Select(a => a.Ended ? $"{a.Outcome!.Value.Name()}/{a.Reason}" : "running").ToList();

    public void Submit(string id, int retries = 0, double? timeout = null, bool onWorker = false, params string[] after)
    {
        var tid = TaskId.Parse(id);
        Store[tid] = new Stored { Retries = retries, Timeout = timeout, OnWorker = onWorker, After = after.Select(TaskId.Parse).ToArray() };
        Add(tid);
        Pass(TimeSpan.Zero);
    }

    private void Add(TaskId id)
    {
        var t = Store[id];
        var active = new List<TaskId>();
        bool depFailed = false;
        foreach (var dep in t.After)
        {
            if (_scheduler.Contains(dep)) active.Add(dep);
            else if (Store[dep].State != TaskState.Succeeded) depFailed = true;
        }
        _lives[id] = new TaskLife(id, t.Retries, t.Attempts.Count);
        Apply(_scheduler.Add(id, "cpu", ++_seq, active, depFailed));
    }

    /// <summary>Time passes: timers fire, backoffs end, and what may start starts.</summary>
    public void Pass(TimeSpan span)
    {
        Now += span;
        foreach (var life in _lives.Values.ToList()) Handle(life, LifeEvent.Tick);
        foreach (var start in _scheduler.TakeStartable(Now)) Handle(_lives[start.Id], new LifeEvent.Begin(KillAfterGrace));
    }

    /// <summary>The attempt's process ends with <paramref name="code"/> or by <paramref name="signal"/>.</summary>
    public void Exit(string id, int? code = 0, int? signal = null, string? reason = null)
    {
        var life = Life(id);
        Processes.Remove((life.Id, life.Attempt));
        Handle(life, new LifeEvent.Exited(new AttemptExit(code, signal, reason)));
        Pass(TimeSpan.Zero);
    }

    /// <summary>Its worker is declared lost: its attempt ends with no exit, as worker_lost.</summary>
    public void LoseWorker(string id) => Exit(id, code: null, reason: Reasons.WorkerLost);

    public void Cancel(string id, Withdrawn withdrawn = Withdrawn.No)
    {
        Handle(Life(id), new LifeEvent.Cancel(withdrawn));
        Pass(TimeSpan.Zero);
    }

    public void Adopted(string id)
    {
        Handle(Life(id), LifeEvent.Adopted);
        Pass(TimeSpan.Zero);
    }

    /// <summary>
    /// The daemon dies and starts again: only the store and the processes are left. Queued tasks are added again with
    /// their attempts so far; running ones are followed again (on a worker: until it comes back, for two timeouts),
    /// with the stop the store kept.
    /// </summary>
    public LifeHost Restart(TimeSpan workerTimeout = default)
    {
        var next = new LifeHost(Store, Processes, _chain) { Now = Now, Jitter = Jitter, KillAfterGrace = KillAfterGrace };
        foreach (var (id, t) in Store)
        {
            if (t.State.IsTerminal()) continue;
            if (t.State == TaskState.Queued) { next.Add(id); continue; }
            var a = t.Attempts[^1];
            var life = next._lives[id] = TaskLife.Recovered(id, t.Retries, a.N, KillAfterGrace, StopReasons.Of(a.Reason));
            next._scheduler.AddRunning(id, "cpu", ++next._seq, runningDeps: t.After.Where(next._scheduler.Contains).ToList());
            next.Handle(life, new LifeEvent.UnderWay(t.Timeout, a.StartedAt));
            if (t.OnWorker) next.Handle(life, new LifeEvent.AwaitingWorker(Now + 2 * workerTimeout));
            // A local attempt whose process is gone ended while no daemon watched: its shim's exit file says how.
            else if (!Processes.Contains((id, a.N))) next.Handle(life, new LifeEvent.Exited(new AttemptExit(null, null)));
        }
        next.Pass(TimeSpan.Zero);
        return next;
    }

    private void Handle(TaskLife life, LifeEvent e)
    {
        life.Handle(e, new LifeContext(Now, Jitter, Policy, KillGrace), _outbox);
        var effects = _outbox.ToList();
        _outbox.Clear();
        foreach (var effect in effects) Carry(life, effect);
    }

    private void Carry(TaskLife life, Effect effect)
    {
        var t = Store[life.Id];
        switch (effect)
        {
            case Effect.Start start:
                t.State = TaskState.Running;
                t.Attempts.Add(new StoredAttempt(start.Attempt, Now));
                Starts.Add((life.Id, start.Attempt));
                Processes.Add((life.Id, start.Attempt));
                Handle(life, new LifeEvent.UnderWay(t.Timeout));
                break;
            case Effect.RecordStop stop:
                t.Attempts.Single(a => a.N == stop.Attempt).Reason = StopReasons.Name(stop.Why);
                break;
            case Effect.Signal signal:
                if (!Signals.TryGetValue(life.Id, out var sent)) Signals[life.Id] = sent = [];
                sent.Add(signal.Which == StopSignal.Term ? "TERM" : "KILL");
                // Nothing refuses a SIGKILL: a process of the attempt that runs here dies at once.
                if (signal.Which == StopSignal.Kill && Processes.Remove((life.Id, life.Attempt)))
                    Handle(life, new LifeEvent.Exited(new AttemptExit(null, 9)));
                break;
            case Effect.Release:
                Handle(life, new LifeEvent.Released(OutOfMemory: false));
                break;
            case Effect.RecordEnd end:
                var attempt = t.Attempts.Single(a => a.N == end.Attempt);
                (attempt.Ended, attempt.Outcome, attempt.Reason) = (true, end.Outcome, end.Reason);
                (t.State, t.Reason) = end.RetryAt is null ? (end.Outcome, end.Reason) : (TaskState.Queued, end.Reason);
                break;
            case Effect.Requeue requeue:
                _scheduler.RetryAt(life.Id, requeue.At);
                break;
            case Effect.Finish finish:
                Apply(_scheduler.Finished(life.Id, finish.Outcome));
                break;
            case Effect.EndUnstarted ended:
                (t.State, t.Reason) = (ended.Outcome, ended.Reason);
                if (!_scheduler.TryCancelNotRunning(life.Id, out var decisions)) decisions = _scheduler.Finished(life.Id, ended.Outcome);
                Apply(decisions);
                break;
        }
    }

    private void Apply(IReadOnlyList<Decision> decisions)
    {
        foreach (var d in decisions)
        {
            if (d is Decision.Fail f) Handle(_lives[f.Id], new LifeEvent.Refused(f.Reason));
            else if (d is Decision.FailRunning r) Handle(_lives[r.Id], LifeEvent.DependencyFailed);
        }
    }
}
