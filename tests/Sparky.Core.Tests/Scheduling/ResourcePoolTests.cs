using Sparky.Core.Scheduling;
using Sparky.Core.Tasks;

namespace Sparky.Core.Tests.Scheduling;

public sealed class ResourcePoolTests
{
    private static readonly DateTimeOffset T0 = DateTimeOffset.Parse("2026-11-24T00:00:00Z");
    private static TaskId Id(string s) => TaskId.Parse(s);
    private static ResourcePool EightGpus() =>
        new(16_000, 64_000, Enumerable.Range(0, 8).Select(i => new GpuDevice($"GPU-{i}", 81_920)).ToList());

    [Fact]
    public void Whole_gpus_are_given_once_and_come_back_on_release()
    {
        var pool = EightGpus();
        var a = pool.TryAllocate(new ResourceRequest(0, 0, 5, 0))!;
        var b = pool.TryAllocate(new ResourceRequest(0, 0, 3, 0))!;
        Assert.Equal(8, a.GpuUuids.Concat(b.GpuUuids).Distinct().Count());
        Assert.Null(pool.TryAllocate(new ResourceRequest(0, 0, 1, 0)));
        Assert.Null(pool.TryAllocate(new ResourceRequest(0, 0, 0, 1024)));
        pool.Release(b);
        Assert.Equal(3, pool.IdleGpus);
        Assert.NotNull(pool.TryAllocate(new ResourceRequest(0, 0, 3, 0)));
    }

    [Fact]
    public void Memory_shares_pack_onto_one_gpu_and_never_exceed_its_memory()
    {
        var pool = new ResourcePool(4000, 8000, [new GpuDevice("GPU-a", 40_960), new GpuDevice("GPU-b", 40_960)]);
        var shares = Enumerable.Range(0, 4).Select(_ => pool.TryAllocate(new ResourceRequest(0, 0, 0, 20_480))!).ToList();
        // Best fit: the second share goes beside the first, leaving GPU-b idle for a whole-GPU task...
        Assert.Equal("GPU-a", shares[1].GpuUuids.Single());
        Assert.Equal(["GPU-a", "GPU-a", "GPU-b", "GPU-b"], shares.Select(s => s.GpuUuids.Single()));
        Assert.Null(pool.TryAllocate(new ResourceRequest(0, 0, 0, 1)));
        // ...and a GPU with a share on it is never handed out whole.
        pool.Release(shares[2]);
        Assert.Null(pool.TryAllocate(new ResourceRequest(0, 0, 1, 0)));
        pool.Release(shares[3]);
        Assert.Equal("GPU-b", pool.TryAllocate(new ResourceRequest(0, 0, 1, 0))!.GpuUuids.Single());
    }

    [Fact]
    public void Cpus_and_memory_are_never_oversubscribed_and_unasked_tasks_reserve_nothing()
    {
        var pool = new ResourcePool(2000, 1000, []);
        Assert.NotNull(pool.TryAllocate(new ResourceRequest(1500, 600, 0, 0)));
        Assert.Null(pool.TryAllocate(new ResourceRequest(1000, 0, 0, 0)));
        Assert.Null(pool.TryAllocate(new ResourceRequest(0, 500, 0, 0)));
        Assert.NotNull(pool.TryAllocate(new ResourceRequest(500, 400, 0, 0)));
        for (int i = 0; i < 1000; i++) Assert.Same(Allocation.Empty, pool.TryAllocate(ResourceRequest.None));
        Assert.Equal(2000, pool.UsedMilliCpus);
        Assert.Equal(1000, pool.UsedMemoryMb);
    }

    [Theory]
    [InlineData(0, 0, 9, 0, "asks for 9 GPUs; this machine has 8")]
    [InlineData(0, 0, 0, 90_000, "asks for 90000 MiB on one GPU; the largest here has 81920 MiB")]
    [InlineData(17_000, 0, 0, 0, "asks for 17 CPUs; this machine has 16")]
    [InlineData(0, 64_001, 0, 0, "asks for 64001 MiB of memory; this machine has 64000 MiB")]
    public void A_request_that_can_never_fit_says_why(int mcpu, long mem, int gpus, long gpuMem, string why)
    {
        Assert.Equal(why, EightGpus().WhyNeverFits(new ResourceRequest(mcpu, mem, gpus, gpuMem)));
        Assert.Null(EightGpus().WhyNeverFits(new ResourceRequest(16_000, 64_000, 8, 0)));
    }

    [Fact]
    public void No_gpu_here_refuses_any_gpu_request_and_gpu_class_defaults_to_one_whole_gpu()
    {
        var pool = new ResourcePool(2000, 1000, []);
        var gpuClass = ResourceRequest.Local(Classes.Gpu, ResourceRequest.None, slurmBound: false);
        Assert.Equal(1, gpuClass.Gpus);
        Assert.Contains("none was found", pool.WhyNeverFits(gpuClass));
        Assert.Equal(ResourceRequest.None, ResourceRequest.Local(Classes.Gpu, ResourceRequest.None, slurmBound: true));
        Assert.Equal(ResourceRequest.None, ResourceRequest.Local(Classes.CpuShort, ResourceRequest.None, slurmBound: false));
        // A gpu-class task that asks for a share keeps its share (not a whole GPU on top).
        Assert.Equal(new ResourceRequest(0, 0, 0, 512), ResourceRequest.Local(Classes.Gpu, new ResourceRequest(0, 0, 0, 512), false));
        // With a default share (gpu_memory_default), a gpu task that asks for nothing gets that share, not a whole GPU;
        // one that asks keeps what it asked for, and a Slurm-bound one still reserves nothing here.
        Assert.Equal(new ResourceRequest(0, 0, 0, 20480), ResourceRequest.Local(Classes.Gpu, ResourceRequest.None, false, defaultShareMb: 20480));
        Assert.Equal(new ResourceRequest(0, 0, 2, 0), ResourceRequest.Local(Classes.Gpu, new ResourceRequest(0, 0, 2, 0), false, defaultShareMb: 20480));
        Assert.Equal(ResourceRequest.None, ResourceRequest.Local(Classes.Gpu, ResourceRequest.None, true, defaultShareMb: 20480));
        Assert.Equal(ResourceRequest.None, ResourceRequest.Local(Classes.CpuShort, ResourceRequest.None, false, defaultShareMb: 20480));
    }

    [Fact]
    public void Stored_form_round_trips()
    {
        var r = new ResourceRequest(1500, 2048, 2, 0);
        Assert.Equal(r, ResourceRequest.FromStored(r.ToStored()));
        Assert.Null(ResourceRequest.None.ToStored());
        Assert.Equal(ResourceRequest.None, ResourceRequest.FromStored(null));
    }

    [Fact]
    public void Scheduler_refuses_an_unsatisfiable_task_and_backfills_small_ones_past_a_blocked_big_one()
    {
        var s = new Scheduler(new Dictionary<string, int> { ["gpu"] = 100 },
            new ResourcePool(64_000, 1_000_000, Enumerable.Range(0, 4).Select(i => new GpuDevice($"GPU-{i}", 80_000)).ToList()));
        var fail = Assert.IsType<Decision.Fail>(Assert.Single(s.Add(Id("huge"), "gpu", 0, [], false, new ResourceRequest(0, 0, 5, 0))));
        Assert.StartsWith(Reasons.Unsatisfiable, fail.Reason);

        s.Add(Id("one"), "gpu", 1, [], false, new ResourceRequest(0, 0, 1, 0));
        s.Add(Id("four"), "gpu", 2, [], false, new ResourceRequest(0, 0, 4, 0));
        s.Add(Id("small"), "gpu", 3, [], false, new ResourceRequest(0, 0, 1, 0));
        var started = s.TakeStartable(T0);
        Assert.Equal([Id("one"), Id("small")], started.Select(x => x.Id));
        Assert.Equal(2, s.Pool.IdleGpus);
        s.Finished(Id("one"), TaskState.Succeeded);
        s.Finished(Id("small"), TaskState.Succeeded);
        var four = Assert.Single(s.TakeStartable(T0));
        Assert.Equal(Id("four"), four.Id);
        Assert.Equal(4, four.Allocation.GpuUuids.Count);
    }

    [Fact]
    public void A_blocked_task_is_passed_over_a_bounded_number_of_times_then_its_class_waits_for_it()
    {
        var s = new Scheduler(new Dictionary<string, int> { ["gpu"] = 100 },
            new ResourcePool(64_000, 1_000_000, [new GpuDevice("GPU-0", 80_000), new GpuDevice("GPU-1", 80_000)]));
        s.Add(Id("first"), "gpu", 0, [], false, new ResourceRequest(0, 0, 1, 0));
        Assert.Single(s.TakeStartable(T0));
        s.Add(Id("big"), "gpu", 1, [], false, new ResourceRequest(0, 0, 2, 0));
        // A stream of one-GPU tasks: each could backfill on GPU-1 while "big" waits for both.
        int passed = 0;
        for (int i = 0; i < 1000; i++)
        {
            var small = Id($"s{i}");
            s.Add(small, "gpu", 2 + i, [], false, new ResourceRequest(0, 0, 1, 0));
            var started = s.TakeStartable(T0);
            if (started.Count == 0) break;
            Assert.Equal(small, Assert.Single(started).Id);
            passed++;
            s.Finished(small, TaskState.Succeeded);
        }
        Assert.Equal(64, s.PassOverLimit); // 32 per GPU
        Assert.Equal(s.PassOverLimit, passed);
        s.Finished(Id("first"), TaskState.Succeeded);
        Assert.Equal(Id("big"), s.TakeStartable(T0).First().Id);
    }

    [Fact]
    public void The_scheduler_says_which_running_task_holds_which_gpu_until_it_gives_it_back()
    {
        var s = new Scheduler(new Dictionary<string, int> { ["gpu"] = 100, ["cpu_short"] = 4 },
            new ResourcePool(64_000, 1_000_000, [new GpuDevice("GPU-0", 80_000), new GpuDevice("GPU-1", 80_000)]));
        s.Add(Id("whole"), "gpu", 0, [], false, new ResourceRequest(0, 0, 1, 0));
        s.Add(Id("share"), "gpu", 1, [], false, new ResourceRequest(0, 0, 0, 20_480));
        s.Add(Id("cpu"), "cpu_short", 2, [], false, new ResourceRequest(1000, 0, 0, 0));
        int before = s.GpuHoldersVersion;
        Assert.Equal(3, s.TakeStartable(T0).Count);
        Assert.NotEqual(before, s.GpuHoldersVersion);
        Assert.Equal(["share", "whole"], s.GpuHolders.Keys.Select(k => k.Value).Order());
        Assert.Equal(20_480, s.GpuHolders[Id("share")].Request.GpuMemoryMb);
        Assert.NotEqual(s.GpuHolders[Id("whole")].GpuUuids[0], s.GpuHolders[Id("share")].GpuUuids[0]);

        // A retry's backoff gives its GPU back, and so does an end; a task without a GPU never counts.
        int held = s.GpuHoldersVersion;
        s.Finished(Id("cpu"), TaskState.Succeeded);
        Assert.Equal(held, s.GpuHoldersVersion);
        s.RetryAt(Id("whole"), T0.AddSeconds(1));
        s.Finished(Id("share"), TaskState.Failed);
        Assert.Empty(s.GpuHolders);
        // A re-attached task holds what its environment says it was given.
        s.AddRunning(Id("back"), "gpu", 3, new ResourceRequest(0, 0, 1, 0), ["GPU-1"]);
        Assert.Equal(["GPU-1"], s.GpuHolders[Id("back")].GpuUuids);
    }
}
