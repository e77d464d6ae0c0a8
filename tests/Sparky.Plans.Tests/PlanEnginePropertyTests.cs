using System.Text;
using FsCheck.Xunit;

namespace Sparky.Plans.Tests;

/// <summary>
/// Random plans, random outcomes in a random order, random edits between runs. Whatever happens: no workstream of a
/// phase is submitted before every earlier phase has passed (its workstreams ended well and its gate passed), and a
/// workstream that succeeded with an unchanged spec is never submitted again.
/// </summary>
public class PlanEnginePropertyTests
{
    [Property(MaxTest = 300)]
    public void Never_ahead_of_a_gate_and_never_twice(int seed)
    {
        var rng = new Random(seed);
        int phases = rng.Next(1, 5);
        var runs = Enumerable.Range(0, phases).Select(_ => rng.Next(1, 4)).ToArray();
        var gates = Enumerable.Range(0, phases).Select(_ => rng.Next(0, 3)).ToArray();
        var cont = Enumerable.Range(0, phases).Select(_ => Enumerable.Range(0, 3).Select(_ => rng.Next(4) == 0).ToArray()).ToArray();
        var version = new int[phases, 3];

        string Yaml()
        {
            var sb = new StringBuilder("name: prop\nphases:\n");
            for (int p = 0; p < phases; p++)
            {
                sb.Append($"  - name: p{p}\n    workstreams:\n");
                for (int w = 0; w < runs[p]; w++)
                    sb.Append($"      - {{name: w{w}, run: \"./job {p} {w} v{version[p, w]}\"{(cont[p][w] ? ", on_failure: continue" : "")}}}\n");
                if (gates[p] > 0) sb.Append("    gate:\n");
                for (int g = 0; g < gates[p]; g++) sb.Append($"      - file: out/{p}/{g}\n");
            }
            return sb.ToString();
        }

        var state = PlanState.Empty;
        for (int run = 0; run < 4; run++)
        {
            var plan = PlanFileTests.Parse(Yaml());
            var from = rng.Next(6) == 0 ? plan.Phases[rng.Next(phases)].Name : null;
            int fromIndex = from is null ? int.MaxValue : plan.IndexOf(from);
            var keep = new HashSet<WorkstreamKey>();
            for (int p = 0; p < phases && p < fromIndex; p++)
                foreach (var w in plan.Phases[p].Workstreams)
                    if (state.Of($"p{p}", w.Name) is { Status: WorkstreamStatus.Succeeded } r && r.Hash == w.Hash) keep.Add(new($"p{p}", w.Name));

            state = PlanEngine.Begin(plan, state, from);
            var submitted = new HashSet<WorkstreamKey>();
            var running = new List<SubmitWorkstream>();
            var gating = new List<Phase>();
            for (int step = 0; ; step++)
            {
                Assert.True(step < 500, "the plan never ended");
                var next = PlanEngine.Decide(plan, state);
                foreach (var d in next.Decisions)
                {
                    if (d is SubmitWorkstream s)
                    {
                        var key = new WorkstreamKey(s.Phase.Name, s.Workstream.Name);
                        Assert.DoesNotContain(key, keep);
                        Assert.True(submitted.Add(key), $"{key} submitted twice in one run");
                        for (int j = 0; j < plan.IndexOf(s.Phase.Name); j++)
                            Assert.True(Passed(plan, state, plan.Phases[j]), $"{key} submitted before phase {plan.Phases[j].Name} passed");
                        running.Add(s);
                    }
                    if (d is RunGate g)
                    {
                        Assert.All(g.Phase.Workstreams, w => Assert.True(Ended(state.Of(g.Phase.Name, w.Name), w)));
                        gating.Add(g.Phase);
                    }
                    if (d is PlanSucceeded) Assert.All(plan.Phases, p => Assert.True(Passed(plan, state, p)));
                    if (d is CancelWorkstream { Reason: not null } c)
                    {
                        // A failed phase cancels only what it does not need: here (nothing waits to be submitted),
                        // siblings whose failure would not count.
                        Assert.Equal(OnFailure.Continue, plan.FindPhase(c.Phase)!.Workstreams.Single(w => w.Name == c.Workstream).OnFailure);
                        running.RemoveAll(s => s.Phase.Name == c.Phase && s.Workstream.Name == c.Workstream && s.Attempt == c.Attempt);
                    }
                    state = state.Apply(plan, d);
                }
                if (next.Status != PlanStatus.Running) break;

                // Some of what runs ends, in a random order; at least one thing, so the run moves on.
                var ending = running.Where(_ => rng.Next(2) == 0).ToList();
                if (ending.Count == 0 && gating.Count == 0 && running.Count > 0) ending.Add(running[rng.Next(running.Count)]);
                foreach (var s in ending)
                {
                    running.Remove(s);
                    state = state.Finished(s.Phase.Name, s.Workstream.Name, s.Attempt, rng.Next(5) != 0, "exit 1");
                }
                if (gating.Count > 0 && (ending.Count == 0 || rng.Next(2) == 0))
                {
                    var g = gating[0];
                    gating.RemoveAt(0);
                    state = state.GateFinished(g, g.Gate.Select(_ => new CheckResult(rng.Next(6) != 0, "")).ToList());
                }
            }
            Assert.Empty(running);

            // Between runs, someone edits a workstream or two.
            for (int e = rng.Next(3); e > 0; e--)
            {
                int p = rng.Next(phases);
                version[p, rng.Next(runs[p])]++;
            }
        }
    }

    private static bool Ended(WorkstreamRecord r, Workstream w) =>
        r.Hash == w.Hash && (r.Status == WorkstreamStatus.Succeeded || (r.Status == WorkstreamStatus.Failed && w.OnFailure == OnFailure.Continue));

    private static bool Passed(Plan plan, PlanState state, Phase phase) =>
        phase.Workstreams.All(w => Ended(state.Of(phase.Name, w.Name), w))
        && (phase.Gate.Count == 0 || state.GateOf(phase.Name) is { Status: GateStatus.Passed } g && g.Key == phase.GateKey);
}
