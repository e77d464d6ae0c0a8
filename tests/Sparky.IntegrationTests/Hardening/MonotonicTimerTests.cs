using Sparky.IntegrationTests.Support;

namespace Sparky.IntegrationTests.Hardening;

/// <summary>
/// Issue 13, point 10: timeouts and backoffs run on a monotonic clock. The daemon's wall clock is stepped (as NTP or
/// date -s would) while tasks run: a step forward must not time a task out, a step back must not hold a timeout or
/// a retry back.
/// </summary>
public sealed class MonotonicTimerTests
{
    /// <summary>The system clock, stepped by <see cref="Step"/>; its monotonic timestamps are the real ones.</summary>
    private sealed class SteppedClock : TimeProvider
    {
        private long _offsetTicks;
        public void Step(TimeSpan by) => Interlocked.Add(ref _offsetTicks, by.Ticks);
        public override DateTimeOffset GetUtcNow() => System.GetUtcNow() + TimeSpan.FromTicks(Interlocked.Read(ref _offsetTicks));
    }

    private static async Task WaitRunning(TestDaemon d, string id)
    {
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while ((string?)(await d.GetTaskAsync(id))["state"] != "running")
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException("task never started");
            await Task.Delay(10);
        }
    }

    [Fact]
    public async Task A_wall_clock_step_forward_does_not_time_a_task_out()
    {
        var clock = new SteppedClock();
        await using var d = await TestDaemon.StartAsync(clock: clock);
        // It runs until the clock has stepped, then a second more (a fixed sleep could end before the test saw it run).
        var go = Path.Combine(d.WorkDir, "go");
        var id = await d.SubmitShellAsync($"while [ ! -e {go} ]; do sleep 0.05; done; sleep 1", timeout: 60);
        await WaitRunning(d, id);
        clock.Step(TimeSpan.FromHours(2));
        File.WriteAllText(go, "");
        var t = await d.WaitAsync(id);
        Assert.Equal("succeeded", (string?)t["state"]);
    }

    [Fact]
    public async Task A_wall_clock_step_back_does_not_hold_a_timeout_or_a_retry_back()
    {
        var clock = new SteppedClock();
        await using var d = await TestDaemon.StartAsync(new() { ["retry_base_seconds"] = "0.5" }, clock: clock);
        var timed = await d.SubmitShellAsync("sleep 60", timeout: 1);
        await WaitRunning(d, timed);
        clock.Step(TimeSpan.FromHours(-2));
        var t = await d.WaitAsync(timed, seconds: 30);
        Assert.Equal("timeout", (string?)t["reason"]);

        // Fails once, then its retry (due 0.5 s later by the monotonic clock) must start though the wall went back 2 h.
        var flag = Path.Combine(d.WorkDir, "failed-once");
        var retried = await d.SubmitShellAsync($"if [ -e {flag} ]; then exit 0; fi; touch {flag}; exit 1", retries: 1);
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (!File.Exists(flag)) { if (DateTime.UtcNow > deadline) throw new TimeoutException("first attempt"); await Task.Delay(5); }
        clock.Step(TimeSpan.FromHours(-2));
        var r = await d.WaitAsync(retried, seconds: 30);
        Assert.Equal("succeeded", (string?)r["state"]);
    }
}
