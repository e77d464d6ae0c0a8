using FsCheck.Xunit;
using Sparky.Core.Tasks;
using Sparky.Core.Workers;

namespace Sparky.Core.Tests.Workers;

/// <summary>
/// Random sequences of joins (new names and restarts under a known name), credits, assignments, releases, drains and
/// removals, checked after every step against our own books: credits and free GPUs never negative and the GPUs of what
/// a worker runs never more than it has, a task held by at most one worker and by the one it was given to, and Assign
/// only ever answering a worker that serves the class, is not draining, had a credit and the GPUs — the one with the
/// most credits — and answering null only when there was none.
/// </summary>
public sealed class WorkerPoolPropertyTests
{
    private static readonly string[] ClassNames = [Classes.CpuShort, Classes.CpuLong, Classes.Gpu];
    private static readonly string[] Names = ["w0", "w1", "w2", "w3", "w4"];

    [Property(MaxTest = 300)]
    public void Credits_gpus_and_held_tasks_stay_consistent_over_random_operations(int seed)
    {
        var rng = new Random(seed);
        var pool = new WorkerPool();
        var now = DateTimeOffset.UnixEpoch;
        // Our books: which session holds each task, and the tasks ready to be given (never one already held).
        var holder = new Dictionary<TaskId, string>();
        var requeued = new List<TaskId>();
        int sessions = 0, tasks = 0;

        int steps = rng.Next(1, 400);
        for (int step = 0; step < steps; step++)
        {
            now = now.AddMilliseconds(rng.Next(0, 2000));
            var workers = pool.All.ToList();
            Worker? any = workers.Count == 0 ? null : workers[rng.Next(workers.Count)];
            switch (rng.Next(10))
            {
                case 0 or 1:
                {
                    var name = Names[rng.Next(Names.Length)];
                    IReadOnlySet<string>? classes = rng.NextDouble() < 0.3 ? null
                        : ClassNames.Where(_ => rng.NextDouble() < 0.5).ToHashSet();
                    var info = new WorkerInfo(name, "host", rng.Next(1, 9), rng.Next(0, 5), 1024, classes, null);
                    int credits = rng.Next(-2, 9);
                    var known = pool.ByName(name);
                    var session = $"s{sessions++}";
                    var (joined, replaced) = pool.Join(session, info, credits, now);
                    Assert.Same(known, replaced);
                    if (replaced is not null)
                    {
                        // The restarted worker's old session comes back with exactly what it held; the caller queues those again.
                        var held = holder.Where(h => h.Value == replaced.Session).Select(h => h.Key).ToHashSet();
                        Assert.True(held.SetEquals(replaced.Running.Keys), "the replaced worker did not come back with its tasks");
                        Assert.Null(pool.Get(replaced.Session));
                        Requeue(held);
                    }
                    Assert.Same(joined, pool.Get(session));
                    Assert.Same(joined, pool.ByName(name));
                    Assert.Equal((Math.Max(0, credits), info.Gpus, 0), (joined.Credits, joined.FreeGpus, joined.Running.Count));
                    break;
                }
                case 2 when any is not null:
                {
                    int before = any.Credits, n = rng.Next(-3, 6);
                    pool.Credit(any, n);
                    Assert.Equal(Math.Max(0, before + n), any.Credits);
                    break;
                }
                case 3 or 4 or 5:
                {
                    TaskId id;
                    if (requeued.Count > 0 && rng.NextDouble() < 0.3)
                    {
                        int i = rng.Next(requeued.Count);
                        id = requeued[i];
                        requeued.RemoveAt(i);
                    }
                    else id = TaskId.Parse($"t{tasks++}");
                    var cls = ClassNames[rng.Next(ClassNames.Length)];
                    int gpus = rng.NextDouble() < 0.5 ? 0 : rng.Next(1, 4);
                    var before = workers.ToDictionary(w => w, w => (w.Credits, w.FreeGpus));
                    var eligible = workers.Where(w => !w.Draining && w.Serves(cls) && w.Credits > 0 && w.FreeGpus >= gpus).ToList();

                    var got = pool.Assign(id, cls, gpus);
                    if (eligible.Count == 0)
                    {
                        Assert.Null(got);
                        Requeue([id]);
                        Assert.All(workers, w => Assert.Equal(before[w], (w.Credits, w.FreeGpus)));
                        break;
                    }
                    Assert.NotNull(got);
                    Assert.False(got.Draining, "a draining worker was given a task");
                    Assert.True(got.Serves(cls), $"{got.Info.Name} was given a {cls} task it does not serve");
                    Assert.Contains(got, eligible);
                    Assert.Equal(eligible.Max(w => before[w].Credits), before[got].Credits);
                    Assert.Equal((before[got].Credits - 1, before[got].FreeGpus - gpus), (got.Credits, got.FreeGpus));
                    Assert.Equal(gpus, got.Running[id]);
                    Assert.All(workers.Where(w => w != got), w => Assert.Equal(before[w], (w.Credits, w.FreeGpus)));
                    holder[id] = got.Session;
                    break;
                }
                case 6 or 7 when holder.Count > 0:
                {
                    var (id, session) = holder.ElementAt(rng.Next(holder.Count));
                    var w = pool.Get(session)!;
                    // Another worker never releases it (a stale finished from the wrong session).
                    if (workers.FirstOrDefault(o => o != w) is { } other)
                    {
                        int free = other.FreeGpus;
                        Assert.False(pool.Release(other, id));
                        Assert.Equal(free, other.FreeGpus);
                    }
                    int gpus = w.Running[id], freeBefore = w.FreeGpus, credits = w.Credits;
                    Assert.True(pool.Release(w, id));
                    Assert.Equal((freeBefore + gpus, credits), (w.FreeGpus, w.Credits));
                    Assert.False(pool.Release(w, id));
                    Assert.Equal(freeBefore + gpus, w.FreeGpus);
                    holder.Remove(id);
                    if (rng.NextDouble() < 0.2) Requeue([id]); // retried
                    break;
                }
                case 8 when any is not null:
                    pool.Drain(any);
                    Assert.True(any.Draining);
                    break;
                case 9 when any is not null:
                {
                    var held = holder.Where(h => h.Value == any.Session).Select(h => h.Key).ToHashSet();
                    var returned = pool.Remove(any.Session);
                    Assert.Equal(returned.Count, returned.Distinct().Count());
                    Assert.True(held.SetEquals(returned), "Remove did not return exactly the tasks the worker held");
                    Assert.Null(pool.Get(any.Session));
                    Assert.Null(pool.ByName(any.Info.Name));
                    Requeue(held);
                    break;
                }
            }
            Check(pool, holder);
        }

        void Requeue(IEnumerable<TaskId> ids)
        {
            foreach (var id in ids)
            {
                holder.Remove(id);
                requeued.Add(id);
            }
        }
    }

    private static void Check(WorkerPool pool, Dictionary<TaskId, string> holder)
    {
        var workers = pool.All.ToList();
        Assert.Equal(workers.Count, pool.Count);
        Assert.Equal(workers.Count, workers.Select(w => w.Info.Name).Distinct().Count());
        var seen = new Dictionary<TaskId, string>();
        foreach (var w in workers)
        {
            Assert.True(w.Credits >= 0, $"{w.Info.Name} has {w.Credits} credits");
            Assert.True(w.FreeGpus >= 0, $"{w.Info.Name} has {w.FreeGpus} free GPUs");
            Assert.Equal(w.Info.Gpus - w.Running.Values.Sum(), w.FreeGpus);
            Assert.Same(w, pool.Get(w.Session));
            Assert.Same(w, pool.ByName(w.Info.Name));
            foreach (var id in w.Running.Keys)
                Assert.True(seen.TryAdd(id, w.Session), $"{id} held by {seen.GetValueOrDefault(id)} and {w.Session}");
        }
        Assert.Equal(holder.OrderBy(h => h.Key.Value), seen.OrderBy(h => h.Key.Value));
        foreach (var cls in ClassNames)
            Assert.Equal(workers.Where(w => !w.Draining && w.Serves(cls)).Sum(w => w.Credits), pool.FreeCredits(cls));
    }
}
