using Sparky.Core.Scheduling;
using Sparky.Core.Tasks;

namespace Sparky.Core.Tests.Scheduling;

/// <summary>Chain starts: a Slurm task submitted while the Slurm job it depends on still runs (afterok).</summary>
public sealed class ChainTests
{
    private static readonly DateTimeOffset T0 = DateTimeOffset.Parse("2026-11-25T00:00:00Z");
    private static TaskId Id(string s) => TaskId.Parse(s);

    private static Scheduler Make(HashSet<TaskId>? final = null) =>
        new(new Dictionary<string, int> { ["gpu_slurm"] = 10, ["cpu_short"] = 10 })
        {
            ChainClasses = new HashSet<string> { "gpu_slurm" },
            CanChainOn = id => final is null || final.Contains(id),
        };

    [Fact]
    public void A_chain_task_starts_once_its_dependency_runs_and_names_it()
    {
        var s = Make();
        s.Add(Id("a"), "gpu_slurm", 0, [], false);
        s.Add(Id("b"), "gpu_slurm", 1, [Id("a")], false);
        Assert.Equal([Id("a")], s.TakeStartable(T0).Select(x => x.Id));
        Assert.Equal([Id("b")], s.TakeStartable(T0).Select(x => x.Id));
        Assert.Equal([Id("a")], s.RunningDepsOf(Id("b")));
        // Once a succeeded, b's job no longer waits for anything.
        s.Finished(Id("a"), TaskState.Succeeded);
        Assert.Empty(s.RunningDepsOf(Id("b")));
    }

    [Fact]
    public void No_chain_on_a_dependency_that_may_still_retry_or_that_is_not_a_chain_class()
    {
        var s = Make(final: []);
        s.Add(Id("a"), "gpu_slurm", 0, [], false);
        s.Add(Id("b"), "gpu_slurm", 1, [Id("a")], false);
        s.Add(Id("c"), "cpu_short", 2, [], false);
        s.Add(Id("d"), "gpu_slurm", 3, [Id("c")], false);
        Assert.Equal(["a", "c"], s.TakeStartable(T0).Select(x => x.Id.Value).Order());
        Assert.Empty(s.TakeStartable(T0));
        s.Finished(Id("a"), TaskState.Succeeded);
        s.Finished(Id("c"), TaskState.Succeeded);
        Assert.Equal(["b", "d"], s.TakeStartable(T0).Select(x => x.Id.Value).Order());
    }

    [Fact]
    public void A_failed_dependency_stops_a_chained_task_and_fails_what_waits_behind_it()
    {
        var s = Make();
        s.Add(Id("a"), "gpu_slurm", 0, [], false);
        s.Add(Id("b"), "gpu_slurm", 1, [Id("a")], false);
        s.Add(Id("c"), "cpu_short", 2, [Id("b")], false);
        s.TakeStartable(T0);
        Assert.Equal([Id("b")], s.TakeStartable(T0).Select(x => x.Id));
        var ds = s.Finished(Id("a"), TaskState.Failed);
        var stop = Assert.IsType<Decision.FailRunning>(Assert.Single(ds));
        Assert.Equal((Id("b"), Reasons.DependencyFailed), (stop.Id, stop.Reason));
        Assert.Equal(1, s.Running("gpu_slurm"));
        // When the stopped task is reported finished, its own dependants fail.
        var next = s.Finished(Id("b"), TaskState.Failed);
        Assert.Equal(Id("c"), Assert.IsType<Decision.Fail>(Assert.Single(next)).Id);
        Assert.Equal(0, s.ActiveCount);
    }
}
