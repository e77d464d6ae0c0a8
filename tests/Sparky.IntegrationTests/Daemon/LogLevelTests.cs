using Sparky.IntegrationTests.Support;
using Sparky.Server.Daemon;
using Xunit.Abstractions;

namespace Sparky.IntegrationTests.Daemon;

/// <summary><c>log_level</c> holds back what is less severe than it: the daemon's stderr at the default (information)
/// has the start line and warnings, each line with its level; at warning, the warnings only.</summary>
public sealed class LogLevelTests(ITestOutputHelper output)
{
    /// <summary>A descriptor limit of 4096 leaves room for fewer than max_connections = 10000: the start warns, then
    /// says where it serves. The daemon is stopped (SIGTERM) and waited for, so all it wrote is there to read.</summary>
    private async Task<string> StderrOfAStartAndStopAsync(params string[] extra)
    {
        var root = TestDaemon.NewRoot();
        var port = SparkyCli.FreePort();
        var d = await DaemonProcess.StartWrappedAsync(["sh", "-c", "ulimit -n 4096 && exec \"$@\"", "sh"], Path.Combine(root, "data"), port,
            ["--max-connections", "10000", .. extra]);
        try
        {
            Assert.Equal(0, await d.StopAsync());
            output.WriteLine(d.Stderr);
            return d.Stderr;
        }
        finally
        {
            await d.DisposeAsync();
            try { Directory.Delete(root, true); } catch (IOException) { }
        }
    }

    [Fact]
    public async Task At_the_default_level_the_start_line_and_warnings_are_written_each_with_its_level()
    {
        var lines = (await StderrOfAStartAndStopAsync()).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Contains(lines, l => l.StartsWith("sparky: warning: max_connections 10000 is over what RLIMIT_NOFILE (4096) leaves room for; using ", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("sparky: info: serving on http://127.0.0.1:", StringComparison.Ordinal));
    }

    [Fact]
    public async Task At_warning_the_start_line_is_held_back_and_warnings_are_not()
    {
        var stderr = await StderrOfAStartAndStopAsync("--log-level", "warning");
        Assert.Contains("sparky: warning: max_connections 10000", stderr);
        Assert.DoesNotContain("serving on", stderr);
        Assert.DoesNotContain("sparky: info:", stderr);
        // The CLI's own words are not the daemon's log: they stay.
        Assert.Contains("sparky: stopping", stderr);
    }

    [Fact]
    public async Task None_writes_nothing_and_the_default_writes_the_start_line()
    {
        var root = TestDaemon.NewRoot();
        var lines = new List<string>();
        await using (await SparkyDaemon.StartAsync(TestDaemon.Config(root, new() { ["log_level"] = "none" }), lines.Add)) { }
        Assert.Empty(lines);
        await using (await TestDaemon.StartInProcessAsync(() => SparkyDaemon.StartAsync(TestDaemon.Config(root), lines.Add))) { }
        Assert.StartsWith("sparky: info: serving on ", Assert.Single(lines));
        Directory.Delete(root, true);
    }
}
