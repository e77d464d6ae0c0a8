using System.Text.Json.Nodes;
using static Sparky.Plans.Tests.PlanFileTests;

namespace Sparky.Plans.Tests;

/// <summary>What a failed phase does to the work still running or still waiting to be submitted, and the wait itself.</summary>
public class PlanStoppingTests
{
    private const string Yaml = """
        name: s
        phases:
          - name: p
            workstreams:
              - {name: a, run: ./a.sh}
              - {name: b, run: ./b.sh}
              - {name: opt, run: ./opt.sh, on_failure: continue}
          - name: q
            workstreams:
              - {name: c, run: ./c.sh}
        """;

    private static (Plan Plan, PlanState State) Submitted()
    {
        var plan = Parse(Yaml);
        var state = PlanEngine.Begin(plan, PlanState.Empty);
        foreach (var x in PlanEngine.Decide(plan, state).Decisions) state = state.Apply(plan, x);
        return (plan, state);
    }

    private static SubmitWait Wait(int attempt = 1) => new(attempt, 429, "the daemon's queue is full", 1000, 1500, 1);

    [Fact]
    public void A_failed_workstream_cancels_its_running_continue_siblings_and_stops_at_once()
    {
        var (plan, state) = Submitted();
        state = state.Finished("p", "b", 1, true);
        state = state.Finished("p", "a", 1, false, "boom");
        var stop = PlanEngine.Decide(plan, state);
        Assert.Equal(PlanStatus.Stopped, stop.Status);
        Assert.Equal(new PlanStopped("p", "workstream 'a' failed: boom"), stop.Decisions[0]);
        var cancel = Assert.Single(stop.Decisions.OfType<CancelWorkstream>());
        Assert.Equal(new CancelWorkstream("p", "opt", plan.Phases[0].Workstreams[2].Hash, 1, "cancelled: workstream 'a' failed: boom"), cancel);

        foreach (var x in stop.Decisions) state = state.Apply(plan, x);
        Assert.Equal(new WorkstreamRecord(WorkstreamStatus.Failed, plan.Phases[0].Workstreams[2].Hash, 1, "cancelled: workstream 'a' failed: boom"), state.Of("p", "opt"));
        // The cancelled task's own end, arriving later, changes nothing; deciding again cancels nothing more.
        Assert.Same(state, state.Finished("p", "opt", 1, false, "task cancelled"));
        Assert.Empty(PlanEngine.Decide(plan, state).Decisions.OfType<CancelWorkstream>());
        Assert.Equal(PlanStatus.Stopped, PlanEngine.Decide(plan, state).Status);
    }

    [Fact]
    public void Running_siblings_that_must_succeed_finish_first_but_continue_ones_are_cancelled_meanwhile()
    {
        var (plan, state) = Submitted();
        state = state.Finished("p", "a", 1, false, "boom");
        var wait = PlanEngine.Decide(plan, state);
        Assert.Equal((PlanStatus.Running, "p"), (wait.Status, wait.CurrentPhase));
        Assert.Equal(["cancel p/opt#1"], wait.Decisions.Select(Driver.Describe));
        foreach (var x in wait.Decisions) state = state.Apply(plan, x);
        Assert.Empty(PlanEngine.Decide(plan, state).Decisions);

        state = state.Finished("p", "b", 1, true);
        var stop = PlanEngine.Decide(plan, state);
        Assert.Equal(["stopped at p: workstream 'a' failed: boom", "block q"], stop.Decisions.Select(Driver.Describe));

        // The next run submits what did not succeed: the failed one and the cancelled one.
        foreach (var x in stop.Decisions) state = state.Apply(plan, x);
        var d = new Driver(plan, state).Rerun(plan);
        d.Run();
        Assert.Equal(["submit p/a#2", "submit p/opt#2", "submit q/c#1", "succeeded"], d.Log);
    }

    [Fact]
    public void A_workstream_waiting_to_be_submitted_is_pending_and_a_failed_sibling_cancels_it_without_waiting()
    {
        var (plan, state) = Submitted();
        state = state.WaitingToSubmit("p", "b", Wait());
        Assert.Equal(Wait(), state.WaitOf("p", "b"));
        Assert.Equal(WorkstreamStatus.Running, state.Of("p", "b").Status);
        Assert.Empty(PlanEngine.Decide(plan, state).Decisions); // waiting is running, as far as the plan goes

        var report = PlanJson.Report(plan, state);
        Assert.Equal("running", (string?)report["status"]);
        Assert.Equal("waiting to submit p/b: the daemon's queue is full (429); trying again with backoff", (string?)report["waiting"]);
        var b = report["phases"]![0]!["workstreams"]![1]!;
        Assert.Equal("pending", (string?)b["status"]);
        Assert.Equal(429, (int?)b["waiting"]!["status"]);
        Assert.Equal(1500, (long?)b["waiting"]!["retry_at"]);
        Assert.Null(report["phases"]![0]!["workstreams"]![0]!["waiting"]);

        state = state.Finished("p", "a", 1, false, "boom");
        var stop = PlanEngine.Decide(plan, state);
        Assert.Equal(PlanStatus.Stopped, stop.Status);
        Assert.Equal(["cancel p/b#1", "cancel p/opt#1"], stop.Decisions.OfType<CancelWorkstream>().Select(Driver.Describe));
        foreach (var x in stop.Decisions) state = state.Apply(plan, x);
        // Never submitted: not started (not failed), and the stop's reason names only the one that failed.
        Assert.Equal(WorkstreamStatus.NotStarted, state.Of("p", "b").Status);
        Assert.Equal("cancelled: workstream 'a' failed: boom", state.Of("p", "b").Reason);
        Assert.True(state.Waiting.IsEmpty);
        Assert.Equal("workstream 'a' failed: boom", PlanEngine.Decide(plan, state).Decisions.OfType<PlanStopped>().Single().Reason);
        Assert.Null(PlanJson.Report(plan, state)["waiting"]);
    }

    [Fact]
    public void A_wait_ends_when_the_workstream_is_submitted_or_ends_and_is_not_stored()
    {
        var (plan, state) = Submitted();
        Assert.Same(state, state.WaitingToSubmit("p", "a", Wait(attempt: 2)));      // not the running attempt
        Assert.Same(state, state.WaitingToSubmit("q", "c", Wait()));               // not running
        var waiting = state.WaitingToSubmit("p", "a", Wait());
        Assert.Null(waiting.Submitted("p", "a").WaitOf("p", "a"));
        Assert.Null(waiting.Finished("p", "a", 1, true).WaitOf("p", "a"));
        Assert.True(waiting.Finished("p", "a", 1, true).Waiting.IsEmpty);
        // A restarted daemon finds out again by submitting what has no tasks: the wait is not part of the stored state.
        var back = PlanJson.ReadState(JsonNode.Parse(PlanJson.State(waiting).ToJsonString()));
        Assert.True(back.Waiting.IsEmpty);
        Assert.Equal(waiting.Of("p", "a"), back.Of("p", "a"));
    }

    [Fact]
    public void The_submit_backoff_doubles_up_to_its_bound_and_never_undercuts_retry_after()
    {
        Assert.Equal([0.5, 1, 2, 4, 8, 16, 30, 30], Enumerable.Range(1, 8).Select(n => SubmitWait.Delay(n).TotalSeconds));
        Assert.Equal(30, SubmitWait.Delay(1000).TotalSeconds);
        Assert.Equal(1, SubmitWait.Delay(1, retryAfterSeconds: 1).TotalSeconds);
        Assert.Equal(4, SubmitWait.Delay(4, retryAfterSeconds: 1).TotalSeconds);
        Assert.Equal(30, SubmitWait.Delay(1, retryAfterSeconds: 3600).TotalSeconds); // bounded whatever the daemon says
    }
}
