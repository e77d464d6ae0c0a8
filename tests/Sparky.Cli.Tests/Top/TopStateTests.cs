using System.Text.Json.Nodes;
using Sparky.Cli.Top;
using static Sparky.Cli.Tests.Top.TopViewTests;

namespace Sparky.Cli.Tests.Top;

/// <summary>How events, full reads and keys move what <c>sparky top</c> knows.</summary>
public sealed class TopStateTests
{
    private static JsonObject Body(string id, string cls = "cpu_short", params (string Key, JsonNode? Value)[] more)
    {
        var o = new JsonObject { ["id"] = id, ["class"] = cls };
        foreach (var (k, v) in more) o[k] = v;
        return o;
    }

    [Fact]
    public void A_task_moves_from_queued_to_running_with_its_progress_to_the_latest_ends()
    {
        var s = new TopState("http://x");
        long t0 = Now.AddSeconds(-20).ToUnixTimeMilliseconds();
        Assert.False(s.Apply("task.queued", t0, Body("a1", more: ("name", "train"))));
        Assert.True(s.Apply("task.started", t0, Body("a1", more: ("attempt", 1))));
        var r = Assert.Single(s.VisibleRunning());
        Assert.Equal(("a1", "train", "cpu_short"), (r.Id, r.Name, r.Class));
        Assert.Equal(Now.AddSeconds(-20), r.StartedAt);
        // Its name came with its submission: nothing to read.
        Assert.Empty(s.TakeUndescribed(10));

        Assert.True(s.Apply("task.progress", t0, Body("a1", more: ("progress", JsonNode.Parse("""{"done":3,"total":4,"message":"almost"}""")))));
        Assert.Equal(0.75, s.VisibleRunning()[0].Progress!.Fraction);
        Assert.Contains(Screen(s), l => l.StartsWith("a1") && l.Contains("3/4 almost"));

        Assert.True(s.Apply("task.finished", Now.ToUnixTimeMilliseconds(), Body("a1", more: [("state", "failed"), ("exit_code", 2), ("duration_ms", 20_000)])));
        Assert.Empty(s.VisibleRunning());
        var e = Assert.Single(s.VisibleEnded());
        Assert.Equal(("a1", "train", "failed", 2, 20_000L), (e.Id, e.Name, e.State, e.ExitCode, e.DurationMs));
    }

    [Fact]
    public void A_task_queued_before_the_view_began_is_read_once_and_a_retry_leaves_the_running_list()
    {
        var s = new TopState("http://x");
        s.Apply("task.started", Now.ToUnixTimeMilliseconds(), Body("old"));
        Assert.Equal(["old"], s.TakeUndescribed(10));
        Assert.Empty(s.TakeUndescribed(10));
        s.Describe(Task("old", "named-later", "running", started: Now.AddSeconds(-1)));
        Assert.Equal("named-later", s.VisibleRunning()[0].Name);
        Assert.True(s.Apply("task.retrying", 0, Body("old")));
        Assert.Equal(0, s.RunningCount);
    }

    [Fact]
    public void A_full_read_replaces_the_running_list_and_keeps_the_ends_and_progress_seen_since()
    {
        var s = Busy();
        s.Apply("task.progress", 0, Body("6h510bbbb00", more: ("progress", JsonNode.Parse("""{"message":"loading"}"""))));
        s.Apply("task.finished", Now.ToUnixTimeMilliseconds(), Body("6h510aaaa00", more: ("state", "succeeded")));
        // The next read no longer lists the finished one as running; the other keeps the progress its event brought.
        s.Apply(new TopSnapshot(null, new JsonArray(Task("6h510bbbb00", "eval", "running", started: Now.AddSeconds(-6))), [], null));
        var r = Assert.Single(s.VisibleRunning());
        Assert.Equal("loading", r.Progress!.Message);
        Assert.Equal(3, s.EndedCount);
        Assert.Equal("6h510aaaa00", s.VisibleEnded()[0].Id);
        // It ended: the GPU it held is free at once, before the next read of the GPUs.
        Assert.Empty(s.Gpus[0].Holders);
        // Classes and GPUs stay as they were when a read did not bring them.
        Assert.Equal(2, s.Classes.Count);
        Assert.Single(s.Gpus);
    }

    [Fact]
    public void Slash_starts_a_filter_typed_text_narrows_the_lists_enter_keeps_it_and_escape_clears_it()
    {
        var s = Busy();
        Assert.Equal(KeyOutcome.Redraw, s.OnKey(new KeyPress('/', ConsoleKey.Oem2)));
        Assert.True(s.Editing);
        // While typing, q is text, not quit.
        foreach (var c in "EVq") s.OnKey(new KeyPress(c, ConsoleKey.A));
        s.OnKey(new KeyPress('\b', ConsoleKey.Backspace));
        Assert.Equal("EV", s.Filter);
        Assert.Equal(["6h510bbbb00"], s.VisibleRunning().Select(r => r.Id));
        Assert.Empty(s.VisibleEnded());
        Assert.Contains("filter: EV_", Screen(s)[0]);
        Assert.Contains(Screen(s), l => l.StartsWith("running 2, 1 matching"));

        s.OnKey(new KeyPress('\r', ConsoleKey.Enter));
        Assert.False(s.Editing);
        Assert.Equal("EV", s.Filter);
        // By class and by id too.
        s.OnKey(new KeyPress('/', ConsoleKey.Oem2));
        s.OnKey(new KeyPress('\u001b', ConsoleKey.Escape));
        Assert.Equal(("", false), (s.Filter, s.Editing));
        Assert.Equal(2, s.VisibleRunning().Count);
        s.OnKey(new KeyPress('/', ConsoleKey.Oem2));
        foreach (var c in "dddd") s.OnKey(new KeyPress(c, ConsoleKey.D));
        s.OnKey(new KeyPress('\r', ConsoleKey.Enter));
        Assert.Equal(["6h510dddd00"], s.VisibleEnded().Select(e => e.Id));
        // Escape outside the prompt clears it; q quits.
        Assert.Equal(KeyOutcome.Redraw, s.OnKey(new KeyPress('\u001b', ConsoleKey.Escape)));
        Assert.Equal("", s.Filter);
        Assert.Equal(KeyOutcome.Quit, s.OnKey(new KeyPress('q', ConsoleKey.Q)));
    }

    [Fact]
    public void The_filter_has_a_length_limit_and_ignores_control_keys()
    {
        var s = new TopState("http://x");
        s.OnKey(new KeyPress('/', ConsoleKey.Oem2));
        for (int i = 0; i < 100; i++) s.OnKey(new KeyPress('a', ConsoleKey.A));
        s.OnKey(new KeyPress('\t', ConsoleKey.Tab));
        s.OnKey(new KeyPress('\0', ConsoleKey.UpArrow));
        Assert.Equal(new string('a', TopState.FilterMax), s.Filter);
    }
}
