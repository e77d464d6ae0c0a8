using System.Collections.Concurrent;
using Sparky.Core.Tasks;

namespace Sparky.Store.Sqlite;

/// <summary>
/// Task counts per class and state, kept with every committed write and rebuilt by one query at start,
/// so <c>/queue/status</c> and <c>sparky_queue_depth</c> never scan a table.
/// </summary>
public sealed class Counters
{
    private sealed class PerClass { public readonly long[] ByState = new long[5]; }

    private readonly ConcurrentDictionary<string, PerClass> _classes = new(StringComparer.Ordinal);

    public void Add(string cls, TaskState state, long delta)
    {
        var pc = _classes.GetOrAdd(cls, _ => new PerClass());
        Interlocked.Add(ref pc.ByState[(int)state], delta);
    }

    public void Move(string cls, TaskState from, TaskState to)
    {
        if (from == to) return;
        Add(cls, from, -1);
        Add(cls, to, +1);
    }

    public long Get(string cls, TaskState state) =>
        _classes.TryGetValue(cls, out var pc) ? Interlocked.Read(ref pc.ByState[(int)state]) : 0;

    public long Total(TaskState state) => _classes.Values.Sum(pc => Interlocked.Read(ref pc.ByState[(int)state]));

    public IEnumerable<string> Classes => _classes.Keys;

    public void Reset() => _classes.Clear();
}
