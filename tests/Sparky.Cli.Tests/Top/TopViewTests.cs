using System.Text.Json.Nodes;
using Spectre.Console;
using Sparky.Cli.Top;

namespace Sparky.Cli.Tests.Top;

/// <summary>What <c>sparky top</c> draws from a state, as a terminal would show it.</summary>
public sealed class TopViewTests
{
    internal static readonly DateTimeOffset Now = DateTimeOffset.Parse("2026-12-07T12:00:00Z");

    /// <summary>A daemon with two running tasks (one reporting progress), a GPU held by one, and two ends.</summary>
    internal static TopState Busy(string trainName = "train")
    {
        var s = new TopState("http://127.0.0.1:9097") { Live = true };
        s.Apply(new TopSnapshot(
            JsonNode.Parse("""
                {"classes":[{"name":"cpu_short","queued":3,"running":2,"succeeded":40,"failed":1,"cancelled":1,"limit":4},
                            {"name":"gpu","queued":0,"running":0,"succeeded":0,"failed":0,"cancelled":0,"limit":8}]}
                """),
            new JsonArray(
                Task("6h510aaaa00", trainName, "running", started: Now.AddSeconds(-75), progress: """{"done":45,"total":100,"message":"epoch 5"}"""),
                Task("6h510bbbb00", "eval", "running", started: Now.AddSeconds(-5))),
            new JsonArray(
                Task("6h510cccc00", "prep", "succeeded", finished: Now.AddSeconds(-30), exit: 0),
                Task("6h510dddd00", "flaky", "failed", finished: Now.AddSeconds(-10), exit: 3, reason: "exit_code")),
            JsonNode.Parse("""
                {"gpus":[{"index":0,"name":"NVIDIA A100-SXM4-40GB","utilization":0.5,"memory_used_bytes":12884901888,
                          "memory_total_bytes":42949672960,"tasks":[{"id":"6h510aaaa00","gpu_memory_mb":null}]}]}
                """)));
        return s;
    }

    internal static JsonNode Task(string id, string name, string state, DateTimeOffset? started = null, DateTimeOffset? finished = null,
        int? exit = null, string? reason = null, string? progress = null, string cls = "cpu_short") => new JsonObject
    {
        ["id"] = id, ["name"] = name, ["class"] = cls, ["state"] = state, ["exit_code"] = exit, ["reason"] = reason,
        ["started_at"] = (started ?? finished?.AddSeconds(-2))?.ToString("O"), ["finished_at"] = finished?.ToString("O"),
        ["duration_ms"] = finished is null ? null : 2000, ["attempts"] = 1,
        ["progress"] = progress is null ? null : JsonNode.Parse(progress),
    };

    /// <summary>What the screen shows: the markup's text.</summary>
    internal static List<string> Screen(TopState s, int width = 80, int height = 24) =>
        TopView.Lines(s, width, height, Now).Select(Markup.Remove).ToList();

    [Fact]
    public void At_80_by_24_every_part_is_there_and_nothing_is_wider_or_taller_than_the_terminal()
    {
        var lines = TopView.Lines(Busy(), 80, 24, Now);
        var screen = lines.Select(Markup.Remove).ToList();
        Assert.InRange(screen.Count, 1, 24);
        Assert.All(screen, l => Assert.InRange(TermText.Width(l), 0, 80));
        var all = string.Join('\n', screen);
        Assert.StartsWith("sparky top  http://127.0.0.1:9097", screen[0]);
        Assert.Contains("live", screen[0]);
        Assert.Contains("q quit", screen[0]);
        // Per class: queued, running, limit (and the ends).
        Assert.Matches(@"cpu_short\s+3\s+2\s+4\s+40\s+2", all);
        Assert.Matches(@"gpu\s+0\s+0\s+8", all);
        // The running tasks, longest first, with elapsed time; the one reporting progress with a bar, count and message.
        var train = screen.Single(l => l.StartsWith("6h510aaaa00"));
        Assert.Contains("train", train);
        Assert.Contains("1m15s", train);
        Assert.Contains("████░░░░░░ 45/100 epoch 5", train);
        Assert.True(screen.IndexOf(train) < screen.FindIndex(l => l.StartsWith("6h510bbbb00")));
        // The GPU: utilisation, memory, the task holding it.
        var gpu = screen.Single(l => l.StartsWith("GPU"));
        Assert.Contains("50%", gpu);
        Assert.Contains("12.0/40.0 GiB", gpu);
        Assert.Contains("6h510aaaa00", gpu);
        // The latest ends first, with outcome and exit code.
        var flaky = screen.FindIndex(l => l.StartsWith("6h510dddd00"));
        Assert.True(flaky < screen.FindIndex(l => l.StartsWith("6h510cccc00")));
        Assert.Matches(@"flaky\s+cpu_short\s+failed\s+3\s", screen[flaky]);
        Assert.Contains("10s ago", screen[flaky]);
    }

    [Fact]
    public void A_long_name_is_cut_with_an_ellipsis_and_the_columns_stay_where_they_are()
    {
        var s = Busy(trainName: new string('x', 300));
        var screen = Screen(s);
        var train = screen.Single(l => l.StartsWith("6h510aaaa00"));
        var eval = screen.Single(l => l.StartsWith("6h510bbbb00"));
        Assert.Contains("x…", train);
        Assert.DoesNotContain(new string('x', 60), train);
        Assert.Equal(eval.IndexOf("cpu_short"), train.IndexOf("cpu_short"));
        Assert.All(screen, l => Assert.InRange(TermText.Width(l), 0, 80));
    }

    [Fact]
    public void Hostile_names_are_shown_as_text_never_as_markup_or_terminal_codes()
    {
        foreach (var hostile in new[] { "[red]boom[/]", "[bold", "x[/]y", "\u001b[31mred\u001b[0m", "a\nb\rc", "[link=http://evil]x[/]" })
        {
            var s = Busy(trainName: hostile);
            // A task can also end with such a name, and be held on a GPU under such an id.
            s.Apply("task.queued", 0, new JsonObject { ["id"] = "6h510eeee00", ["class"] = "[blue]c", ["name"] = hostile });
            s.Apply("task.started", Now.ToUnixTimeMilliseconds(), new JsonObject { ["id"] = "6h510eeee00", ["class"] = "[blue]c" });
            s.Apply("task.finished", Now.ToUnixTimeMilliseconds(), new JsonObject { ["id"] = "6h510eeee00", ["class"] = "[blue]c", ["state"] = "failed", ["reason"] = "[red]why" });
            // And report it as its progress message.
            s.Apply("task.progress", 0, new JsonObject
            {
                ["id"] = "6h510bbbb00", ["class"] = "cpu_short", ["progress"] = new JsonObject { ["done"] = 1, ["total"] = 2, ["message"] = hostile },
            });
            var lines = TopView.Lines(s, 80, 24, Now);
            // Every line parses as markup (an unescaped "[bold" would throw) and renders without a control character of the task's.
            foreach (var line in lines)
            {
                var ansi = Render(line);
                Assert.DoesNotContain("\u001b[31m", ansi);
                Assert.DoesNotContain('\n', ansi.TrimEnd('\n'));
                Assert.DoesNotContain("\u001b]8;", ansi); // no hyperlink
            }
            var screen = lines.Select(Markup.Remove).ToList();
            var shown = TermText.Visible(hostile);
            var expected = shown.Length > 15 ? shown[..12] : shown;
            Assert.Contains(screen, l => l.StartsWith("6h510aaaa00") && l.Contains(expected));
            Assert.Contains(screen, l => l.StartsWith("6h510eeee00") && l.Contains("[blue]c") && l.Contains("[red]why"));
            Assert.Contains(screen, l => l.StartsWith("6h510bbbb00") && l.Contains("█████░░░░░ 1/2 " + expected));
        }
        Assert.Equal("␛[31mred␛[0m", TermText.Visible("\u001b[31mred\u001b[0m"));
    }

    [Fact]
    public void A_short_terminal_shows_what_fits_and_says_how_many_are_shown()
    {
        var s = Busy();
        for (int i = 0; i < 30; i++)
            s.Apply("task.started", Now.AddSeconds(-i).ToUnixTimeMilliseconds(), new JsonObject { ["id"] = $"6h5200{i:00}000", ["class"] = "cpu_short" });
        var screen = Screen(s, 80, 24);
        Assert.Equal(24, screen.Count);
        Assert.Contains(screen, l => l.StartsWith("running 32,") && l.Contains("shown"));
        // The ends keep their rows: the latest still shows.
        Assert.Contains(screen, l => l.StartsWith("6h510dddd00"));
        // Wider and taller, everything shows, and still fits.
        var big = Screen(s, 160, 60);
        Assert.Equal(32 + 2, big.Count(l => l.StartsWith("6h5")));
        Assert.All(big, l => Assert.InRange(TermText.Width(l), 0, 160));
    }

    [Fact]
    public void A_snapshot_has_every_row_and_no_keys_to_offer()
    {
        var s = Busy();
        var screen = TopView.Lines(s, 200, int.MaxValue, Now, snapshot: true).Select(Markup.Remove).ToList();
        Assert.DoesNotContain("q quit", screen[0]);
        Assert.Contains("2026-12-07", screen[0]);
        Assert.Equal(4, screen.Count(l => l.StartsWith("6h510")));
    }

    [Fact]
    public void A_problem_shows_in_the_header_in_place_of_the_address()
    {
        var s = Busy();
        s.Problem = "no events: connection refused";
        s.Live = false;
        var head = Screen(s)[0];
        Assert.Contains("no events: connection refused", head);
        Assert.Contains("stale", head);
    }

    /// <summary>A markup line as a colour terminal gets it.</summary>
    internal static string Render(string markup)
    {
        var buffer = new StringWriter();
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = AnsiSupport.Yes, ColorSystem = ColorSystemSupport.Standard, Out = new AnsiConsoleOutput(buffer), Interactive = InteractionSupport.No,
        });
        console.Profile.Width = 80;
        console.Markup(markup);
        return buffer.ToString();
    }
}
