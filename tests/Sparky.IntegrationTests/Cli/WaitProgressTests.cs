using System.Diagnostics;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Sparky.IntegrationTests.Support;

namespace Sparky.IntegrationTests.Cli;

/// <summary><c>sparky wait</c> and <c>submit --wait</c> off a terminal: progress as plain lines on stderr, one per
/// change at most once a second, and the last; stdout keeps its table (or its JSON, with no line beside it).</summary>
public sealed class WaitProgressTests
{
    [Fact]
    public async Task Wait_prints_plain_progress_lines_on_stderr_at_most_one_a_second_and_the_final_one()
    {
        await using var d = await TestDaemon.StartAsync(new() { ["cpu_short_slots"] = "2" });
        var server = new[] { "--server", d.Daemon.Url };
        var submitted = await SparkyCli.RunAsync(["submit", "--array", "0-7", .. server, "--", "sleep", "0.4"]);
        Assert.Equal(0, submitted.ExitCode);
        var ids = submitted.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(8, ids.Length);

        var clock = Stopwatch.StartNew();
        var waited = await SparkyCli.RunAsync(["wait", .. ids, .. server]);
        var seconds = clock.Elapsed.TotalSeconds;
        Assert.True(waited.ExitCode == 0, waited.Stdout + waited.Stderr);
        Assert.Contains(ids[7], waited.Stdout);
        Assert.DoesNotContain('\u001b', waited.Stderr);
        var lines = waited.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.All(lines, l => Assert.Matches(@"^waiting: \d/8 done", l));
        Assert.Matches(@"^waiting: 8/8 done in \d", lines[^1]);
        var done = lines.Select(l => int.Parse(Regex.Match(l, @"^waiting: (\d)/").Groups[1].Value)).ToList();
        Assert.Equal(done.Order(), done);
        // Not a flood: a line a second at most, and the last.
        Assert.True(lines.Length <= (int)seconds + 2, $"{lines.Length} lines in {seconds:0.0}s:\n{waited.Stderr}");
    }

    [Fact]
    public async Task Submit_wait_says_the_ids_then_the_progress_and_exits_with_the_tasks_code_and_json_stays_alone()
    {
        await using var d = await TestDaemon.StartAsync();
        var server = new[] { "--server", d.Daemon.Url };
        // The task runs until the running line has been printed: a fixed run (1.5 s, then 3 s) raced the throttle's
        // second, which starts at a first line that a loaded machine can print late.
        var go = Path.Combine(d.WorkDir, "go");
        var (code, lines, stdout) = await RunReadingStderrAsync(["submit", "--wait", .. server, "--", "sh", "-c", $"while [ ! -e {go} ]; do sleep 0.05; done; exit 3"],
            line => { if (line == "waiting: 0/1 done, 1 running") File.WriteAllText(go, ""); });
        Assert.Equal(3, code);
        Assert.Matches("^[0-9a-z]{11}$", lines[0]);
        Assert.Contains("waiting: 0/1 done, 1 running", lines);
        Assert.Matches(@"^waiting: 1/1 done, 1 failed in \d", lines[^1]);
        Assert.Contains("failed", stdout);

        var json = await SparkyCli.RunAsync(["submit", "--wait", "--json", .. server, "--", "true"]);
        Assert.Equal(0, json.ExitCode);
        Assert.Equal("", json.Stderr);
        Assert.Equal("succeeded", (string?)JsonNode.Parse(json.Stdout)!["tasks"]![0]!["state"]);
    }

    /// <summary>Runs sparky, handing each stderr line to <paramref name="seen"/> as it comes; its exit code, stderr
    /// lines and stdout.</summary>
    private static async Task<(int Code, List<string> Stderr, string Stdout)> RunReadingStderrAsync(string[] args, Action<string> seen)
    {
        using var p = Process.Start(SparkyCli.StartInfo(args))!;
        p.StandardInput.Close();
        var stdout = p.StandardOutput.ReadToEndAsync();
        var lines = new List<string>();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        try
        {
            while (await p.StandardError.ReadLineAsync(cts.Token) is { } line)
                if (line.Length > 0)
                {
                    lines.Add(line);
                    seen(line);
                }
            await p.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"sparky {string.Join(' ', args)} did not finish in 60 s; stderr so far:\n{string.Join('\n', lines)}");
        }
        return (p.ExitCode, lines, await stdout);
    }
}
