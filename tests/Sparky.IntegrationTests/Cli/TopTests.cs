using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Sparky.IntegrationTests.Api;
using Sparky.IntegrationTests.Support;

namespace Sparky.IntegrationTests.Cli;

/// <summary><c>sparky top</c> in a real 80×24 terminal (tmux) against a real daemon with two (stand-in) GPUs, and
/// its one-off snapshot where stdout is not a terminal.</summary>
public sealed class TopTests
{
    /// <summary>The executable under test, quoted for the shell tmux runs it in.</summary>
    private static string Sparky => SparkyCli.NativeExe is { } exe ? Quote(exe) : $"dotnet {Quote(SparkyCli.Dll)}";

    private static string Quote(string s) => "'" + s.Replace("'", "'\\''") + "'";

    /// <summary>A task that runs until its file appears in the work directory.</summary>
    private static JsonObject Held(TestDaemon d, string name, string release, string cls = "cpu_short") => new()
    {
        ["class"] = cls,
        ["name"] = name,
        ["payload"] = new JsonObject { ["command"] = $"while [ ! -e {Quote(Path.Combine(d.WorkDir, release))} ]; do sleep 0.05; done" },
    };

    private static async Task<string> RunningAsync(TestDaemon d, JsonObject task)
    {
        var id = (await d.SubmitAsync(task))[0];
        await TaskLifecycleTests.WaitForAsync(async () => (string?)(await d.GetTaskAsync(id))["state"] == "running");
        return id;
    }

    [Fact]
    public async Task Top_in_80x24_shows_a_running_task_follows_its_end_without_a_key_filters_and_quits_with_0()
    {
        Tmux.Require();
        await using var d = await GpuTests.StartWithTwoGpusAsync();
        var trainer = await RunningAsync(d, Held(d, "trainer", "release-trainer", cls: "gpu"));
        var exitFile = Path.Combine(d.Root, "top.exit");
        await using var term = Tmux.Start($"{Sparky} top --server {Quote(d.Daemon.Url)}; echo $? > {Quote(exitFile)}");

        var screen = await term.UntilAsync(s => s.Any(l => l.StartsWith(trainer)) && s.Any(l => l.StartsWith("GPU")), "the running task");
        Assert.StartsWith("sparky top  " + d.Daemon.Url, screen[0]);
        Assert.Contains("q quit", screen[0]);
        Assert.Matches(@"trainer\s+gpu\s+\d+s", screen.Single(l => l.StartsWith(trainer)));
        // Its class: nothing queued, one running, and the limit; the GPU it holds names it.
        Assert.Contains(screen, l => Regex.IsMatch(l, @"^gpu\s+0\s+1\s+\d+\s+0\s+0"));
        Assert.Contains(screen, l => l.StartsWith("GPU  0") && l.Contains(trainer));
        Assert.Contains(screen, l => l.StartsWith("running 1"));

        // It ends: the screen follows, no key pressed.
        File.WriteAllText(Path.Combine(d.WorkDir, "release-trainer"), "");
        screen = await term.UntilAsync(s => s.Any(l => l.StartsWith(trainer) && l.Contains("succeeded"))
            && s.Any(l => Regex.IsMatch(l, @"^gpu\s+0\s+0\s+\d+\s+1\s+0")) && s.Any(l => l.StartsWith("running 0")), "the task's end");
        Assert.Contains(screen, l => l.StartsWith("GPU  0") && l.Contains("idle"));

        // Two more; "/" and text narrow the lists to one, Enter keeps the filter, Escape clears it.
        var alpha = await RunningAsync(d, Held(d, "alpha-job", "release-more"));
        var beta = await RunningAsync(d, Held(d, "beta-job", "release-more"));
        await term.UntilAsync(s => s.Any(l => l.StartsWith(alpha)) && s.Any(l => l.StartsWith(beta)), "both running tasks");
        term.Send("/");
        term.Send("alpha", literal: true);
        screen = await term.UntilAsync(s => s.Any(l => l.StartsWith(alpha)) && !s.Any(l => l.StartsWith(beta)), "the filtered list");
        Assert.Contains("filter: alpha", screen[0]);
        Assert.DoesNotContain(screen, l => l.StartsWith(trainer));
        term.Send("Enter");
        await term.UntilAsync(s => s[0].Contains("filter: alpha") && s[0].Contains("/ edit") && !s.Any(l => l.StartsWith(beta)), "the filter kept");
        term.Send("Escape");
        await term.UntilAsync(s => s.Any(l => l.StartsWith(beta)) && s.Any(l => l.StartsWith(trainer)) && !s[0].Contains("filter:"), "the filter cleared");

        // A wider terminal: the view takes the width.
        term.Resize(120, 30);
        await term.UntilAsync(s => s[0].Length == 120 && s[0].EndsWith("q quit"), "the header across 120 columns");

        term.Send("q");
        await TaskLifecycleTests.WaitForAsync(() => File.Exists(exitFile) && File.ReadAllText(exitFile).Trim().Length > 0);
        Assert.Equal("0", File.ReadAllText(exitFile).Trim());
        File.WriteAllText(Path.Combine(d.WorkDir, "release-more"), "");
    }

    [Fact]
    public async Task Top_with_stdout_not_a_terminal_prints_one_plain_snapshot_or_its_json_and_exits()
    {
        await using var d = await TestDaemon.StartAsync();
        var id = await RunningAsync(d, Held(d, "snap [red]job[/]", "release"));
        var server = new[] { "--server", d.Daemon.Url };

        var plain = await SparkyCli.RunAsync(["top", .. server]);
        Assert.True(plain.ExitCode == 0, plain.Stdout + plain.Stderr);
        Assert.DoesNotContain('\u001b', plain.Stdout);
        var lines = plain.Stdout.Split('\n');
        Assert.StartsWith("sparky top  " + d.Daemon.Url, lines[0]);
        Assert.Contains(lines, l => Regex.IsMatch(l, @"^cpu_short\s+0\s+1\s"));
        Assert.Contains(lines, l => l.StartsWith(id) && l.Contains("snap [red]job[/]"));

        var json = await SparkyCli.RunAsync(["top", "--json", .. server]);
        Assert.Equal(0, json.ExitCode);
        var o = JsonNode.Parse(json.Stdout)!;
        Assert.Equal(id, (string?)o["running"]![0]!["id"]);
        Assert.Equal(1, (int)((JsonArray)o["classes"]!).Single(c => (string?)c!["name"] == "cpu_short")!["running"]!);
        Assert.Empty((JsonArray)o["gpus"]!);

        File.WriteAllText(Path.Combine(d.WorkDir, "release"), "");
        await d.WaitAsync(id);
        var after = await SparkyCli.RunAsync(["top", .. server]);
        Assert.Contains(after.Stdout.Split('\n'), l => l.StartsWith(id) && l.Contains("succeeded"));

        var down = await SparkyCli.RunAsync(["top", "--server", $"http://127.0.0.1:{SparkyCli.FreePort()}"]);
        Assert.Equal(1, down.ExitCode);
        Assert.Contains("cannot reach the daemon", down.Stderr);
    }
}
