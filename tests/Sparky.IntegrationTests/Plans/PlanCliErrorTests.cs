using Sparky.IntegrationTests.Support;

namespace Sparky.IntegrationTests.Plans;

/// <summary>The plan CLI reads the daemon's errors by their HTTP status and problem body, not by their text.</summary>
public sealed class PlanCliErrorTests
{
    [Fact]
    public async Task Errors_only_the_daemon_finds_come_back_one_per_line_with_exit_2()
    {
        await using var d = await TestDaemon.StartAsync();
        var file = Path.Combine(d.WorkDir, "classes.yaml");
        // A fine file (the CLI finds nothing), but two classes this daemon does not have.
        await File.WriteAllTextAsync(file, """
            name: classes
            phases:
              - name: one
                workstreams:
                  - {name: a, run: "true", class: no_such_class}
                  - {name: b, run: "true", class: nor_this_one}
            """);
        var r = await SparkyCli.RunAsync(["plan", "run", file, "--server", d.Daemon.Url]);
        Assert.Equal(2, r.ExitCode);
        var lines = r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(2, lines.Length);
        Assert.Matches(@"^.*classes\.yaml:5:\d+: unknown class 'no_such_class'", lines[0]);
        Assert.Matches(@"^.*classes\.yaml:6:\d+: unknown class 'nor_this_one'", lines[1]);

        // --from names a phase the file does not have: one error, exit 2 as well.
        var from = await SparkyCli.RunAsync(["plan", "run", file, "--from", "nope", "--server", d.Daemon.Url]);
        Assert.Equal(2, from.ExitCode);
        Assert.Contains("no phase named 'nope'", from.Stderr);
    }
}
