using Sparky.IntegrationTests.Support;

namespace Sparky.IntegrationTests.Daemon;

/// <summary>
/// <c>bench_noop_classes</c> (for bench/overhead): tasks of those classes run nothing and succeed at once, recorded as a
/// real attempt is; every other class still runs its processes.
/// </summary>
public sealed class NoopExecutorTests
{
    [Fact]
    public async Task A_noop_class_runs_nothing_and_records_a_succeeded_attempt_while_other_classes_still_run()
    {
        await using var d = await TestDaemon.StartAsync(new() { ["bench_noop_classes"] = "cpu_short" });
        var skipped = Path.Combine(d.WorkDir, "noop-ran");
        var ran = Path.Combine(d.WorkDir, "long-ran");

        var noop = await d.SubmitShellAsync($"touch '{skipped}'; exit 3", cls: "cpu_short");
        var real = await d.SubmitShellAsync($"touch '{ran}'; exit 3", cls: "cpu_long");

        var n = await d.WaitAsync(noop);
        Assert.Equal("succeeded", (string?)n["state"]);
        Assert.Equal(0, (int?)n["exit_code"]);
        Assert.Equal(1, (int?)n["attempts"]);
        Assert.NotNull(n["started_at"]);
        Assert.False(File.Exists(skipped), "a task of a no-op class ran its command");

        var r = await d.WaitAsync(real);
        Assert.Equal("failed", (string?)r["state"]);
        Assert.Equal(3, (int?)r["exit_code"]);
        Assert.True(File.Exists(ran), "a task of another class did not run");
    }

    [Fact]
    public async Task A_daemon_without_the_setting_runs_every_class()
    {
        await using var d = await TestDaemon.StartAsync();
        var ran = Path.Combine(d.WorkDir, "ran");
        var id = await d.SubmitShellAsync($"touch '{ran}'", cls: "cpu_short");
        Assert.Equal("succeeded", (string?)(await d.WaitAsync(id))["state"]);
        Assert.True(File.Exists(ran));
    }
}
