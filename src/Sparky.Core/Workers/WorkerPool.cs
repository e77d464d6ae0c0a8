using Sparky.Core.Tasks;

namespace Sparky.Core.Workers;

/// <summary>What a worker announces in its hello: who it is and what it offers.</summary>
/// <param name="Classes">The classes it takes; null: every worker class.</param>
/// <param name="Pilot">The pilot allocation it runs in (Sparky submitted it), or null for a worker started by hand.</param>
/// <param name="Prefetch">Tasks it holds beyond its slots, ready to start as a slot frees.</param>
public sealed record WorkerInfo(string Name, string Host, int Slots, int Gpus, long MemoryMb, IReadOnlySet<string>? Classes, string? Pilot, int Prefetch = 0);

/// <summary>A connected worker as the daemon sees it.</summary>
public sealed class Worker
{
    internal Worker(string session, long connection, WorkerInfo info, int credits, DateTimeOffset now)
    {
        Session = session;
        Connection = connection;
        Info = info;
        Credits = credits;
        FreeGpus = info.Gpus;
        LastSeen = now;
        ConnectedAt = now;
    }

    /// <summary>The session id the worker names in every message: proof enough on loopback, so it is never shown.</summary>
    public string Session { get; }
    /// <summary>Which hello since the daemon started opened this session (1, 2, …): what views show of a session, as
    /// its id is the worker's to keep. A worker that reconnects gets a new one.</summary>
    public long Connection { get; }
    public WorkerInfo Info { get; }
    /// <summary>When its hello opened this session.</summary>
    public DateTimeOffset ConnectedAt { get; }
    /// <summary>Tasks it asked for and has not been given: it pulls, the daemon never pushes past this.</summary>
    public int Credits { get; internal set; }
    public int FreeGpus { get; internal set; }
    public DateTimeOffset LastSeen { get; internal set; }
    /// <summary>Draining: it finishes what it runs and takes nothing new (its walltime is near, or it is leaving).</summary>
    public bool Draining { get; internal set; }
    /// <summary>The tasks it was given and has not reported finished, with the GPUs each holds.</summary>
    public IReadOnlyDictionary<TaskId, int> Running => _running;
    internal readonly Dictionary<TaskId, int> _running = new();

    public bool Serves(string cls) => Info.Classes is null || Info.Classes.Contains(cls);
}

/// <summary>
/// The workers connected to the daemon: who has credits, who serves which class, who went quiet. Pure (the clock
/// comes in as arguments) and single-threaded: the engine's loop owns it. A name is one worker: a second hello
/// under a name replaces the first session, so a restarted worker is never given a task twice.
/// </summary>
public sealed class WorkerPool
{
    private readonly Dictionary<string, Worker> _bySession = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Worker> _byName = new(StringComparer.Ordinal);
    private long _connections;

    public int Count => _bySession.Count;
    public IEnumerable<Worker> All => _bySession.Values;

    public Worker? Get(string? session) => session is not null && _bySession.TryGetValue(session, out var w) ? w : null;
    public Worker? ByName(string name) => _byName.GetValueOrDefault(name);

    /// <summary>Adds a worker. A worker already known under the name is removed first and returned, with what it held.</summary>
    public (Worker Joined, Worker? Replaced) Join(string session, WorkerInfo info, int credits, DateTimeOffset now)
    {
        Worker? replaced = null;
        if (_byName.TryGetValue(info.Name, out var old))
        {
            Remove(old.Session);
            replaced = old;
        }
        var w = new Worker(session, ++_connections, info, Math.Max(0, credits), now);
        _bySession[session] = w;
        _byName[info.Name] = w;
        return (w, replaced);
    }

    /// <summary>Takes back a task a previous session (or a previous daemon) gave it: it still runs there.</summary>
    public void Adopt(Worker w, TaskId id, int gpus)
    {
        w._running[id] = gpus;
        w.FreeGpus -= gpus;
    }

    public void Seen(Worker w, DateTimeOffset now) => w.LastSeen = now;

    public void Credit(Worker w, int n) => w.Credits = Math.Max(0, w.Credits + n);

    public void Drain(Worker w) => w.Draining = true;

    /// <summary>
    /// Picks the worker for a task of <paramref name="cls"/> needing <paramref name="gpus"/> whole GPUs: one that serves
    /// the class, is not draining, has a credit and the GPUs free; the one with the most credits left, so work spreads.
    /// Takes the credit and the GPUs. Null when none can take it now.
    /// </summary>
    public Worker? Assign(TaskId id, string cls, int gpus)
    {
        Worker? best = null;
        foreach (var w in _bySession.Values)
        {
            if (w.Draining || w.Credits <= 0 || w.FreeGpus < gpus || !w.Serves(cls)) continue;
            if (best is null || w.Credits > best.Credits) best = w;
        }
        if (best is null) return null;
        best.Credits--;
        best.FreeGpus -= gpus;
        best._running[id] = gpus;
        return best;
    }

    /// <summary>A task it held ended (or was taken away): its GPUs are free again. False if it did not hold it.</summary>
    public bool Release(Worker w, TaskId id)
    {
        if (!w._running.Remove(id, out int gpus)) return false;
        w.FreeGpus += gpus;
        return true;
    }

    /// <summary>Removes a worker (it left, or it is lost) and returns the tasks it still held.</summary>
    public IReadOnlyList<TaskId> Remove(string session)
    {
        if (!_bySession.Remove(session, out var w)) return [];
        if (_byName.TryGetValue(w.Info.Name, out var named) && ReferenceEquals(named, w)) _byName.Remove(w.Info.Name);
        return w._running.Keys.ToList();
    }

    /// <summary>Workers not heard from for longer than <paramref name="timeout"/>.</summary>
    public IReadOnlyList<Worker> Silent(DateTimeOffset now, TimeSpan timeout) =>
        _bySession.Values.Where(w => now - w.LastSeen > timeout).ToList();

    /// <summary>When the first worker would turn silent, or null with none connected.</summary>
    public DateTimeOffset? NextSilence(TimeSpan timeout) =>
        _bySession.Count == 0 ? null : _bySession.Values.Min(w => w.LastSeen) + timeout;

    /// <summary>How many tasks of a class the workers can take at once: the slots (and prefetch) of those serving it, where a draining
    /// worker counts only what it still runs. The class's limit in the scheduler (which counts running tasks against
    /// it); 0 with no worker for it, so its tasks wait queued.</summary>
    public int Capacity(string cls)
    {
        int n = 0;
        foreach (var w in _bySession.Values)
            if (w.Serves(cls)) n += w.Draining ? w._running.Count : w.Info.Slots + w.Info.Prefetch;
        return n;
    }

    /// <summary>Credits free now for any of <paramref name="classes"/>, each worker counted once.</summary>
    public int FreeCredits(IReadOnlySet<string> classes)
    {
        int n = 0;
        foreach (var w in _bySession.Values)
            if (!w.Draining && (w.Info.Classes is null || w.Info.Classes.Overlaps(classes))) n += w.Credits;
        return n;
    }

    /// <summary>Credits free for a class now: what connected workers could start without a new allocation.</summary>
    public int FreeCredits(string cls)
    {
        int n = 0;
        foreach (var w in _bySession.Values)
            if (!w.Draining && w.Serves(cls)) n += w.Credits;
        return n;
    }
}
