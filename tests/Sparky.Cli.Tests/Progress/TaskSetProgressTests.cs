using System.Text.Json.Nodes;
using Spectre.Console;
using Sparky.Cli.Progress;
using static Sparky.Cli.Tests.Top.TopViewTests;

namespace Sparky.Cli.Tests.Progress;

/// <summary>What a wait and a plan show of their tasks: done/total, rate, ETA, and a task's own progress.</summary>
public sealed class TaskSetProgressTests
{
    private static JsonObject Progress(string id, double done, double total, string message) => new()
    {
        ["id"] = id, ["class"] = "cpu_short",
        ["progress"] = new JsonObject { ["done"] = done, ["total"] = total, ["message"] = message },
    };

    [Fact]
    public void A_wait_counts_ends_measures_the_rate_and_gives_an_eta()
    {
        var ids = Enumerable.Range(0, 10).Select(i => $"t{i}").ToList();
        var w = new TaskSetProgress(ids, "waiting", Now);
        Assert.Equal("waiting: 0/10 done, 10 queued", w.PlainLine(Now));
        // Two end in the first two seconds: one a second, eight left.
        w.Saw(Task("t0", "a", "succeeded", finished: Now.AddSeconds(1)), Now.AddSeconds(1));
        w.Saw(Task("t1", "b", "failed", finished: Now.AddSeconds(2), exit: 1), Now.AddSeconds(2));
        Assert.False(w.Apply("task.started", new JsonObject { ["id"] = "t2" }, Now.AddSeconds(2)));
        Assert.Equal("waiting: 2/10 done, 1 failed, 1 running, 7 queued, 1.0/s, ETA 8s", w.PlainLine(Now.AddSeconds(2)));
        Assert.True(w.Apply("task.finished", new JsonObject { ["id"] = "t2" }, Now.AddSeconds(2)));
        Assert.False(w.Apply("task.finished", new JsonObject { ["id"] = "other" }, Now.AddSeconds(2)));
        Assert.Equal(["t2", "t3", "t4", "t5", "t6", "t7", "t8", "t9"], w.Pending);
        foreach (var id in ids.Skip(2)) w.Saw(Task(id, id, "succeeded", finished: Now.AddSeconds(5)), Now.AddSeconds(5));
        Assert.True(w.Done);
        Assert.Equal("waiting: 10/10 done, 1 failed in 6.0s", w.PlainLine(Now.AddSeconds(6)));
    }

    [Fact]
    public void A_running_tasks_own_progress_shows_with_its_eta_in_a_line_and_as_a_bar()
    {
        var w = new TaskSetProgress(["job"], "waiting", Now);
        w.Saw(Task("job", "train [red]", "running", started: Now), Now);
        w.Apply("task.progress", Progress("job", 10, 100, "epoch 1"), Now.AddSeconds(1));
        w.Apply("task.progress", Progress("job", 20, 100, "epoch 2"), Now.AddSeconds(11));
        // Ten a second... no: ten in ten seconds, so eighty more take eighty seconds.
        Assert.Equal("waiting: 0/1 done, 1 running; job (train [red]): 20/100 epoch 2, ETA 1m20s", w.PlainLine(Now.AddSeconds(11)));
        var lines = w.LiveLines(Now.AddSeconds(11), 80);
        Assert.All(lines.Select(Markup.Remove), l => Assert.InRange(TermText.Width(l), 0, 80));
        var task = Markup.Remove(lines[1]);
        Assert.Contains("job (train [red])", task);
        Assert.Contains("██░░░░░░░░ 20/100 epoch 2, ETA 1m20s", task);
        // A progress read with the task (its `progress` field) counts as well as an event.
        var r = new TaskSetProgress(["job"], "waiting", Now);
        r.Saw(Task("job", "x", "running", started: Now, progress: """{"message":"warming up"}"""), Now);
        Assert.EndsWith("; job (x): warming up", r.PlainLine(Now));
    }

    [Fact]
    public void Plain_lines_come_on_a_change_at_most_once_a_second_and_the_last_always()
    {
        var throttle = new LineThrottle();
        Assert.Equal("a", throttle.Next("k1", "a", Now));
        Assert.Null(throttle.Next("k2", "b", Now.AddMilliseconds(500)));
        Assert.Equal("b2", throttle.Next("k2", "b2", Now.AddSeconds(1)));
        // Only the rate moved: no line.
        Assert.Null(throttle.Next("k2", "b3", Now.AddSeconds(5)));
        Assert.Equal("done", throttle.Next("k3", "done", Now.AddSeconds(5.1), final: true));
        Assert.Null(throttle.Next("k3", "done", Now.AddSeconds(6), final: true));
    }

    [Fact]
    public void The_rate_is_over_a_window_and_unknown_until_a_second_has_passed()
    {
        var m = new RateMeter(TimeSpan.FromSeconds(10));
        m.Add(Now, 0);
        Assert.Null(m.PerSecond(Now.AddMilliseconds(500)));
        for (int s = 1; s <= 30; s++) m.Add(Now.AddSeconds(s), s < 20 ? s * 10 : 190);
        // Nothing ended in the last ten seconds of thirty: the rate is low, not the average since the start.
        Assert.InRange(m.PerSecond(Now.AddSeconds(30))!.Value, 0, 1.5);
        Assert.Null(new RateMeter().Eta(5, Now));
        Assert.Equal(TimeSpan.Zero, m.Eta(0, Now));
        Assert.Equal("2.5/s", RateMeter.RateText(2.5));
        Assert.Equal("30/min", RateMeter.RateText(0.5));
        Assert.Equal("1h05m", RateMeter.DurationText(TimeSpan.FromMinutes(65)));
    }

    [Fact]
    public void A_tasks_progress_is_read_leniently()
    {
        Assert.Equal("45/100 epoch 5", TaskProgress.Of(JsonNode.Parse("""{"done":45,"total":100,"message":"epoch 5"}"""))!.Text);
        Assert.Equal("2.5", TaskProgress.Of(JsonNode.Parse("""{"done":2.5}"""))!.Text);
        Assert.Null(TaskProgress.Of(JsonNode.Parse("""{"done":"many","message":""}""")));
        Assert.Null(TaskProgress.Of(null));
        Assert.Null(TaskProgress.Of(JsonNode.Parse("[1]")));
        Assert.Null(TaskProgress.Of(JsonNode.Parse("""{"done":1,"total":0}"""))!.Fraction);
        Assert.Equal(1, TaskProgress.Of(JsonNode.Parse("""{"done":150,"total":100}"""))!.Fraction);
    }
}
