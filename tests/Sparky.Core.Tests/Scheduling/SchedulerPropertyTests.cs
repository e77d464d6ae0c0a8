using FsCheck.Xunit;
using Sparky.Core.Scheduling;
using Sparky.Core.Tasks;

namespace Sparky.Core.Tests.Scheduling;

/// <summary>
/// Random workloads driven through the scheduler, checking after every step: no class over its limit,
/// no task started before all its dependencies succeeded, no task started while running, and at the
/// end every task finished exactly once, with dependency failures only where a dependency failed.
/// </summary>
public sealed class SchedulerPropertyTests
{
    private static readonly string[] ClassNames = ["cpu_short", "cpu_long", "gpu"];

    [Property(MaxTest = 300)]
    public void Invariants_hold_over_random_workloads(int seed)
    {
        var rng = new Random(seed);
        var limits = ClassNames.ToDictionary(c => c, _ => rng.Next(1, 5));
        var s = new Scheduler(limits);
        int n = rng.Next(1, 80);
        var cls = new Dictionary<TaskId, string>();
        var deps = new Dictionary<TaskId, List<TaskId>>();
        var outcome = new Dictionary<TaskId, TaskState>();
        var reason = new Dictionary<TaskId, string>();
        var running = new HashSet<TaskId>();
        var now = DateTimeOffset.UnixEpoch;
        var ids = Enumerable.Range(0, n).Select(i => TaskId.Parse($"t{i}")).ToList();
        int added = 0;

        void Apply(IReadOnlyList<Decision> ds)
        {
            foreach (var d in ds)
            {
                var f = Assert.IsType<Decision.Fail>(d);
                Assert.False(outcome.ContainsKey(f.Id), $"{f.Id} finished twice");
                Assert.DoesNotContain(f.Id, running);
                Assert.Contains(deps[f.Id], dep => outcome.TryGetValue(dep, out var o) && o != TaskState.Succeeded);
                outcome[f.Id] = TaskState.Failed;
                reason[f.Id] = f.Reason;
            }
        }

        for (int step = 0; step < 10_000 && outcome.Count < n; step++)
        {
            // Submit a few more, with dependencies on earlier tasks.
            while (added < n && rng.NextDouble() < 0.5)
            {
                var id = ids[added];
                cls[id] = ClassNames[rng.Next(ClassNames.Length)];
                deps[id] = Enumerable.Range(0, added).Where(_ => rng.NextDouble() < 0.1).Select(i => ids[i]).ToList();
                var active = deps[id].Where(s.Contains).ToList();
                bool failedDep = deps[id].Any(dep => outcome.TryGetValue(dep, out var o) && o != TaskState.Succeeded);
                Apply(s.Add(id, cls[id], added, active, failedDep));
                added++;
            }

            foreach (var (id, _) in s.TakeStartable(now))
            {
                Assert.True(running.Add(id), $"{id} started while running");
                Assert.False(outcome.ContainsKey(id), $"{id} started after finishing");
                Assert.All(deps[id], dep => Assert.Equal(TaskState.Succeeded, outcome.GetValueOrDefault(dep, TaskState.Queued)));
            }
            foreach (var c in ClassNames)
            {
                Assert.True(running.Count(r => cls[r] == c) <= limits[c], $"{c} over its limit");
                Assert.Equal(running.Count(r => cls[r] == c), s.Running(c));
            }

            // Something happens: a task ends, is retried, or a queued one is cancelled.
            double roll = rng.NextDouble();
            if (running.Count > 0 && roll < 0.7)
            {
                var id = running.ElementAt(rng.Next(running.Count));
                running.Remove(id);
                double kind = rng.NextDouble();
                if (kind < 0.15) s.RetryAt(id, now.AddSeconds(rng.Next(0, 3)));
                else
                {
                    var o = kind < 0.75 ? TaskState.Succeeded : kind < 0.95 ? TaskState.Failed : TaskState.Cancelled;
                    outcome[id] = o;
                    Apply(s.Finished(id, o));
                }
            }
            else if (roll < 0.75)
            {
                var queued = ids.Take(added).Where(i => s.Contains(i) && !running.Contains(i)).ToList();
                if (queued.Count > 0)
                {
                    var id = queued[rng.Next(queued.Count)];
                    Assert.True(s.TryCancelNotRunning(id, out var ds));
                    outcome[id] = TaskState.Cancelled;
                    Apply(ds);
                }
            }
            now = now.AddSeconds(1);
        }

        Assert.Equal(n, outcome.Count);
        Assert.Equal(0, s.ActiveCount);
        Assert.All(reason.Values, r => Assert.Equal(Reasons.DependencyFailed, r));
    }
}
