using FsCheck.Xunit;
using Sparky.Core.Scheduling;
using Sparky.Core.Tasks;

namespace Sparky.Core.Tests.Scheduling;

/// <summary>
/// Random machines and random mixes of CPU, memory, whole-GPU and GPU-share requests driven through the
/// scheduler, checking after every step against our own books: no whole GPU given twice or shared, the
/// shares on a GPU within its memory, CPUs and memory within the totals; and at the end every task that
/// could fit ran, and every task that could never fit was refused as unsatisfiable.
/// </summary>
public sealed class ResourcePropertyTests
{
    [Property(MaxTest = 300)]
    public void Resources_are_never_handed_out_beyond_what_exists(int seed)
    {
        var rng = new Random(seed);
        var gpus = Enumerable.Range(0, rng.Next(0, 9)).Select(i => new GpuDevice($"GPU-{i}", rng.Next(1, 5) * 20_480)).ToList();
        var pool = new ResourcePool(rng.Next(1, 33) * 1000, rng.Next(1, 65) * 1024, gpus);
        var s = new Scheduler(new Dictionary<string, int> { ["a"] = rng.Next(1, 20), ["b"] = rng.Next(1, 20) }, pool);
        var held = new Dictionary<TaskId, Allocation>();
        var refused = new HashSet<TaskId>();
        var done = new HashSet<TaskId>();
        int n = rng.Next(1, 120);
        var now = DateTimeOffset.UnixEpoch;
        for (int i = 0; i < n; i++)
        {
            var id = TaskId.Parse($"t{i}");
            var r = rng.Next(4) switch
            {
                0 => new ResourceRequest(rng.Next(0, 40) * 250, rng.Next(0, 80) * 512, 0, 0),
                1 => new ResourceRequest(rng.Next(0, 3) * 1000, 0, rng.Next(1, 10), 0),
                2 => new ResourceRequest(0, rng.Next(0, 4) * 1024, 0, rng.Next(1, 100) * 1024),
                _ => ResourceRequest.None,
            };
            var decisions = s.Add(id, rng.Next(2) == 0 ? "a" : "b", i, [], false, r);
            bool never = pool.WhyNeverFits(r) is not null;
            Assert.Equal(never, decisions.Count == 1);
            if (never)
            {
                Assert.StartsWith(Reasons.Unsatisfiable, Assert.IsType<Decision.Fail>(decisions[0]).Reason);
                refused.Add(id);
            }
        }

        for (int step = 0; step < 100_000 && done.Count + refused.Count < n; step++)
        {
            foreach (var (id, alloc) in s.TakeStartable(now))
            {
                Assert.True(held.TryAdd(id, alloc), $"{id} started twice");
                Check(pool, held);
            }
            if (held.Count > 0 && rng.NextDouble() < 0.6)
            {
                var id = held.Keys.ElementAt(rng.Next(held.Count));
                held.Remove(id);
                if (rng.NextDouble() < 0.1) s.RetryAt(id, now);
                else { s.Finished(id, TaskState.Succeeded); done.Add(id); }
                Check(pool, held);
            }
            now = now.AddSeconds(1);
        }
        Assert.Equal(n, done.Count + refused.Count);
        Assert.Equal(0, pool.UsedMilliCpus);
        Assert.Equal(0, pool.UsedMemoryMb);
        Assert.Equal(gpus.Count, pool.IdleGpus);
    }

    private static void Check(ResourcePool pool, Dictionary<TaskId, Allocation> held)
    {
        Assert.True(held.Values.Sum(a => (long)a.Request.MilliCpus) <= pool.TotalMilliCpus, "CPUs oversubscribed");
        Assert.True(held.Values.Sum(a => a.Request.MemoryMb) <= pool.TotalMemoryMb, "memory oversubscribed");
        foreach (var gpu in pool.Gpus)
        {
            var whole = held.Values.Where(a => a.Request.GpuMemoryMb == 0 && a.GpuUuids.Contains(gpu.Uuid)).ToList();
            var shares = held.Values.Where(a => a.Request.GpuMemoryMb > 0 && a.GpuUuids.Contains(gpu.Uuid)).ToList();
            Assert.True(whole.Count <= 1, $"{gpu.Uuid} given whole to {whole.Count} tasks");
            Assert.True(whole.Count == 0 || shares.Count == 0, $"{gpu.Uuid} given whole and shared");
            Assert.True(shares.Sum(a => a.Request.GpuMemoryMb) <= gpu.MemoryMb, $"{gpu.Uuid} shares exceed its memory");
        }
        foreach (var a in held.Values)
        {
            Assert.Equal(a.Request.GpuMemoryMb > 0 ? 1 : a.Request.Gpus, a.GpuUuids.Count);
            Assert.Equal(a.GpuUuids.Count, a.GpuUuids.Distinct().Count());
        }
    }
}
