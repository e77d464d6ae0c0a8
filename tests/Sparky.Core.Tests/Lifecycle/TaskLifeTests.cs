using Sparky.Core.Lifecycle;
using Sparky.Core.Tasks;

namespace Sparky.Core.Tests.Lifecycle;

/// <summary>
/// The attempt lifecycle in scenarios, with a fake clock and no I/O (<see cref="LifeHost"/> carries out its effects
/// as the engine does): timeouts, cancels, backoffs, lost workers, adopt deadlines, failing dependencies, and a
/// daemon restart in the middle of each, which keeps only the store and the processes.
/// </summary>
public sealed class TaskLifeTests
{
    private static TimeSpan S(double seconds) => TimeSpan.FromSeconds(seconds);

    [Fact]
    public void A_timeout_stops_the_attempt_kills_it_after_the_grace_and_the_retry_succeeds()
    {
        var h = new LifeHost();
        h.Submit("t", retries: 1, timeout: 10);
        h.Pass(S(9.9));
        Assert.Empty(h.SignalsOf("t"));
        h.Pass(S(0.1));
        Assert.Equal(["TERM"], h.SignalsOf("t"));
        Assert.Equal(Reasons.Timeout, h.Task("t").Attempts[0].Reason); // stored before the signal
        h.Pass(S(4.9)); // it ignores SIGTERM: nothing more until the grace is over
        Assert.Equal(["TERM"], h.SignalsOf("t"));
        h.Pass(S(0.1));
        Assert.Equal(["TERM", "KILL"], h.SignalsOf("t"));
        Assert.Equal(["failed/timeout"], h.AttemptsOf("t"));
        // Backoff: 1 s · (0.5 + 0.5 · 0.5) after the first failure.
        h.Pass(S(0.74));
        Assert.Single(h.Starts);
        h.Pass(S(0.01));
        Assert.Equal((TaskId.Parse("t"), 2), h.Starts[^1]);
        h.Exit("t", 0);
        Assert.Equal(["failed/timeout", "succeeded/"], h.AttemptsOf("t"));
        Assert.Equal(TaskState.Succeeded, h.Task("t").State);
    }

    [Fact]
    public void A_task_that_exits_0_on_its_timeouts_sigterm_still_timed_out_and_without_retries_fails()
    {
        var h = new LifeHost();
        h.Submit("t", timeout: 1);
        h.Pass(S(1));
        h.Exit("t", 0);
        Assert.Equal(["failed/timeout"], h.AttemptsOf("t"));
        Assert.Equal((TaskState.Failed, Reasons.Timeout), (h.Task("t").State, h.Task("t").Reason));
        h.Pass(S(60));
        Assert.Single(h.Starts);
    }

    [Fact]
    public void A_restart_after_the_timeouts_sigterm_signals_again_and_owes_the_kill_the_dead_daemon_owed()
    {
        var h = new LifeHost();
        h.Submit("t", retries: 1, timeout: 10);
        h.Pass(S(12)); // TERM at 10 s; the process ignores it; the daemon dies before the kill at 15 s
        var h2 = h.Restart();
        Assert.Equal(["TERM"], h2.SignalsOf("t"));
        Assert.True(h2.Runs("t", 1));
        h2.Pass(S(5));
        Assert.Equal(["TERM", "KILL"], h2.SignalsOf("t"));
        Assert.Equal(["failed/timeout"], h2.AttemptsOf("t"));
        h2.Pass(S(1));
        h2.Exit("t", 0);
        Assert.Equal(["failed/timeout", "succeeded/"], h2.AttemptsOf("t"));
    }

    [Fact]
    public void A_timeout_counts_from_the_attempts_recorded_start_across_a_restart()
    {
        var h = new LifeHost();
        h.Submit("t", timeout: 10);
        h.Pass(S(5));
        var h2 = h.Restart();
        h2.Pass(S(5)); // the deadline counts from the attempt's recorded start, not from the restart
        Assert.Equal(["TERM"], h2.SignalsOf("t"));
        h2.Pass(S(5));
        Assert.Equal(["TERM", "KILL"], h2.SignalsOf("t"));
        Assert.Equal(["failed/timeout"], h2.AttemptsOf("t"));
    }

    [Fact]
    public void A_cancel_that_comes_before_the_exit_wins_whatever_the_exit_says_and_uses_no_retry()
    {
        var h = new LifeHost();
        h.Submit("t", retries: 3);
        h.Cancel("t");
        Assert.Equal(["TERM"], h.SignalsOf("t"));
        h.Exit("t", 0); // it caught SIGTERM and exited cleanly
        Assert.Equal(["cancelled/cancelled"], h.AttemptsOf("t"));
        Assert.Equal(TaskState.Cancelled, h.Task("t").State);
        h.Pass(S(600));
        Assert.Single(h.Starts);
    }

    [Fact]
    public void A_cancel_that_comes_after_the_exit_changes_nothing()
    {
        var h = new LifeHost();
        h.Submit("t");
        h.Exit("t", 0);
        h.Cancel("t");
        Assert.Empty(h.SignalsOf("t"));
        Assert.Equal(["succeeded/"], h.AttemptsOf("t"));
        Assert.Equal(TaskState.Succeeded, h.Life("t").Outcome);
    }

    [Fact]
    public void A_cancel_outranks_a_timeout_in_force_and_a_timeout_never_outranks_a_cancel()
    {
        var h = new LifeHost();
        h.Submit("late", timeout: 1);
        h.Pass(S(1));
        h.Cancel("late"); // the user cancels an attempt already timed out: recorded cancelled
        h.Exit("late", null, signal: 15);
        Assert.Equal(["cancelled/cancelled"], h.AttemptsOf("late"));

        h.Submit("early", timeout: 1);
        h.Cancel("early");
        h.Pass(S(2)); // its timeout passes while it is being cancelled
        h.Exit("early", null, signal: 15);
        Assert.Equal(["cancelled/cancelled"], h.AttemptsOf("early"));
    }

    [Fact]
    public void A_cancel_acknowledged_before_a_crash_holds_after_the_restart_whether_the_process_ended_meanwhile_or_not()
    {
        var h = new LifeHost();
        h.Submit("still", retries: 3);
        h.Submit("gone", retries: 3);
        h.Cancel("still");
        h.Cancel("gone");
        h.Processes.Remove((TaskId.Parse("gone"), 1)); // it died of the SIGTERM while no daemon watched
        var h2 = h.Restart();
        Assert.Equal(["cancelled/cancelled"], h2.AttemptsOf("gone"));
        Assert.Equal(["TERM"], h2.SignalsOf("still")); // signalled again: the dead daemon's may never have gone
        h2.Exit("still", null, signal: 15);
        Assert.Equal(["cancelled/cancelled"], h2.AttemptsOf("still"));
        h2.Pass(S(600));
        Assert.Empty(h2.Starts);
    }

    [Fact]
    public void A_cancel_during_a_backoff_ends_the_task_at_once_and_it_never_starts_again_even_after_a_restart()
    {
        var h = new LifeHost();
        h.Submit("t", retries: 2);
        h.Exit("t", 1);
        Assert.Equal(TaskState.Queued, h.Task("t").State);
        Assert.Equal(LifeHost.T0.AddSeconds(0.75), h.Life("t").RetryAt);
        h.Cancel("t");
        Assert.Empty(h.SignalsOf("t")); // nothing runs to signal
        Assert.Equal((TaskState.Cancelled, Reasons.Cancelled), (h.Task("t").State, h.Task("t").Reason));
        h.Pass(S(60));
        var h2 = h.Restart();
        h2.Pass(S(60));
        Assert.Single(h.Starts);
        Assert.Empty(h2.Starts);
        Assert.Equal(["failed/exit_code"], h2.AttemptsOf("t"));
    }

    [Fact]
    public void A_restart_during_a_backoff_starts_the_retry_as_the_next_attempt_and_a_cancel_then_stops_it()
    {
        var h = new LifeHost();
        h.Submit("t", retries: 2);
        h.Exit("t", 1);
        var h2 = h.Restart(); // the backoff is not stored: the retry starts at once, numbered on
        Assert.Equal([(TaskId.Parse("t"), 2)], h2.Starts);
        h2.Cancel("t");
        h2.Exit("t", null, signal: 15);
        Assert.Equal(["failed/exit_code", "cancelled/cancelled"], h2.AttemptsOf("t"));
    }

    [Fact]
    public void A_task_whose_worker_is_lost_twice_is_queued_again_at_once_without_using_a_retry()
    {
        var h = new LifeHost();
        h.Submit("t", onWorker: true);
        h.LoseWorker("t");
        h.LoseWorker("t");
        Assert.Equal([1, 2, 3], h.Starts.Select(s => s.Attempt));
        h.Exit("t", 0);
        Assert.Equal(["failed/worker_lost", "failed/worker_lost", "succeeded/"], h.AttemptsOf("t"));
        Assert.Equal(2, h.Life("t").LostRequeues);
    }

    [Fact]
    public void Requeues_after_lost_workers_are_bounded_and_then_the_loss_fails_the_task()
    {
        var h = new LifeHost();
        h.Submit("t", onWorker: true);
        for (int i = 0; i <= AttemptEnd.MaxLostRequeues; i++) h.LoseWorker("t");
        Assert.Equal(AttemptEnd.MaxLostRequeues + 1, h.Starts.Count);
        Assert.Equal((TaskState.Failed, Reasons.WorkerLost), (h.Task("t").State, h.Task("t").Reason));
    }

    [Fact]
    public void A_worker_lost_across_a_restart_is_followed_until_it_comes_back_then_lost_again_and_requeued()
    {
        var h = new LifeHost();
        h.Submit("t", onWorker: true);
        h.LoseWorker("t"); // attempt 2 runs on another worker when the daemon dies
        var h2 = h.Restart(workerTimeout: S(30));
        Assert.Empty(h2.Starts);
        h2.Adopted("t");
        h2.Pass(S(120)); // adopted: its adopt deadline no longer applies
        Assert.Equal(["failed/worker_lost", "running"], h2.AttemptsOf("t"));
        h2.LoseWorker("t");
        h2.Exit("t", 0);
        Assert.Equal(["failed/worker_lost", "failed/worker_lost", "succeeded/"], h2.AttemptsOf("t"));
    }

    [Fact]
    public void An_attempt_whose_worker_does_not_come_back_by_the_adopt_deadline_ends_as_worker_lost_and_runs_again()
    {
        var h = new LifeHost();
        h.Submit("t", onWorker: true);
        var h2 = h.Restart(workerTimeout: S(30));
        Assert.Equal(LifeHost.T0.AddSeconds(60), h2.Life("t").NextTimer);
        h2.Pass(S(59.9));
        Assert.Equal(["running"], h2.AttemptsOf("t"));
        h2.Pass(S(0.1));
        Assert.Equal(["failed/worker_lost", "running"], h2.AttemptsOf("t"));
        Assert.Equal([(TaskId.Parse("t"), 2)], h2.Starts);
    }

    [Fact]
    public void An_attempt_stopped_while_its_worker_was_away_is_signalled_when_the_worker_comes_back()
    {
        var h = new LifeHost();
        h.Submit("t", onWorker: true, timeout: 10);
        var h2 = h.Restart(workerTimeout: S(30));
        h2.Pass(S(10)); // its timeout fires while no worker holds it: the signal reaches nobody
        Assert.Equal(["TERM"], h2.SignalsOf("t"));
        h2.Adopted("t");
        Assert.Equal(["TERM", "TERM"], h2.SignalsOf("t"));
        h2.Exit("t", null, signal: 15);
        Assert.Equal(["failed/timeout"], h2.AttemptsOf("t"));
    }

    [Fact]
    public void A_cancel_of_an_attempt_awaiting_its_worker_ends_it_there_and_one_never_given_to_a_worker_ends_from_queued()
    {
        var h = new LifeHost();
        h.Submit("waiting", onWorker: true);
        h.Cancel("waiting", Withdrawn.Unstarted);
        Assert.Equal(TaskState.Cancelled, h.Task("waiting").State);

        h.Submit("away", onWorker: true, retries: 2);
        var h2 = h.Restart(workerTimeout: S(30));
        h2.Cancel("away", Withdrawn.Started);
        Assert.Empty(h2.SignalsOf("away"));
        Assert.Equal(["cancelled/cancelled"], h2.AttemptsOf("away"));
        h2.Pass(S(120));
        Assert.Empty(h2.Starts);
    }

    [Fact]
    public void A_dependency_failing_mid_chain_fails_the_rest_of_the_chain_unstarted_and_spares_other_branches()
    {
        var h = new LifeHost();
        h.Submit("a");
        h.Submit("b", retries: 1, after: "a");
        h.Submit("c", after: "b");
        h.Submit("d", after: "a");
        h.Exit("a", 0);
        h.Exit("b", 1);
        var h2 = h.Restart(); // b waits out its backoff when the daemon dies: it runs again, numbered on
        Assert.Contains((TaskId.Parse("b"), 2), h2.Starts);
        h2.Exit("b", 1);
        Assert.Equal(["failed/exit_code", "failed/exit_code"], h2.AttemptsOf("b"));
        Assert.Equal((TaskState.Failed, Reasons.DependencyFailed), (h2.Task("c").State, h2.Task("c").Reason));
        Assert.Empty(h2.AttemptsOf("c"));
        h2.Exit("d", 0);
        Assert.Equal(TaskState.Succeeded, h2.Task("d").State);
    }

    [Fact]
    public void A_dependant_started_on_its_dependencys_last_attempt_is_killed_when_it_fails_and_is_not_retried()
    {
        var h = new LifeHost(chain: true) { KillAfterGrace = false };
        h.Submit("a");
        h.Submit("b", retries: 2, after: "a");
        Assert.True(h.Runs("b", 1)); // held by Slurm until a ends (afterok)
        h.Exit("a", 1);
        Assert.Equal(["KILL"], h.SignalsOf("b"));
        Assert.Equal(["failed/dependency_failed"], h.AttemptsOf("b"));
        Assert.Equal(TaskState.Failed, h.Task("b").State);
        h.Pass(S(60));
        Assert.Equal(2, h.Starts.Count);
    }

    [Fact]
    public void A_chained_dependant_recovered_after_a_restart_is_still_killed_when_its_dependency_fails()
    {
        var h = new LifeHost(chain: true) { KillAfterGrace = false };
        h.Submit("a");
        h.Submit("b", retries: 2, after: "a");
        var h2 = h.Restart(); // both are followed again: b's link to a must survive
        h2.Exit("a", 1);
        Assert.Equal(["KILL"], h2.SignalsOf("b"));
        Assert.Equal(["failed/dependency_failed"], h2.AttemptsOf("b"));
        h2.Pass(S(60));
        Assert.Empty(h2.Starts);
    }

    [Fact]
    public void An_exit_for_an_attempt_that_is_not_running_and_a_second_begin_are_refused()
    {
        var life = new TaskLife(TaskId.Parse("t"), retries: 0);
        var outbox = new List<Effect>();
        var ctx = new LifeContext(LifeHost.T0, 0.5, LifeHost.Policy, LifeHost.KillGrace);
        life.Handle(new LifeEvent.Exited(new AttemptExit(0, null)), ctx, outbox);
        Assert.Empty(outbox);
        Assert.Equal(LifePhase.Waiting, life.Phase);
        life.Handle(new LifeEvent.Begin(true), ctx, outbox);
        Assert.Equal([new Effect.Start(1)], outbox);
        Assert.Throws<InvalidOperationException>(() => life.Handle(new LifeEvent.Begin(true), ctx, outbox));
    }
}
