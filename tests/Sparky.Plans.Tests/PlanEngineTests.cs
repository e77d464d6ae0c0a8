using FsCheck.Xunit;
using Sparky.Core.Tasks;
using static Sparky.Plans.Tests.PlanFileTests;

namespace Sparky.Plans.Tests;

/// <summary>Carries out the engine's decisions the way the daemon will, with outcomes the test chooses.</summary>
internal sealed class Driver(Plan plan, PlanState state)
{
    public Plan Plan { get; set; } = plan;
    public PlanState State { get; set; } = state;
    public List<string> Log { get; } = [];

    /// <summary>Runs until the plan succeeds or stops; every submitted workstream and gate ends at once.</summary>
    public PlanStep Run(Func<string, bool>? workstreamSucceeds = null, Func<string, bool>? gatePasses = null)
    {
        for (int i = 0; i < 1000; i++)
        {
            var step = PlanEngine.Decide(Plan, State);
            foreach (var d in step.Decisions)
            {
                State = State.Apply(Plan, d);
                Log.Add(Describe(d));
            }
            if (step.Status != PlanStatus.Running) return step;
            foreach (var d in step.Decisions)
            {
                if (d is SubmitWorkstream s)
                {
                    bool ok = workstreamSucceeds?.Invoke($"{s.Phase.Name}/{s.Workstream.Name}") ?? true;
                    State = State.Finished(s.Phase.Name, s.Workstream.Name, s.Attempt, ok, ok ? null : "task x failed: exit code 1");
                }
                else if (d is RunGate g)
                {
                    bool ok = gatePasses?.Invoke(g.Phase.Name) ?? true;
                    State = State.GateFinished(g.Phase, g.Phase.Gate.Select(_ => ok ? new CheckResult(true, "fine") : Gates.FromRun(1, "nope")).ToList());
                }
            }
            Assert.NotEmpty(step.Decisions);    // with everything ended at once, waiting would never end
        }
        throw new InvalidOperationException("the plan never ended");
    }

    /// <summary>A new <c>plan run</c> of <paramref name="plan"/> over the stored state.</summary>
    public Driver Rerun(Plan plan, string? from = null)
    {
        Plan = plan;
        State = PlanEngine.Begin(plan, State, from);
        Log.Clear();
        return this;
    }

    public static string Describe(PlanDecision d) => d switch
    {
        SubmitWorkstream s => $"submit {s.Phase.Name}/{s.Workstream.Name}#{s.Attempt}",
        CancelWorkstream c => $"cancel {c.Phase}/{c.Workstream}#{c.Attempt}",
        RunGate g => $"gate {g.Phase.Name}",
        Block b => $"block {b.Phase}",
        PlanSucceeded => "succeeded",
        PlanStopped s => $"stopped at {s.Phase}: {s.Reason}",
        _ => d.ToString()!,
    };
}

public class PlanEngineTests
{
    private const string ThreePhases = """
        name: three
        phases:
          - name: prepare
            workstreams:
              - {name: fetch, run: ./fetch.sh}
              - {name: tokenize, run: ./tok.sh}
            gate:
              - run: test -s data/tokens.bin
          - name: train
            workstreams:
              - {name: sft, run: ./train.sh, retries: 2}
            gate:
              - metric: {file: out/eval.json, path: accuracy, min: 0.8}
          - name: report
            workstreams:
              - {name: summary, run: ./report.sh}
              - {name: upload, run: ./upload.sh}
        """;

    private static Driver Fresh(string yaml = ThreePhases)
    {
        var plan = Parse(yaml);
        return new Driver(plan, PlanEngine.Begin(plan, PlanState.Empty));
    }

    [Fact]
    public void A_whole_run_goes_phase_by_phase_with_each_gate_between()
    {
        var d = Fresh();
        var end = d.Run();
        Assert.Equal(PlanStatus.Succeeded, end.Status);
        Assert.Null(end.CurrentPhase);
        Assert.Equal([
            "submit prepare/fetch#1", "submit prepare/tokenize#1", "gate prepare",
            "submit train/sft#1", "gate train",
            "submit report/summary#1", "submit report/upload#1",
            "succeeded"], d.Log);
        Assert.All(d.Plan.Phases, p => Assert.Equal(PhaseStatus.Passed, PlanEngine.StatusOf(d.Plan, d.State, p)));
    }

    [Fact]
    public void The_first_step_names_the_current_phase_and_waits_while_work_runs()
    {
        var d = Fresh();
        var first = PlanEngine.Decide(d.Plan, d.State);
        Assert.Equal(("prepare", PlanStatus.Running), (first.CurrentPhase, first.Status));
        foreach (var x in first.Decisions) d.State = d.State.Apply(d.Plan, x);
        // Submitted and running: nothing more to do until an outcome arrives (Decide again changes nothing).
        var again = PlanEngine.Decide(d.Plan, d.State);
        Assert.Empty(again.Decisions);
        Assert.Equal(PhaseStatus.Running, PlanEngine.StatusOf(d.Plan, d.State, d.Plan.Phases[0]));
        d.State = d.State.Finished("prepare", "fetch", 1, true);
        Assert.Empty(PlanEngine.Decide(d.Plan, d.State).Decisions);
        d.State = d.State.Finished("prepare", "tokenize", 1, true);
        var gate = Assert.IsType<RunGate>(Assert.Single(PlanEngine.Decide(d.Plan, d.State).Decisions));
        d.State = d.State.Apply(d.Plan, gate);
        Assert.Equal(PhaseStatus.Gating, PlanEngine.StatusOf(d.Plan, d.State, d.Plan.Phases[0]));
        Assert.Empty(PlanEngine.Decide(d.Plan, d.State).Decisions);
        Assert.Equal(PhaseStatus.Pending, PlanEngine.StatusOf(d.Plan, d.State, d.Plan.Phases[1]));
    }

    [Fact]
    public void A_failing_gate_stops_the_plan_and_blocks_the_later_phases_with_the_reason()
    {
        var d = Fresh();
        var end = d.Run(gatePasses: phase => phase != "train");
        Assert.Equal(PlanStatus.Stopped, end.Status);
        Assert.Equal("train", end.CurrentPhase);
        var reason = "the gate of phase 'train' failed: check 1 (metric out/eval.json accuracy >= 0.8) failed: nope";
        Assert.Equal([
            "submit prepare/fetch#1", "submit prepare/tokenize#1", "gate prepare",
            "submit train/sft#1", "gate train",
            $"stopped at train: {reason}", "block report"], d.Log);
        Assert.Equal(new Block("report", $"phase 'train' stopped the plan: {reason}"), end.Decisions[1]);
        Assert.Equal(PhaseStatus.Passed, PlanEngine.StatusOf(d.Plan, d.State, d.Plan.Phases[0]));
        Assert.Equal(PhaseStatus.Failed, PlanEngine.StatusOf(d.Plan, d.State, d.Plan.Phases[1]));
        Assert.Equal(PhaseStatus.Blocked, PlanEngine.StatusOf(d.Plan, d.State, d.Plan.Phases[2]));
        Assert.Equal(WorkstreamStatus.Blocked, d.State.Of("report", "summary").Status);
        Assert.Equal($"phase 'train' stopped the plan: {reason}", d.State.Of("report", "upload").Reason);
        var gate = d.State.GateOf("train");
        Assert.Equal([false], gate.Results!.Select(r => r.Passed));
        // Deciding again on the stopped state says the same: a restarted daemon does not run anything.
        Assert.Equal(end.Decisions, PlanEngine.Decide(d.Plan, d.State).Decisions);
    }

    [Fact]
    public void Running_again_after_fixing_the_condition_resumes_at_the_failed_gate_without_resubmitting()
    {
        var d = Fresh();
        d.Run(gatePasses: phase => phase != "train");
        var end = d.Rerun(d.Plan).Run();
        Assert.Equal(PlanStatus.Succeeded, end.Status);
        Assert.Equal(["gate train", "submit report/summary#1", "submit report/upload#1", "succeeded"], d.Log);
    }

    [Fact]
    public void A_failed_workstream_stops_the_plan_and_a_rerun_submits_only_it_with_fresh_ids()
    {
        var d = Fresh();
        var end = d.Run(workstreamSucceeds: w => w != "prepare/tokenize");
        Assert.Equal(PlanStatus.Stopped, end.Status);
        Assert.Equal([
            "submit prepare/fetch#1", "submit prepare/tokenize#1",
            "stopped at prepare: workstream 'tokenize' failed: task x failed: exit code 1", "block train", "block report"], d.Log);
        Assert.Equal(PhaseStatus.Failed, PlanEngine.StatusOf(d.Plan, d.State, d.Plan.Phases[0]));

        d.Rerun(d.Plan).Run();
        Assert.Equal(["submit prepare/tokenize#2", "gate prepare", "submit train/sft#1", "gate train",
                      "submit report/summary#1", "submit report/upload#1", "succeeded"], d.Log);
    }

    [Fact]
    public void A_phase_waits_for_running_siblings_before_it_stops()
    {
        var d = Fresh();
        foreach (var x in PlanEngine.Decide(d.Plan, d.State).Decisions) d.State = d.State.Apply(d.Plan, x);
        d.State = d.State.Finished("prepare", "fetch", 1, false, "boom");
        var wait = PlanEngine.Decide(d.Plan, d.State);
        Assert.Equal((PlanStatus.Running, "prepare"), (wait.Status, wait.CurrentPhase));
        Assert.Empty(wait.Decisions);
        d.State = d.State.Finished("prepare", "tokenize", 1, true);
        var stop = PlanEngine.Decide(d.Plan, d.State);
        Assert.Equal(new PlanStopped("prepare", "workstream 'fetch' failed: boom"), stop.Decisions[0]);
        Assert.Equal(WorkstreamStatus.Succeeded, d.State.Of("prepare", "tokenize").Status);
    }

    [Fact]
    public void After_a_full_run_a_second_run_of_the_same_file_does_nothing_but_succeed()
    {
        var d = Fresh();
        d.Run();
        Assert.Equal(PlanStatus.Succeeded, d.Rerun(Parse(ThreePhases)).Run().Status);
        Assert.Equal(["succeeded"], d.Log);
    }

    [Fact]
    public void A_changed_workstream_reruns_it_and_everything_in_later_phases_but_not_its_siblings()
    {
        var d = Fresh();
        d.Run();
        d.Rerun(Parse(ThreePhases.Replace("./fetch.sh", "./fetch.sh --fresh"))).Run();
        Assert.Equal(["submit prepare/fetch#2", "gate prepare", "submit train/sft#2", "gate train",
                      "submit report/summary#2", "submit report/upload#2", "succeeded"], d.Log);
    }

    [Fact]
    public void A_changed_workstream_in_the_last_phase_reruns_only_it()
    {
        var d = Fresh();
        d.Run();
        d.Rerun(Parse(ThreePhases.Replace("./upload.sh", "./upload.sh --to s3"))).Run();
        Assert.Equal(["submit report/upload#2", "succeeded"], d.Log);
    }

    [Fact]
    public void A_changed_gate_runs_again_without_rerunning_the_work()
    {
        var d = Fresh();
        d.Run();
        d.Rerun(Parse(ThreePhases.Replace("min: 0.8", "min: 0.85"))).Run();
        Assert.Equal(["gate train", "succeeded"], d.Log);
    }

    [Fact]
    public void From_forces_that_phase_and_every_later_one()
    {
        var d = Fresh();
        d.Run();
        d.Rerun(d.Plan, from: "train").Run();
        Assert.Equal(["submit train/sft#2", "gate train", "submit report/summary#2", "submit report/upload#2", "succeeded"], d.Log);
        d.Rerun(d.Plan, from: "prepare").Run();
        Assert.Equal(8, d.Log.Count);
        Assert.StartsWith("submit prepare/fetch#2", d.Log[0]);
        var e = Assert.Throws<ArgumentException>(() => PlanEngine.Begin(d.Plan, d.State, "trian"));
        Assert.StartsWith("no phase named 'trian' (phases: prepare, train, report)", e.Message);
    }

    [Fact]
    public void On_failure_continue_lets_the_gate_and_the_next_phases_run_and_a_rerun_tries_it_again()
    {
        var yaml = ThreePhases.Replace("{name: tokenize, run: ./tok.sh}", "{name: tokenize, run: ./tok.sh, on_failure: continue}");
        var d = Fresh(yaml);
        var end = d.Run(workstreamSucceeds: w => w != "prepare/tokenize");
        Assert.Equal(PlanStatus.Succeeded, end.Status);
        Assert.Equal(WorkstreamStatus.Failed, d.State.Of("prepare", "tokenize").Status);
        Assert.Equal(PhaseStatus.Passed, PlanEngine.StatusOf(d.Plan, d.State, d.Plan.Phases[0]));
        Assert.Contains("gate prepare", d.Log);

        d.Rerun(d.Plan).Run();
        Assert.Equal(["submit prepare/tokenize#2", "gate prepare", "succeeded"], d.Log);
    }

    [Fact]
    public void A_daemon_restarted_mid_phase_waits_for_what_runs_and_never_resubmits_what_finished()
    {
        var d = Fresh();
        foreach (var x in PlanEngine.Decide(d.Plan, d.State).Decisions) d.State = d.State.Apply(d.Plan, x);
        d.State = d.State.Finished("prepare", "fetch", 1, true);
        var stored = d.State;     // what the store holds at kill -9

        // The restarted daemon decides on the stored state as it is.
        Assert.Empty(PlanEngine.Decide(d.Plan, stored).Decisions);
        // Even a user's `plan run` on top keeps the running and the finished.
        Assert.Equal(stored.Workstreams, PlanEngine.Begin(d.Plan, stored).Workstreams);

        var after = new Driver(d.Plan, stored.Finished("prepare", "tokenize", 1, true));
        after.Run();
        Assert.DoesNotContain(after.Log, l => l.StartsWith("submit prepare/"));
        Assert.Equal("gate prepare", after.Log[0]);
    }

    [Fact]
    public void A_late_outcome_of_an_old_attempt_changes_nothing()
    {
        var d = Fresh();
        foreach (var x in PlanEngine.Decide(d.Plan, d.State).Decisions) d.State = d.State.Apply(d.Plan, x);
        var before = d.State;
        Assert.Same(before, d.State.Finished("prepare", "fetch", 7, true));
        Assert.Same(before, d.State.Finished("prepare", "nope", 1, true));
    }

    [Fact]
    public void A_workstream_running_with_an_old_spec_is_cancelled_and_submitted_again()
    {
        var d = Fresh();
        foreach (var x in PlanEngine.Decide(d.Plan, d.State).Decisions) d.State = d.State.Apply(d.Plan, x);
        var changed = Parse(ThreePhases.Replace("./fetch.sh", "./fetch2.sh"));
        var step = PlanEngine.Decide(changed, PlanEngine.Begin(changed, d.State));
        Assert.Equal(["cancel prepare/fetch#1", "submit prepare/fetch#2"], step.Decisions.Select(Driver.Describe));
    }

    [Fact]
    public void A_phase_without_a_gate_passes_when_its_workstreams_do()
    {
        var d = Fresh("""
            name: nogate
            phases:
              - name: a
                workstreams: [{name: x, run: x}]
              - name: b
                workstreams: [{name: y, run: y}]
            """);
        d.Run();
        Assert.Equal(["submit a/x#1", "submit b/y#1", "succeeded"], d.Log);
    }

    [Fact]
    public void Gate_results_record_the_first_failing_check()
    {
        var plan = Parse("""
            name: g
            phases:
              - name: p
                workstreams: [{name: x, run: x}]
                gate:
                  - file: a.txt
                  - {name: enough, metric: {file: m.json, path: n, min: 3}}
            """);
        var state = PlanState.Empty.GateFinished(plan.Phases[0], [new CheckResult(true, "a.txt exists"), new CheckResult(false, "line one\nn = 2, below the minimum 3\n")]);
        Assert.Equal(GateStatus.Failed, state.GateOf("p").Status);
        Assert.Equal("check 2 (enough) failed: n = 2, below the minimum 3", state.GateOf("p").Reason);
        var partial = PlanState.Empty.GateFinished(plan.Phases[0], [new CheckResult(true, "ok")]);
        Assert.Equal((GateStatus.Failed, "1 of 2 checks ran"), (partial.GateOf("p").Status, partial.GateOf("p").Reason));
    }

    [Fact]
    public void Workstream_outcomes_from_task_states()
    {
        Assert.Null(PlanEngine.Outcome([TaskState.Succeeded, TaskState.Running]));
        Assert.Null(PlanEngine.Outcome([TaskState.Failed, TaskState.Queued]));
        Assert.True(PlanEngine.Outcome([TaskState.Succeeded, TaskState.Succeeded]));
        Assert.False(PlanEngine.Outcome([TaskState.Succeeded, TaskState.Cancelled]));
        Assert.False(PlanEngine.Outcome([TaskState.Failed]));
    }
}
