using Microsoft.Extensions.Time.Testing;
using Sparky.Core.Lifecycle;
using Sparky.Core.Scheduling;
using Sparky.Core.Tasks;

namespace Sparky.Core.Tests.Lifecycle;

/// <summary>An attempt's timers on a fake clock: a timeout, the kill after its grace, and how they meet a cancel.</summary>
public sealed class AttemptTimersTests
{
    private static readonly TimeSpan Grace = TimeSpan.FromSeconds(10);
    private static readonly RetryPolicy Policy = new(TimeSpan.FromSeconds(1), TimeSpan.FromMinutes(1));

    /// <summary>One attempt's timer state, as the engine keeps it, driven as the engine's loop drives it.</summary>
    private sealed class Timed(DateTimeOffset? deadline)
    {
        public DateTimeOffset? Deadline = deadline;
        public DateTimeOffset? KillAt;
        public StopReason Stop;
        public readonly List<string> Signals = [];

        public void Pass(DateTimeOffset now)
        {
            var due = AttemptTimers.Due(Deadline, ref KillAt, ref Stop, now);
            if (due.HasFlag(TimerDue.Terminate)) { Signals.Add("TERM"); KillAt = now + Grace; }
            else if (due.HasFlag(TimerDue.Kill)) Signals.Add("KILL");
        }
    }

    [Fact]
    public void A_timeout_sends_sigterm_once_then_sigkill_after_the_grace_and_the_end_is_a_timeout_that_retries()
    {
        var clock = new FakeTimeProvider(new DateTimeOffset(2026, 12, 3, 12, 0, 0, TimeSpan.Zero));
        var start = clock.GetUtcNow();
        var a = new Timed(start.AddSeconds(30));
        Assert.Equal(start.AddSeconds(30), AttemptTimers.Next(a.Deadline, a.KillAt, a.Stop));

        clock.Advance(TimeSpan.FromSeconds(29.9));
        a.Pass(clock.GetUtcNow());
        Assert.Empty(a.Signals); // not yet

        clock.Advance(TimeSpan.FromSeconds(0.1));
        a.Pass(clock.GetUtcNow());
        a.Pass(clock.GetUtcNow()); // a second pass at the same moment owes nothing more
        Assert.Equal(["TERM"], a.Signals);
        Assert.Equal(StopReason.Timeout, a.Stop);
        // Stopped: the timeout no longer wakes the loop; the kill does.
        Assert.Equal(clock.GetUtcNow() + Grace, AttemptTimers.Next(a.Deadline, a.KillAt, a.Stop));

        clock.Advance(Grace);
        a.Pass(clock.GetUtcNow());
        a.Pass(clock.GetUtcNow().AddSeconds(5));
        Assert.Equal(["TERM", "KILL"], a.Signals);
        Assert.Null(AttemptTimers.Next(a.Deadline, a.KillAt, a.Stop));

        // It exits by SIGKILL: a timeout, retried after its backoff (jitter 0: half the base).
        var (outcome, reason, _) = AttemptEnd.Outcome(a.Stop, new AttemptExit(null, 9), underShim: false);
        var end = AttemptEnd.Settle(outcome, reason, a.Stop, false, attempt: 1, retries: 1, lostRequeues: 0, Policy, jitter: 0, clock.GetUtcNow());
        Assert.Equal((TaskState.Failed, Reasons.Timeout, clock.GetUtcNow().AddSeconds(0.5)), (end.Outcome, end.Reason, end.RetryAt));
    }

    [Fact]
    public void A_cancel_before_the_timeout_keeps_the_timeout_from_firing_and_its_end_is_cancelled()
    {
        var now = new DateTimeOffset(2026, 12, 3, 12, 0, 0, TimeSpan.Zero);
        var a = new Timed(now.AddSeconds(30));
        Assert.True(AttemptEnd.TryStop(ref a.Stop, StopReason.Cancel));
        a.KillAt = now + Grace;
        a.Pass(now.AddSeconds(31)); // past the deadline and the grace
        Assert.Equal(["KILL"], a.Signals);
        Assert.Equal(StopReason.Cancel, a.Stop);
        var (outcome, reason, _) = AttemptEnd.Outcome(a.Stop, new AttemptExit(0, null), underShim: false);
        Assert.Equal((TaskState.Cancelled, Reasons.Cancelled), (outcome, reason));
    }

    [Fact]
    public void An_attempt_without_a_timeout_has_no_timer_and_a_far_deadline_does_not_fire_early()
    {
        var now = new DateTimeOffset(2026, 12, 3, 12, 0, 0, TimeSpan.Zero);
        var none = new Timed(null);
        none.Pass(DateTimeOffset.MaxValue);
        Assert.Empty(none.Signals);
        Assert.Null(AttemptTimers.Next(none.Deadline, none.KillAt, none.Stop));
        var far = new Timed(DateTimeOffset.MaxValue);
        far.Pass(now.AddYears(5));
        Assert.Empty(far.Signals);
    }
}
