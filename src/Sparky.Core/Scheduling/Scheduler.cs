using Sparky.Core.Tasks;

namespace Sparky.Core.Scheduling;

/// <summary>
/// Decides what starts. Pure: no I/O, no clock of its own (time is an argument), no threads —
/// the daemon's engine loop owns one instance and feeds it events.
/// <para>Invariants (checked by property tests): a class never runs more than its limit; a task
/// starts only when every dependency succeeded; a task that is running is never started again;
/// a failed or cancelled dependency fails its dependants with <see cref="Reasons.DependencyFailed"/>.</para>
/// </summary>
public sealed class Scheduler
{
    private enum Phase { Waiting, Ready, Delayed, Running }

    private sealed class Node(TaskId id, string cls, long seq)
    {
        public TaskId Id { get; } = id;
        public string Class { get; } = cls;
        public long Seq { get; } = seq;
        public Phase Phase { get; set; }
        public int PendingDeps { get; set; }
        public List<TaskId>? Dependants { get; set; }
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

    public Scheduler(IReadOnlyDictionary<string, int> classLimits)
    {
        foreach (var (cls, limit) in classLimits) _classes[cls] = new ClassQueue(Math.Max(1, limit));
    }

    public int ActiveCount => _nodes.Count;
    public bool Contains(TaskId id) => _nodes.ContainsKey(id);
    public int Running(string cls) => _classes.TryGetValue(cls, out var q) ? q.Running : 0;
    public int Limit(string cls) => _classes.TryGetValue(cls, out var q) ? q.Limit : 0;

    /// <summary>
    /// Adds a queued task. <paramref name="activeDeps"/> are dependencies still in the scheduler;
    /// the caller has already resolved the others (succeeded ones are dropped, and if any failed or
    /// was cancelled it passes <paramref name="depFailed"/> and the task fails at once).
    /// </summary>
    public IReadOnlyList<Decision> Add(TaskId id, string cls, long seq, IReadOnlyCollection<TaskId> activeDeps, bool depFailed)
    {
        if (_nodes.ContainsKey(id)) return [];
        if (depFailed) return [new Decision.Fail(id, Reasons.DependencyFailed)];
        var node = new Node(id, cls, seq);
        _nodes[id] = node;
        foreach (var dep in activeDeps)
        {
            if (!_nodes.TryGetValue(dep, out var d)) continue;
            (d.Dependants ??= []).Add(id);
            node.PendingDeps++;
        }
        if (node.PendingDeps == 0) MakeReady(node);
        else node.Phase = Phase.Waiting;
        return [];
    }

    /// <summary>Marks a task running without going through the ready queue (a process re-attached after restart).</summary>
    public void AddRunning(TaskId id, string cls, long seq)
    {
        if (_nodes.ContainsKey(id)) return;
        var node = new Node(id, cls, seq) { Phase = Phase.Running };
        _nodes[id] = node;
        Queue(cls).Running++;
    }

    /// <summary>Starts what fits, class by class, oldest first.</summary>
    public IReadOnlyList<TaskId> TakeStartable(DateTimeOffset now, int max = int.MaxValue)
    {
        while (_delayed.TryPeek(out var id, out var due) && due <= now)
        {
            _delayed.Dequeue();
            if (_nodes.TryGetValue(id, out var n) && n.Phase == Phase.Delayed && n.DueAt == due) MakeReady(n);
        }
        List<TaskId>? starts = null;
        foreach (var q in _classes.Values)
        {
            while (q.Running < q.Limit && (starts?.Count ?? 0) < max && q.Ready.TryDequeue(out var id, out _))
            {
                if (!_nodes.TryGetValue(id, out var n) || n.Phase != Phase.Ready) continue; // cancelled while ready
                n.Phase = Phase.Running;
                q.Running++;
                (starts ??= []).Add(id);
            }
        }
        return starts ?? (IReadOnlyList<TaskId>)[];
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
        n.Phase = Phase.Delayed;
        n.DueAt = dueAt;
        _delayed.Enqueue(id, dueAt);
    }

    /// <summary>A task reached a terminal state. Returns what follows for its dependants.</summary>
    public IReadOnlyList<Decision> Finished(TaskId id, TaskState outcome)
    {
        if (!_nodes.Remove(id, out var n)) return [];
        if (n.Phase == Phase.Running) Queue(n.Class).Running--;
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
                // A dependant can't be running: it would have needed this dependency to succeed.
                if (!_nodes.Remove(depId, out var d)) continue;
                decisions.Add(new Decision.Fail(depId, Reasons.DependencyFailed));
                stack.Push(d);
            }
        }
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
    public sealed record Fail(TaskId Id, string Reason) : Decision;
}
