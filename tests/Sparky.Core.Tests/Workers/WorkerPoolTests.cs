using Sparky.Core.Tasks;
using Sparky.Core.Workers;

namespace Sparky.Core.Tests.Workers;

public sealed class WorkerPoolTests
{
    private static readonly DateTimeOffset T0 = DateTimeOffset.Parse("2026-11-24T00:00:00Z");
    private static TaskId Id(string s) => TaskId.Parse(s);

    private static WorkerInfo Info(string name, int slots = 4, int gpus = 0, params string[] classes) =>
        new(name, name + ".cluster", slots, gpus, 16_384, classes.Length == 0 ? null : classes.ToHashSet(), null);

    [Fact]
    public void A_hello_under_a_known_name_replaces_the_old_session_which_comes_back_with_its_tasks()
    {
        var pool = new WorkerPool();
        var (first, none) = pool.Join("s1", Info("w1", gpus: 2), 3, T0);
        Assert.Null(none);
        Assert.Same(first, pool.Assign(Id("t1"), Classes.Gpu, 1));
        Assert.Same(first, pool.Assign(Id("t2"), Classes.CpuShort, 0));

        var (second, replaced) = pool.Join("s2", Info("w1", gpus: 2), 5, T0.AddSeconds(30));
        Assert.Same(first, replaced);
        Assert.Equal(new Dictionary<TaskId, int> { [Id("t1")] = 1, [Id("t2")] = 0 }, replaced!.Running);
        Assert.Equal(1, pool.Count);
        Assert.Null(pool.Get("s1"));
        Assert.Same(second, pool.Get("s2"));
        Assert.Same(second, pool.ByName("w1"));
        // The new session starts clean: nothing held, every GPU free, the credits it announced.
        Assert.Empty(second.Running);
        Assert.Equal((2, 5), (second.FreeGpus, second.Credits));

        // Removing the old session again (a late timeout) must not drop the name from the new one.
        Assert.Empty(pool.Remove("s1"));
        Assert.Same(second, pool.ByName("w1"));
        Assert.Equal(1, pool.Count);
    }

    [Fact]
    public void Each_hello_gets_the_next_connection_number_and_its_own_connected_time_a_heartbeat_moves_only_last_seen()
    {
        var pool = new WorkerPool();
        var (a, _) = pool.Join("s1", Info("a"), 1, T0);
        var (b, _) = pool.Join("s2", Info("b"), 1, T0.AddSeconds(1));
        pool.Seen(a, T0.AddSeconds(5));
        Assert.Equal((1L, T0, T0.AddSeconds(5)), (a.Connection, a.ConnectedAt, a.LastSeen));
        Assert.Equal((2L, T0.AddSeconds(1)), (b.Connection, b.ConnectedAt));
        // The same worker again (a reconnect): a new session, a new number, connected from now.
        var (again, replaced) = pool.Join("s3", Info("a"), 1, T0.AddSeconds(9));
        Assert.Same(a, replaced);
        Assert.Equal((3L, T0.AddSeconds(9), T0.AddSeconds(9)), (again.Connection, again.ConnectedAt, again.LastSeen));
    }

    [Fact]
    public void A_worker_joining_with_negative_credits_has_none_and_credits_never_go_below_zero()
    {
        var pool = new WorkerPool();
        var (w, _) = pool.Join("s1", Info("w1"), -3, T0);
        Assert.Equal(0, w.Credits);
        Assert.Null(pool.Assign(Id("t1"), Classes.CpuShort, 0));
        pool.Credit(w, 2);
        Assert.Equal(2, w.Credits);
        pool.Credit(w, -5);
        Assert.Equal(0, w.Credits);
        Assert.Null(pool.Assign(Id("t1"), Classes.CpuShort, 0));
    }

    [Fact]
    public void Assign_goes_only_to_a_worker_that_serves_the_class()
    {
        var pool = new WorkerPool();
        var (longOnly, _) = pool.Join("s1", Info("long", classes: Classes.CpuLong), 10, T0);
        Assert.Null(pool.Assign(Id("t1"), Classes.CpuShort, 0));
        Assert.Empty(longOnly.Running);
        Assert.Equal(10, longOnly.Credits);

        // A worker that names no class serves every worker class.
        var (any, _) = pool.Join("s2", Info("any"), 1, T0);
        Assert.Same(any, pool.Assign(Id("t1"), Classes.CpuShort, 0));
        Assert.Same(longOnly, pool.Assign(Id("t2"), Classes.CpuLong, 0));
    }

    [Fact]
    public void Assign_needs_the_gpus_free_and_takes_them_with_one_credit()
    {
        var pool = new WorkerPool();
        var (w, _) = pool.Join("s1", Info("w1", gpus: 3), 4, T0);
        Assert.Same(w, pool.Assign(Id("t1"), Classes.Gpu, 2));
        Assert.Equal((3, 1), (w.Credits, w.FreeGpus));
        Assert.Equal(2, w.Running[Id("t1")]);
        // Credits left, but only one GPU free.
        Assert.Null(pool.Assign(Id("t2"), Classes.Gpu, 2));
        Assert.Equal((3, 1), (w.Credits, w.FreeGpus));
        Assert.Same(w, pool.Assign(Id("t2"), Classes.Gpu, 1));
        Assert.Same(w, pool.Assign(Id("t3"), Classes.CpuShort, 0));
        Assert.Equal((1, 0), (w.Credits, w.FreeGpus));
        Assert.Null(pool.Assign(Id("t4"), Classes.Gpu, 1));
    }

    [Fact]
    public void A_draining_worker_takes_nothing_new_even_with_the_most_credits()
    {
        var pool = new WorkerPool();
        var (leaving, _) = pool.Join("s1", Info("leaving"), 100, T0);
        pool.Drain(leaving);
        Assert.Null(pool.Assign(Id("t1"), Classes.CpuShort, 0));
        var (staying, _) = pool.Join("s2", Info("staying"), 1, T0);
        Assert.Same(staying, pool.Assign(Id("t1"), Classes.CpuShort, 0));
        Assert.Null(pool.Assign(Id("t2"), Classes.CpuShort, 0));
        Assert.Equal(100, leaving.Credits);
    }

    [Fact]
    public void Assign_picks_the_worker_with_the_most_credits_so_work_spreads()
    {
        var pool = new WorkerPool();
        var (a, _) = pool.Join("s1", Info("a"), 2, T0);
        var (b, _) = pool.Join("s2", Info("b"), 5, T0);
        var (c, _) = pool.Join("s3", Info("c"), 1, T0);
        // b runs down to a's level before a is used at all.
        for (int i = 0; i < 3; i++) Assert.Same(b, pool.Assign(Id($"t{i}"), Classes.CpuShort, 0));
        for (int i = 3; i < 8; i++) Assert.NotNull(pool.Assign(Id($"t{i}"), Classes.CpuShort, 0));
        Assert.Equal((0, 0, 0), (a.Credits, b.Credits, c.Credits));
        Assert.Equal((2, 5, 1), (a.Running.Count, b.Running.Count, c.Running.Count));
        Assert.Null(pool.Assign(Id("t8"), Classes.CpuShort, 0));
    }

    [Fact]
    public void Release_frees_the_gpus_of_a_held_task_once_and_gives_no_credit()
    {
        var pool = new WorkerPool();
        var (w, _) = pool.Join("s1", Info("w1", gpus: 4), 2, T0);
        var (other, _) = pool.Join("s2", Info("w2", gpus: 4), 0, T0);
        pool.Assign(Id("t1"), Classes.Gpu, 3);
        Assert.False(pool.Release(other, Id("t1")));
        Assert.Equal((1, 4), (w.FreeGpus, other.FreeGpus));

        Assert.True(pool.Release(w, Id("t1")));
        Assert.Equal(4, w.FreeGpus);
        Assert.Empty(w.Running);
        // Credits come from the worker (its finished message), not from the release.
        Assert.Equal(1, w.Credits);
        // A second release (a late duplicate) frees nothing more.
        Assert.False(pool.Release(w, Id("t1")));
        Assert.Equal(4, w.FreeGpus);
    }

    [Fact]
    public void Remove_returns_the_tasks_the_worker_still_held()
    {
        var pool = new WorkerPool();
        var (w, _) = pool.Join("s1", Info("w1", gpus: 1), 3, T0);
        pool.Join("s2", Info("w2"), 0, T0);
        pool.Assign(Id("t1"), Classes.Gpu, 1);
        pool.Assign(Id("t2"), Classes.CpuShort, 0);
        pool.Assign(Id("t3"), Classes.CpuShort, 0);
        pool.Release(w, Id("t2"));

        Assert.Equal([Id("t1"), Id("t3")], pool.Remove("s1").OrderBy(i => i.Value));
        Assert.Null(pool.Get("s1"));
        Assert.Null(pool.ByName("w1"));
        Assert.Equal(1, pool.Count);
        Assert.Empty(pool.Remove("s1"));
        Assert.Empty(pool.Remove("never-joined"));
        // Its slots no longer count: only w2's 4 are left.
        Assert.Equal(4, pool.Capacity(Classes.CpuShort));
    }

    [Fact]
    public void A_worker_is_silent_once_not_heard_from_for_longer_than_the_timeout()
    {
        var pool = new WorkerPool();
        var timeout = TimeSpan.FromSeconds(10);
        Assert.Null(pool.NextSilence(timeout));
        Assert.Empty(pool.Silent(T0.AddDays(1), timeout));

        var (early, _) = pool.Join("s1", Info("early"), 1, T0);
        var (late, _) = pool.Join("s2", Info("late"), 1, T0.AddSeconds(3));
        Assert.Equal(T0.AddSeconds(10), pool.NextSilence(timeout));
        Assert.Empty(pool.Silent(T0.AddSeconds(10), timeout));
        Assert.Equal([early], pool.Silent(T0.AddSeconds(10.001), timeout));

        // Heard from again: the other one is now the first to go quiet.
        pool.Seen(early, T0.AddSeconds(8));
        Assert.Equal(T0.AddSeconds(13), pool.NextSilence(timeout));
        Assert.Empty(pool.Silent(T0.AddSeconds(12), timeout));
        Assert.Equal([late], pool.Silent(T0.AddSeconds(14), timeout));
        Assert.Equal(2, pool.Silent(T0.AddSeconds(19), timeout).Count);

        pool.Remove("s2");
        Assert.Equal(T0.AddSeconds(18), pool.NextSilence(timeout));
    }

    [Fact]
    public void Capacity_counts_the_slots_of_workers_serving_the_class_and_only_what_a_draining_one_still_runs()
    {
        var pool = new WorkerPool();
        Assert.Equal(0, pool.Capacity(Classes.CpuShort));
        var (shortW, _) = pool.Join("s1", Info("short", slots: 4, classes: Classes.CpuShort), 4, T0);
        var (anyW, _) = pool.Join("s2", Info("any", slots: 6), 6, T0);
        pool.Join("s3", Info("gpu", slots: 8, gpus: 8, classes: Classes.Gpu), 0, T0);
        Assert.Equal(10, pool.Capacity(Classes.CpuShort));
        Assert.Equal(14, pool.Capacity(Classes.Gpu));
        Assert.Equal(6, pool.Capacity(Classes.CpuLong));

        // Two tasks on "any", then it drains: those two still count, its free slots no longer do.
        Assert.Same(anyW, pool.Assign(Id("t1"), Classes.CpuLong, 0));
        Assert.Same(anyW, pool.Assign(Id("t2"), Classes.CpuLong, 0));
        pool.Drain(anyW);
        Assert.Equal(4 + 2, pool.Capacity(Classes.CpuShort));
        Assert.Equal(2, pool.Capacity(Classes.CpuLong));
        Assert.Equal(8 + 2, pool.Capacity(Classes.Gpu));
        pool.Release(anyW, Id("t1"));
        Assert.Equal(1, pool.Capacity(Classes.CpuLong));

        // A draining worker with nothing left counts for nothing, so the class's tasks wait queued.
        pool.Drain(shortW);
        pool.Release(anyW, Id("t2"));
        Assert.Equal(0, pool.Capacity(Classes.CpuShort));
        Assert.Equal(8, pool.Capacity(Classes.Gpu));
    }

    [Fact]
    public void Free_credits_sum_the_credits_of_non_draining_workers_serving_the_class()
    {
        var pool = new WorkerPool();
        Assert.Equal(0, pool.FreeCredits(Classes.CpuShort));
        pool.Join("s1", Info("short", classes: Classes.CpuShort), 3, T0);
        var (any, _) = pool.Join("s2", Info("any"), 5, T0);
        pool.Join("s3", Info("gpu", gpus: 1, classes: Classes.Gpu), 7, T0);
        Assert.Equal(8, pool.FreeCredits(Classes.CpuShort));
        Assert.Equal(12, pool.FreeCredits(Classes.Gpu));
        Assert.Equal(5, pool.FreeCredits(Classes.CpuLong));

        pool.Assign(Id("t1"), Classes.CpuLong, 0);
        Assert.Equal(4, pool.FreeCredits(Classes.CpuLong));
        pool.Drain(any);
        Assert.Equal(0, pool.FreeCredits(Classes.CpuLong));
        Assert.Equal(3, pool.FreeCredits(Classes.CpuShort));
        Assert.Equal(4, any.Credits);
    }
}

public sealed class WorkerPoolFreeCreditsTests
{
    private static readonly DateTimeOffset T0 = DateTimeOffset.Parse("2026-11-24T00:00:00Z");

    [Fact]
    public void Free_credits_for_several_classes_count_each_worker_once()
    {
        var pool = new WorkerPool();
        pool.Join("a", new WorkerInfo("a", "h", 4, 0, 0, null, null), 3, T0);                                     // every class
        pool.Join("b", new WorkerInfo("b", "h", 4, 0, 0, new HashSet<string> { Classes.CpuLong }, null), 2, T0);    // one of them
        pool.Join("c", new WorkerInfo("c", "h", 4, 0, 0, new HashSet<string> { Classes.Gpu }, null), 7, T0);        // neither
        var d = pool.Join("d", new WorkerInfo("d", "h", 4, 0, 0, null, null), 5, T0).Joined;
        pool.Drain(d);                                                                                              // leaving

        var both = new HashSet<string> { Classes.CpuShort, Classes.CpuLong };
        Assert.Equal(5, pool.FreeCredits(both));
        // Summed class by class, worker a would count twice.
        Assert.Equal(8, pool.FreeCredits(Classes.CpuShort) + pool.FreeCredits(Classes.CpuLong));
    }
}
