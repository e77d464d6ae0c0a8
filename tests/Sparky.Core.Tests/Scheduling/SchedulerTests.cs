using Sparky.Core.Scheduling;
using Sparky.Core.Tasks;

namespace Sparky.Core.Tests.Scheduling;

public sealed class SchedulerTests
{
    private static readonly DateTimeOffset T0 = DateTimeOffset.Parse("2026-11-24T00:00:00Z");
    private static TaskId Id(string s) => TaskId.Parse(s);
    private static List<TaskId> Ids(IEnumerable<Start> starts) => starts.Select(x => x.Id).ToList();

    [Fact]
    public void A_class_never_runs_more_than_its_limit_and_starts_oldest_first()
    {
        var s = new Scheduler(new Dictionary<string, int> { ["cpu_long"] = 2 });
        for (int i = 0; i < 5; i++) s.Add(Id($"t{i}"), "cpu_long", i, [], false);
        Assert.Equal([Id("t0"), Id("t1")], Ids(s.TakeStartable(T0)));
        Assert.Empty(Ids(s.TakeStartable(T0)));
        s.Finished(Id("t0"), TaskState.Succeeded);
        Assert.Equal([Id("t2")], Ids(s.TakeStartable(T0)));
    }

    [Fact]
    public void A_dependant_waits_for_its_dependency_to_succeed()
    {
        var s = new Scheduler(new Dictionary<string, int> { ["cpu_short"] = 4 });
        s.Add(Id("a"), "cpu_short", 1, [], false);
        s.Add(Id("b"), "cpu_short", 2, [Id("a")], false);
        Assert.Equal([Id("a")], Ids(s.TakeStartable(T0)));
        Assert.Empty(Ids(s.TakeStartable(T0)));
        s.Finished(Id("a"), TaskState.Succeeded);
        Assert.Equal([Id("b")], Ids(s.TakeStartable(T0)));
    }

    [Fact]
    public void A_failed_dependency_fails_its_dependants_transitively()
    {
        var s = new Scheduler(new Dictionary<string, int> { ["cpu_short"] = 4 });
        s.Add(Id("a"), "cpu_short", 1, [], false);
        s.Add(Id("b"), "cpu_short", 2, [Id("a")], false);
        s.Add(Id("c"), "cpu_short", 3, [Id("b")], false);
        s.TakeStartable(T0);
        var decisions = s.Finished(Id("a"), TaskState.Failed);
        Assert.Equal([new Decision.Fail(Id("b"), Reasons.DependencyFailed), new Decision.Fail(Id("c"), Reasons.DependencyFailed)], decisions);
        Assert.Equal(0, s.ActiveCount);
    }

    [Fact]
    public void A_dependency_that_already_failed_fails_the_new_task_at_once()
    {
        var s = new Scheduler(new Dictionary<string, int> { ["cpu_short"] = 1 });
        Assert.Equal([new Decision.Fail(Id("x"), Reasons.DependencyFailed)], s.Add(Id("x"), "cpu_short", 1, [], depFailed: true));
        Assert.False(s.Contains(Id("x")));
    }

    [Fact]
    public void A_retry_waits_for_its_backoff_and_frees_the_slot_meanwhile()
    {
        var s = new Scheduler(new Dictionary<string, int> { ["cpu_long"] = 1 });
        s.Add(Id("a"), "cpu_long", 1, [], false);
        s.Add(Id("b"), "cpu_long", 2, [], false);
        Assert.Equal([Id("a")], Ids(s.TakeStartable(T0)));
        s.RetryAt(Id("a"), T0.AddSeconds(2));
        Assert.Equal(T0.AddSeconds(2), s.NextDue());
        Assert.Equal([Id("b")], Ids(s.TakeStartable(T0.AddSeconds(1))));
        s.Finished(Id("b"), TaskState.Succeeded);
        Assert.Empty(Ids(s.TakeStartable(T0.AddSeconds(1.5))));
        Assert.Equal([Id("a")], Ids(s.TakeStartable(T0.AddSeconds(2))));
    }

    [Fact]
    public void Cancelling_a_queued_task_removes_it_and_fails_its_dependants_but_a_running_one_must_be_killed()
    {
        var s = new Scheduler(new Dictionary<string, int> { ["cpu_long"] = 1 });
        s.Add(Id("run"), "cpu_long", 1, [], false);
        s.Add(Id("wait"), "cpu_long", 2, [], false);
        s.Add(Id("dep"), "cpu_long", 3, [Id("wait")], false);
        s.TakeStartable(T0);
        Assert.False(s.TryCancelNotRunning(Id("run"), out _));
        Assert.True(s.TryCancelNotRunning(Id("wait"), out var decisions));
        Assert.Equal([new Decision.Fail(Id("dep"), Reasons.DependencyFailed)], decisions);
        s.Finished(Id("run"), TaskState.Cancelled);
        Assert.Equal(0, s.ActiveCount);
        Assert.Empty(Ids(s.TakeStartable(T0)));
    }

    [Fact]
    public void Retry_backoff_grows_exponentially_with_jitter_and_a_cap()
    {
        var p = new RetryPolicy(TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(10));
        Assert.Equal(TimeSpan.FromSeconds(0.5), p.Delay(1, 0));
        Assert.Equal(TimeSpan.FromSeconds(1), p.Delay(1, 1));
        Assert.Equal(TimeSpan.FromSeconds(4), p.Delay(3, 1));
        Assert.Equal(TimeSpan.FromSeconds(10), p.Delay(20, 1));
        Assert.InRange(p.Delay(2, 0.5).TotalSeconds, 1, 2);
    }
}
