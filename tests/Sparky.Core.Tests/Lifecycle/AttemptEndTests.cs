using Sparky.Core.Lifecycle;
using Sparky.Core.Scheduling;
using Sparky.Core.Tasks;

namespace Sparky.Core.Tests.Lifecycle;

/// <summary>
/// What an attempt's end means, apart from any process or store: stops and their precedence, exits, retries with
/// backoff, and the requeues a lost worker earns. The clock and the jitter are passed in.
/// </summary>
public sealed class AttemptEndTests
{
    private static readonly DateTimeOffset Now = new(2026, 12, 3, 12, 0, 0, TimeSpan.Zero);
    private static readonly RetryPolicy Policy = new(TimeSpan.FromSeconds(1), TimeSpan.FromMinutes(1));

    /// <summary>An end from its stop and exit to its decision, as the engine asks (no OOM unless said).</summary>
    private static EndDecision End(StopReason stop, AttemptExit exit, int attempt = 1, int retries = 0, int lost = 0, bool oom = false, bool shim = false)
    {
        var (outcome, reason, _) = AttemptEnd.Outcome(stop, exit, shim);
        return AttemptEnd.Settle(outcome, reason, stop, oom, attempt, retries, lost, Policy, jitter: 0.5, Now);
    }

    [Fact]
    public void A_clean_exit_succeeds_and_a_failure_retries_after_its_backoff_until_the_retries_are_spent()
    {
        Assert.Equal(new EndDecision(TaskState.Succeeded, null, null, 0), End(StopReason.None, new(0, null), retries: 2));
        // base·2^(n-1) scaled by 0.5 + 0.5·jitter: 0.75 s after the first failure, 1.5 s after the second.
        Assert.Equal(Now.AddSeconds(0.75), End(StopReason.None, new(3, null), attempt: 1, retries: 2).RetryAt);
        Assert.Equal(Now.AddSeconds(1.5), End(StopReason.None, new(3, null), attempt: 2, retries: 2).RetryAt);
        var last = End(StopReason.None, new(3, null), attempt: 3, retries: 2);
        Assert.Equal((TaskState.Failed, Reasons.NonZeroExit, (DateTimeOffset?)null), (last.Outcome, last.Reason, last.RetryAt));
        Assert.Equal(Reasons.Signal, End(StopReason.None, new(null, 9)).Reason);
    }

    [Fact]
    public void A_timeout_fails_even_when_the_task_exits_0_on_its_sigterm_and_then_retries()
    {
        var stop = StopReason.None;
        Assert.True(AttemptEnd.TryStop(ref stop, StopReason.Timeout));
        var end = End(stop, new(0, null), retries: 1);
        Assert.Equal((TaskState.Failed, Reasons.Timeout), (end.Outcome, end.Reason));
        Assert.Equal(Now.AddSeconds(0.75), end.RetryAt);
    }

    [Fact]
    public void A_cancel_racing_an_exit_is_cancelled_whatever_the_exit_and_never_retried()
    {
        var stop = StopReason.None;
        Assert.True(AttemptEnd.TryStop(ref stop, StopReason.Cancel));
        Assert.False(AttemptEnd.TryStop(ref stop, StopReason.Cancel)); // a second cancel signals nothing more
        foreach (var exit in new AttemptExit[] { new(0, null), new(1, null), new(null, 15), new(null, null) })
        {
            var end = End(stop, exit, retries: 5);
            Assert.Equal((TaskState.Cancelled, Reasons.Cancelled, (DateTimeOffset?)null), (end.Outcome, end.Reason, end.RetryAt));
        }
    }

    [Fact]
    public void A_timeout_gives_way_to_a_cancel_or_a_failed_dependency_and_nothing_gives_way_to_a_timeout()
    {
        var stop = StopReason.None;
        AttemptEnd.TryStop(ref stop, StopReason.Timeout);
        Assert.True(AttemptEnd.TryStop(ref stop, StopReason.Cancel)); // the user's cancel of a timed-out attempt: signalled again
        Assert.Equal(StopReason.Cancel, stop);
        Assert.False(AttemptEnd.TryStop(ref stop, StopReason.DependencyFailed));
        Assert.False(AttemptEnd.TryStop(ref stop, StopReason.Timeout));
        Assert.Equal(StopReason.Cancel, stop);

        var chained = StopReason.Timeout;
        Assert.True(AttemptEnd.TryStop(ref chained, StopReason.DependencyFailed));
        Assert.False(AttemptEnd.TryStop(ref chained, StopReason.Cancel));
        Assert.Equal(StopReason.DependencyFailed, chained);
    }

    [Fact]
    public void A_dependency_failing_mid_chain_fails_the_running_attempt_and_never_retries_it()
    {
        var end = End(StopReason.DependencyFailed, new(null, 9), retries: 3);
        Assert.Equal((TaskState.Failed, Reasons.DependencyFailed, (DateTimeOffset?)null), (end.Outcome, end.Reason, end.RetryAt));
    }

    [Fact]
    public void A_payload_its_class_has_no_handler_for_fails_without_a_retry()
    {
        var end = End(StopReason.None, new(null, null, Reasons.NoHandler), retries: 3);
        Assert.Equal((TaskState.Failed, Reasons.NoHandler, (DateTimeOffset?)null), (end.Outcome, end.Reason, end.RetryAt));
    }

    [Fact]
    public void A_lost_worker_requeues_its_task_at_once_without_a_retry_up_to_the_bound_then_its_retries_apply()
    {
        var lost = new AttemptExit(null, null, Reasons.WorkerLost);
        int requeues = 0;
        for (int attempt = 1; attempt <= AttemptEnd.MaxLostRequeues; attempt++)
        {
            var end = End(StopReason.None, lost, attempt, retries: 0, lost: requeues);
            Assert.Equal(Now, end.RetryAt); // at once: the task did nothing wrong
            Assert.Equal(attempt, end.LostRequeues);
            requeues = end.LostRequeues;
        }
        var spent = End(StopReason.None, lost, AttemptEnd.MaxLostRequeues + 1, retries: 0, lost: requeues);
        Assert.Equal((TaskState.Failed, Reasons.WorkerLost, (DateTimeOffset?)null), (spent.Outcome, spent.Reason, spent.RetryAt));
        // With a retry left, the next loss waits its backoff like any failure.
        var withRetry = End(StopReason.None, lost, AttemptEnd.MaxLostRequeues + 1, retries: 1, lost: requeues);
        Assert.True(withRetry.RetryAt > Now);
        // An adopt deadline that passes ends the attempt the same way: worker_lost, queued again at once.
        Assert.Equal(Now, End(StopReason.None, lost, attempt: 1).RetryAt);
    }

    [Fact]
    public void An_exit_through_the_shim_says_its_signal_an_unknown_exit_is_lost_and_an_oom_kill_names_itself()
    {
        var (_, reason, exit) = AttemptEnd.Outcome(StopReason.None, new(137, null), underShim: true);
        Assert.Equal((137, 9, Reasons.Signal), (exit.ExitCode!.Value, exit.Signal!.Value, reason));
        // Not under the shim, 137 is an exit code like any other.
        Assert.Null(AttemptEnd.Outcome(StopReason.None, new(137, null), underShim: false).Exit.Signal);
        var unknown = End(StopReason.None, new(null, null), retries: 1);
        Assert.Equal((TaskState.Failed, Reasons.Lost), (unknown.Outcome, unknown.Reason));
        Assert.NotNull(unknown.RetryAt);
        Assert.Equal(Reasons.OutOfMemory, End(StopReason.None, new(null, 9), oom: true).Reason);
        Assert.Equal(Reasons.OutOfMemory, End(StopReason.None, new(1, null), oom: true).Reason);
        // A stop's reason stands over an OOM kill seen while stopping; a clean exit is a success whatever was counted.
        Assert.Equal(Reasons.Cancelled, End(StopReason.Cancel, new(null, 9), oom: true).Reason);
        Assert.Equal(TaskState.Succeeded, End(StopReason.None, new(0, null), oom: true).Outcome);
    }
}
