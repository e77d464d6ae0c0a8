using Sparky.Core.Scheduling;
using Sparky.Core.Tasks;

namespace Sparky.Core.Tests.Scheduling;

public sealed class PortAllocatorTests
{
    private static PortAllocator Range(int first, int last, ISet<int>? inUse = null) =>
        new(first, last, port => inUse is null || !inUse.Contains(port));

    [Fact]
    public void A_port_is_never_given_twice_while_held()
    {
        var ports = Range(40000, 40099);
        var got = Enumerable.Range(0, 100).Select(i => ports.Reserve("t" + i)).ToList();
        Assert.All(got, p => Assert.NotNull(p));
        Assert.Equal(100, got.Distinct().Count());
        Assert.Null(ports.Reserve("one-too-many"));
        Assert.Equal(100, ports.HeldCount);
    }

    [Fact]
    public void A_holder_asking_again_keeps_its_port()
    {
        var ports = Range(40000, 40009);
        var first = ports.Reserve("a");
        Assert.Equal(first, ports.Reserve("a"));
        Assert.Equal(first, ports.PortOf("a"));
        Assert.Equal(1, ports.HeldCount);
    }

    [Fact]
    public void A_port_in_use_outside_Sparky_is_skipped()
    {
        var inUse = new HashSet<int> { 40000, 40002 };
        var ports = Range(40000, 40003, inUse);
        Assert.Equal(40001, ports.Reserve("a"));
        Assert.Equal(40003, ports.Reserve("b"));
        Assert.Null(ports.Reserve("c"));
        inUse.Clear();
        Assert.Equal(40000, ports.Reserve("c"));
    }

    [Fact]
    public void Released_ports_come_back_last_first_in_turn()
    {
        var ports = Range(40000, 40002);
        Assert.Equal(40000, ports.Reserve("a"));
        Assert.Equal(40001, ports.Reserve("b"));
        ports.Release("a");
        // The range's unused port comes first; the one just released after it.
        Assert.Equal(40002, ports.Reserve("c"));
        Assert.Equal(40000, ports.Reserve("d"));
        Assert.Null(ports.Reserve("e"));
        ports.Release("b");
        ports.Release("nobody");
        Assert.Equal(40001, ports.Reserve("e"));
    }

    [Fact]
    public void A_port_held_again_after_a_restart_goes_to_no_other_task()
    {
        var ports = Range(40000, 40001);
        Assert.True(ports.Hold("running", 40000));
        Assert.True(ports.Hold("running", 40000));
        Assert.False(ports.Hold("other", 40000));
        Assert.Equal(40001, ports.Reserve("new"));
        Assert.Null(ports.Reserve("newer"));
    }

    [Theory]
    [InlineData(0, 10)]
    [InlineData(10, 9)]
    [InlineData(1, 65536)]
    public void A_bad_range_is_refused(int first, int last) =>
        Assert.Throws<ArgumentException>(() => new PortAllocator(first, last, _ => true));

    [Fact]
    public void A_task_with_gpus_gets_the_rendezvous_and_world_size()
    {
        var spec = TaskSpec.Of(["true"], null, TaskOptions.None);
        Assert.True(DistributedEnv.WantsPort(spec, gpus: 2));
        Assert.False(DistributedEnv.WantsPort(spec, gpus: 0));
        Assert.True(DistributedEnv.WantsPort(spec with { Port = true }, gpus: 0));
        var env = DistributedEnv.Local(spec, gpus: 2, port: 29501);
        Assert.Equal("127.0.0.1", env["MASTER_ADDR"]);
        Assert.Equal("29501", env["MASTER_PORT"]);
        Assert.Equal("29501", env["SPARKY_PORT"]);
        Assert.Equal("2", env["SPARKY_GPUS"]);
        Assert.Equal("2", env["WORLD_SIZE"]);
        Assert.Equal("2", env["LOCAL_WORLD_SIZE"]);
        Assert.Equal("1", env["NNODES"]);
        Assert.Equal("0", env["NODE_RANK"]);
    }

    [Fact]
    public void Procs_per_node_overrides_the_gpu_count_and_a_port_alone_sets_no_world()
    {
        var spec = TaskSpec.Of(["true"], null, new TaskOptions { ProcsPerNode = 8 });
        Assert.Equal("8", DistributedEnv.Local(spec, gpus: 2, port: 29502)["WORLD_SIZE"]);
        var portOnly = DistributedEnv.Local(TaskSpec.Of(["true"], null, new TaskOptions { Port = true }), gpus: 0, port: 29503);
        Assert.Equal(["MASTER_ADDR", "MASTER_PORT", "SPARKY_PORT"], portOnly.Keys.Order().ToArray());
    }

    [Fact]
    public void A_worker_task_gets_its_world_from_the_daemon_and_its_port_from_its_worker_which_together_are_the_local_set()
    {
        var spec = TaskSpec.Of(["true"], null, TaskOptions.None);
        var fromDaemon = DistributedEnv.Local(spec, gpus: 2, port: null);
        Assert.DoesNotContain(fromDaemon.Keys, k => k is "MASTER_ADDR" or "MASTER_PORT" or "SPARKY_PORT");
        var onWorker = new Dictionary<string, string>(fromDaemon);
        foreach (var (k, v) in DistributedEnv.Port(29507)) onWorker[k] = v;
        Assert.Equal(DistributedEnv.Local(spec, gpus: 2, port: 29507), onWorker);
    }
}
