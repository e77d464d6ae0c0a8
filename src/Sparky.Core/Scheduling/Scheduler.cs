using Sparky.Core.Tasks;

namespace Sparky.Core.Scheduling;

/// <summary>
/// Decides what starts. Pure: no I/O, no clock of its own (time is an argument), no threads —
/// the daemon's engine loop owns one instance and feeds it events.
/// <para>Invariants (checked by property tests): a class never runs more than its limit; a task
/// starts only when every dependency succeeded; a task that is running is never started again;
/// a failed or cancelled dependency fails its dependants with <see cref="Reasons.DependencyFailed"/>;
/// no CPU, memory or GPU is handed out beyond what the <see cref="ResourcePool"/> has.</para>
/// <para>Within a class tasks start oldest first; one whose resources are not free is passed over by
/// younger ones that fit (backfill), but only <see cref="PassOverLimit"/> times: then its class holds
/// back resource-asking starts until it fits, so a 4-GPU job is not starved by a stream of 1-GPU jobs.</para>
/// </summary>
public sealed class Scheduler
{
    private enum Phase { Waiting, Ready, Delayed, Running }

    /// <summary>
    /// How many younger tasks may start ahead of a blocked one before its class waits for it: 32 per GPU
    /// (at least 16). Holding back idles what the blocked task cannot use yet, so the limit grows with the
    /// pool: bench/packing measured 16 on 8 GPUs at 26–29% over the lower bound on makespan, 256 at 5–7%.
    /// </summary>
    public int PassOverLimit { get; }
    /// <summary>How many blocked tasks one pass looks past in a class (bounds the cost of a pass).</summary>
    private const int BackfillWindow = 64;

    private sealed class Node(TaskId id, string cls, long seq, ResourceRequest request)
    {
        public TaskId Id { get; } = id;
        public string Class { get; } = cls;
        public long Seq { get; } = seq;
        public ResourceRequest Request { get; } = request;
        public Allocation? Allocation { get; set; }
        public int PassedOver { get; set; }
        public Phase Phase { get; set; }
        public int PendingDeps { get; set; }
        public List<TaskId>? Dependants { get; set; }
        /// <summary>Dependencies not finished when it was added (for a chain start, see <see cref="ChainClasses"/>).</summary>
        public List<TaskId>? Deps { get; set; }
        public DateTimeOffset DueAt { get; set; }
    }

    private sealed class ClassQueue(int limit)
    {
        public int Limit { get; set; } = limit;
        public int Running { get; set; }
        public PriorityQueue<TaskId, long> Ready { get; } = new();
    }

    private readonly Dictionary<TaskId, Node> _nodes = new();
    private readonly Dictionary<string, ClassQueue> _classes = new(StringComparer.Ordinal);
    private readonly PriorityQueue<TaskId, DateTimeOffset> _delayed = new();
    private readonly List<(TaskId, long)> _deferred = new();
    private readonly HashSet<TaskId> _chainCandidates = new();

    public ResourcePool Pool { get; }

    /// <summary>
    /// Classes whose tasks may start while their dependencies still run, when every one of those is of a chain
    /// class too and <see cref="CanChainOn"/> says its outcome is final: Slurm then holds the job
    /// (<c>--dependency=afterok</c>) and starts it the moment the dependencies succeed, without a round trip
    /// through Sparky. If a dependency fails instead, the early-started task gets <see cref="Decision.FailRunning"/>.
    /// </summary>
    public IReadOnlySet<string> ChainClasses { get; init; } = new HashSet<string>();
    /// <summary>Whether a running task's current attempt is its last (no retry could follow it).</summary>
    public Func<TaskId, bool> CanChainOn { get; init; } = _ => false;
    /// <summary>Most tasks running at once across all classes (the <c>max_concurrency</c> setting).</summary>
    public int MaxRunning { get; set; } = int.MaxValue;
    public int TotalRunning { get; private set; }

    private readonly Dictionary<TaskId, Allocation> _gpuHolders = new();
    /// <summary>The running tasks that hold GPUs (whole or a share), with what each holds.</summary>
    public IReadOnlyDictionary<TaskId, Allocation> GpuHolders => _gpuHolders;
    /// <summary>Changes whenever a GPU is handed out or given back, so a reader copies <see cref="GpuHolders"/> only then.</summary>
    public int GpuHoldersVersion { get; private set; }

    public Scheduler(IReadOnlyDictionary<string, int> classLimits, ResourcePool? pool = null)
    {
        foreach (var (cls, limit) in classLimits) _classes[cls] = new ClassQueue(Math.Max(1, limit));
        Pool = pool ?? ResourcePool.Unlimited();
        PassOverLimit = Math.Max(16, 32 * Pool.Gpus.Count);
    }

    public int ActiveCount => _nodes.Count;
    /// <summary>Makes room for <paramref name="tasks"/> tasks at once (a restart knows how many it will add).</summary>
    public void EnsureCapacity(int tasks) => _nodes.EnsureCapacity(tasks);
    public bool Contains(TaskId id) => _nodes.ContainsKey(id);
    public int Running(string cls) => _classes.TryGetValue(cls, out var q) ? q.Running : 0;
    public int Limit(string cls) => _classes.TryGetValue(cls, out var q) ? q.Limit : 0;
    /// <summary>Tasks of the class whose dependencies are met, waiting for a slot or resources.</summary>
    public int ReadyCount(string cls) => _classes.TryGetValue(cls, out var q) ? q.Ready.Count : 0;

    /// <summary>Sets a class's limit (its limiter moved, or its workers came and went). Lowering it never stops what
    /// runs: fewer start next. 0 holds the class's tasks (a worker class with no worker connected).</summary>
    public void SetLimit(string cls, int limit) => Queue(cls).Limit = Math.Max(0, limit);

    /// <summary>Why the task could never run here, or null; call before <see cref="Add"/>.</summary>
    public string? WhyNeverFits(ResourceRequest request) => Pool.WhyNeverFits(request);

    /// <summary>
    /// Adds a queued task. <paramref name="activeDeps"/> are dependencies still in the scheduler;
    /// the caller has already resolved the others (succeeded ones are dropped, and if any failed or
    /// was cancelled it passes <paramref name="depFailed"/> and the task fails at once).
    /// </summary>
    public IReadOnlyList<Decision> Add(TaskId id, string cls, long seq, IReadOnlyList<TaskId> activeDeps, bool depFailed,
        ResourceRequest request = default)
    {
        if (_nodes.ContainsKey(id)) return [];
        if (depFailed) return [new Decision.Fail(id, Reasons.DependencyFailed)];
        if (Pool.WhyNeverFits(request) is { } why) return [new Decision.Fail(id, Reasons.Unsatisfiable + ": " + why)];
        var node = new Node(id, cls, seq, request);
        _nodes[id] = node;
        // Only a chain class looks at its dependencies again (Chainable); the others just count them down.
        bool keepDeps = ChainClasses.Contains(cls);
        for (int i = 0; i < activeDeps.Count; i++)
        {
            var dep = activeDeps[i];
            if (!_nodes.TryGetValue(dep, out var d)) continue;
            (d.Dependants ??= []).Add(id);
            if (keepDeps) (node.Deps ??= []).Add(dep);
            node.PendingDeps++;
        }
        if (node.PendingDeps == 0) MakeReady(node);
        else
        {
            node.Phase = Phase.Waiting;
            if (Chainable(node)) MakeReady(node);
        }
        return [];
    }

    /// <summary>
    /// Marks a task running without going through the ready queue (a process re-attached after restart),
    /// holding the GPUs it already has. <paramref name="runningDeps"/>: dependencies still running, which it was started
    /// on as a chain (a Slurm job held by afterok): if one fails, it is failed as it would have been before the restart.
    /// </summary>
    public void AddRunning(TaskId id, string cls, long seq, ResourceRequest request = default, IReadOnlyList<string>? gpuUuids = null,
        IReadOnlyList<TaskId>? runningDeps = null)
    {
        if (_nodes.ContainsKey(id)) return;
        var node = new Node(id, cls, seq, request) { Phase = Phase.Running };
        foreach (var dep in runningDeps ?? [])
        {
            if (!_nodes.TryGetValue(dep, out var d)) continue;
            (d.Dependants ??= []).Add(id);
            (node.Deps ??= []).Add(dep);
        }
        Hold(node, request.IsNone ? Allocation.Empty : Pool.Claim(request, gpuUuids ?? []));
        _nodes[id] = node;
        Queue(cls).Running++;
        TotalRunning++;
    }

    /// <summary>Starts what fits, class by class, oldest first (with bounded backfill, see the class comment).</summary>
    public IReadOnlyList<Start> TakeStartable(DateTimeOffset now, int max = int.MaxValue)
    {
        while (_delayed.TryPeek(out var id, out var due) && due <= now)
        {
            _delayed.Dequeue();
            if (_nodes.TryGetValue(id, out var n) && n.Phase == Phase.Delayed && n.DueAt == due) MakeReady(n);
        }
        foreach (var id in _chainCandidates)
            if (_nodes.TryGetValue(id, out var c) && c.Phase == Phase.Waiting && Chainable(c)) MakeReady(c);
        _chainCandidates.Clear();
        List<Start>? starts = null;
        List<TaskId>? chained = null;
        foreach (var q in _classes.Values)
        {
            Node? oldestBlocked = null;
            bool holdBack = false;
            while (q.Running < q.Limit && TotalRunning < MaxRunning && (starts?.Count ?? 0) < max && _deferred.Count < BackfillWindow
                   && q.Ready.TryDequeue(out var id, out var seq))
            {
                if (!_nodes.TryGetValue(id, out var n) || n.Phase != Phase.Ready) continue; // cancelled while ready
                Allocation alloc = Allocation.Empty;
                if (!n.Request.IsNone)
                {
                    if (holdBack || Pool.TryAllocate(n.Request) is not { } got)
                    {
                        _deferred.Add((id, seq));
                        if (oldestBlocked is null)
                        {
                            oldestBlocked = n;
                            holdBack = n.PassedOver >= PassOverLimit;
                        }
                        continue;
                    }
                    alloc = got;
                    if (oldestBlocked is not null) oldestBlocked.PassedOver++;
                }
                Hold(n, alloc);
                n.Phase = Phase.Running;
                q.Running++;
                TotalRunning++;
                (starts ??= []).Add(new Start(id, alloc));
                if (n.Dependants is not null) (chained ??= []).AddRange(n.Dependants);
            }
            foreach (var (id, seq) in _deferred) q.Ready.Enqueue(id, seq);
            _deferred.Clear();
        }
        // Dependants of what just started may chain on it, once the caller has started it (CanChainOn asks about the
        // attempt it starts now): they are looked at on the next pass.
        if (chained is not null) _chainCandidates.UnionWith(chained);
        return starts ?? (IReadOnlyList<Start>)[];
    }

    /// <summary>The earliest time a delayed retry becomes ready, if any.</summary>
    public DateTimeOffset? NextDue()
    {
        while (_delayed.TryPeek(out var id, out var due))
        {
            if (_nodes.TryGetValue(id, out var n) && n.Phase == Phase.Delayed && n.DueAt == due) return due;
            _delayed.Dequeue();
        }
        return null;
    }

    /// <summary>A running attempt failed and will be tried again at <paramref name="dueAt"/>.</summary>
    public void RetryAt(TaskId id, DateTimeOffset dueAt)
    {
        if (!_nodes.TryGetValue(id, out var n) || n.Phase != Phase.Running) return;
        Queue(n.Class).Running--;
        TotalRunning--;
        ReleaseOf(n);
        n.Phase = Phase.Delayed;
        n.DueAt = dueAt;
        _delayed.Enqueue(id, dueAt);
    }

    /// <summary>A task reached a terminal state. Returns what follows for its dependants.</summary>
    public IReadOnlyList<Decision> Finished(TaskId id, TaskState outcome)
    {
        if (!_nodes.Remove(id, out var n)) return [];
        if (n.Phase == Phase.Running) { Queue(n.Class).Running--; TotalRunning--; }
        ReleaseOf(n);
        if (n.Dependants is null) return [];
        var decisions = new List<Decision>();
        if (outcome == TaskState.Succeeded)
        {
            foreach (var depId in n.Dependants)
                if (_nodes.TryGetValue(depId, out var d) && --d.PendingDeps == 0 && d.Phase == Phase.Waiting) MakeReady(d);
        }
        else
        {
            FailDependants(n, decisions);
        }
        return decisions;
    }

    /// <summary>
    /// Removes a task that is not running (queued, waiting or delayed) as cancelled. Returns false if it
    /// is running: the caller kills it and reports <see cref="Finished"/> when it has exited.
    /// </summary>
    public bool TryCancelNotRunning(TaskId id, out IReadOnlyList<Decision> decisions)
    {
        decisions = [];
        if (!_nodes.TryGetValue(id, out var n)) return true;
        if (n.Phase == Phase.Running) return false;
        decisions = Finished(id, TaskState.Cancelled);
        return true;
    }

    private void FailDependants(Node failed, List<Decision> decisions)
    {
        var stack = new Stack<Node>();
        stack.Push(failed);
        while (stack.Count > 0)
        {
            var cur = stack.Pop();
            if (cur.Dependants is null) continue;
            foreach (var depId in cur.Dependants)
            {
                if (!_nodes.TryGetValue(depId, out var d)) continue;
                if (d.Phase == Phase.Running)
                {
                    // Started early on a chain: the caller stops it, then reports it Finished, which fails its own dependants.
                    decisions.Add(new Decision.FailRunning(depId, Reasons.DependencyFailed));
                    continue;
                }
                _nodes.Remove(depId);
                decisions.Add(new Decision.Fail(depId, Reasons.DependencyFailed));
                stack.Push(d);
            }
        }
    }

    /// <summary>A waiting task may start now if it is of a chain class and every unfinished dependency is a running
    /// chain-class task on its last attempt.</summary>
    private bool Chainable(Node n)
    {
        if (n.Deps is null || !ChainClasses.Contains(n.Class)) return false;
        foreach (var dep in n.Deps)
        {
            if (!_nodes.TryGetValue(dep, out var d)) continue; // finished: it succeeded, or this node would be gone
            if (d.Phase != Phase.Running || !ChainClasses.Contains(d.Class) || !CanChainOn(dep)) return false;
        }
        return true;
    }

    /// <summary>The unfinished dependencies of a task that starts on a chain (empty for any other start).</summary>
    public IReadOnlyList<TaskId> RunningDepsOf(TaskId id) =>
        _nodes.TryGetValue(id, out var n) && n.Deps is not null ? n.Deps.Where(_nodes.ContainsKey).ToList() : [];

    private void Hold(Node n, Allocation a)
    {
        n.Allocation = a;
        if (a.GpuUuids.Count == 0) return;
        _gpuHolders[n.Id] = a;
        GpuHoldersVersion++;
    }

    private void ReleaseOf(Node n)
    {
        if (n.Allocation is { } a) Pool.Release(a);
        n.Allocation = null;
        if (_gpuHolders.Remove(n.Id)) GpuHoldersVersion++;
    }

    private void MakeReady(Node n)
    {
        n.Phase = Phase.Ready;
        Queue(n.Class).Ready.Enqueue(n.Id, n.Seq);
    }

    private ClassQueue Queue(string cls)
    {
        if (!_classes.TryGetValue(cls, out var q)) _classes[cls] = q = new ClassQueue(1);
        return q;
    }
}

/// <summary>What the scheduler decided, for the engine to carry out.</summary>
public abstract record Decision
{
    /// <summary>A task started early on a chain whose dependency failed: stop it and fail it for <paramref name="Reason"/>.</summary>
    public sealed record FailRunning(TaskId Id, string Reason) : Decision;
    /// <summary>The task ends as failed without running, for <paramref name="Reason"/>.</summary>
    public sealed record Fail(TaskId Id, string Reason) : Decision;
}

/// <summary>A task to start now, with what it was given.</summary>
public readonly record struct Start(TaskId Id, Allocation Allocation);
