using System.Text.Json.Nodes;
using static Sparky.Plans.Tests.PlanFileTests;

namespace Sparky.Plans.Tests;

public class PlanJsonTests
{
    private const string Yaml = """
        name: j
        phases:
          - name: a
            workstreams:
              - {name: x, run: x}
              - {name: y, run: y, on_failure: continue}
            gate:
              - file: out.txt
          - name: b
            workstreams: [{name: z, run: z}]
        """;

    [Fact]
    public void Stored_state_round_trips_through_json_text()
    {
        var plan = Parse(Yaml);
        var d = new Driver(plan, PlanEngine.Begin(plan, PlanState.Empty));
        d.Run(workstreamSucceeds: w => w != "a/y", gatePasses: _ => false);
        var text = PlanJson.State(d.State).ToJsonString();
        var back = PlanJson.ReadState(JsonNode.Parse(text));
        Assert.Equal(text, PlanJson.State(back).ToJsonString());
        Assert.Equal(d.State.Of("a", "y"), back.Of("a", "y"));
        Assert.Equal(d.State.GateOf("a").Results, back.GateOf("a").Results);
        Assert.Equal(d.State.BlockedPhases, back.BlockedPhases);
        Assert.Equal(PlanEngine.Decide(plan, d.State).Decisions, PlanEngine.Decide(plan, back).Decisions);
        Assert.Throws<FormatException>(() => PlanJson.ReadState(JsonNode.Parse("""{"v":1}""")));
    }

    [Fact]
    public void The_report_is_a_tree_with_states_reasons_and_gate_results()
    {
        var plan = Parse(Yaml);
        var d = new Driver(plan, PlanEngine.Begin(plan, PlanState.Empty));
        d.Run(workstreamSucceeds: w => w != "a/y", gatePasses: _ => false);
        var r = PlanJson.Report(plan, d.State);
        Assert.Equal("stopped", (string)r["status"]!);
        Assert.Equal("a", (string)r["current_phase"]!);
        Assert.Equal("the gate of phase 'a' failed: check 1 (file out.txt) failed: nope", (string)r["reason"]!);
        var a = r["phases"]![0]!;
        Assert.Equal("failed", (string)a["status"]!);
        Assert.Equal(["succeeded", "failed"], a["workstreams"]!.AsArray().Select(w => (string)w!["status"]!));
        Assert.Equal("continue", (string)a["workstreams"]![1]!["on_failure"]!);
        Assert.False((bool)a["gate"]!["checks"]![0]!["passed"]!);
        Assert.Equal("file out.txt", (string)a["gate"]!["checks"]![0]!["check"]!);
        var b = r["phases"]![1]!;
        Assert.Equal("blocked", (string)b["status"]!);
        Assert.Equal("blocked", (string)b["workstreams"]![0]!["status"]!);
        Assert.StartsWith("phase 'a' stopped the plan", (string)b["blocked_reason"]!);

        // After an edit, the old record shows as history: not started, changed.
        var edited = Parse(Yaml.Replace("run: x}", "run: x2}"));
        var x = PlanJson.Report(edited, d.State)["phases"]![0]!["workstreams"]![0]!;
        Assert.Equal(("not_started", true), ((string)x["status"]!, (bool)x["changed"]!));
    }
}
