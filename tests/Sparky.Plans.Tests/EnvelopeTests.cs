using System.Text.Json.Nodes;
using Sparky.Core.Tasks;
using static Sparky.Plans.Tests.PlanFileTests;

namespace Sparky.Plans.Tests;

public class EnvelopeTests
{
    private static readonly IReadOnlySet<string> Classes = new HashSet<string> { "cpu_short", "cpu_long", "gpu", "gpu_slurm" };

    private static Submission Accept(TaskEnvelope e)
    {
        // Through JSON text, as the daemon receives it.
        var r = EnvelopeParser.Parse(JsonNode.Parse(e.Envelope.ToJsonString()), Classes);
        Assert.True(r.Ok, r.Error);
        return r.Submission!;
    }

    [Fact]
    public void The_spec_example_becomes_envelopes_the_daemon_accepts()
    {
        var plan = Parse(SpecExample);
        var tok = plan.Phases[0].Workstreams[1];
        var e = Assert.Single(PlanEnvelopes.For(plan, plan.Phases[0], tok, 1, "/work/plans"));
        var s = Accept(e);
        Assert.Equal(e.Id, s.Id!.Value.Value);
        Assert.Equal([e.Id], e.TaskIds);
        Assert.Equal(["python", "tok.py", "--shards", "8"], s.Spec.Argv!);
        Assert.Equal("cpu_long", s.Spec.Class);
        Assert.Equal("nightly/prepare/tokenize", s.Spec.Name);
        Assert.Equal("/work/plans", s.Spec.Cwd);
        Assert.Equal("nightly", s.Spec.Env["SPARKY_PLAN"]);
        Assert.Equal("prepare", s.Spec.Env["SPARKY_PLAN_PHASE"]);
        Assert.Equal("tokenize", s.Spec.Env["SPARKY_PLAN_WORKSTREAM"]);
        Assert.Equal(tok.Hash, s.Envelope["plan"]!["hash"]!.GetValue<string>());

        var sft = Accept(PlanEnvelopes.For(plan, plan.Phases[1], plan.Phases[1].Workstreams[0], 1, "/w").Single());
        Assert.Equal(("gpu", 1, 2), (sft.Spec.Class, sft.Spec.Gpus, sft.Spec.Retries));
        Assert.Equal("torchrun train.py", sft.Spec.Shell);

        var fetch = Accept(PlanEnvelopes.For(plan, plan.Phases[0], plan.Phases[0].Workstreams[0], 1, "/w").Single());
        Assert.Equal("cpu_short", fetch.Spec.Class);     // no class: the daemon's default
    }

    [Fact]
    public void Every_option_reaches_the_spec_and_after_maps_to_ids_including_array_elements()
    {
        var plan = Parse("""
            name: full
            phases:
              - name: p
                workstreams:
                  - name: w
                    tasks:
                      - name: shards
                        run: ./shard.sh
                        array: 0-3
                        cpus: 2
                        mem: 1G
                        timeout: 5m
                        retries: 4
                        env: {SEED: "7"}
                        cwd: sub
                      - name: merge
                        after: shards
                        run: [./merge.sh, out]
                        gpu_mem: 20G
                        cwd: /abs
                        class: gpu
            """);
        var envs = PlanEnvelopes.For(plan, plan.Phases[0], plan.Phases[0].Workstreams[0], 1, "/base");
        Assert.Equal(["shards", "merge"], envs.Select(e => e.TaskName));
        var shards = Accept(envs[0]);
        Assert.Equal(new ArrayRange(0, 3, 1), shards.Array);
        Assert.Equal(4, envs[0].TaskIds.Count);
        Assert.Equal(envs[0].Id + "_3", envs[0].TaskIds[3]);
        Assert.Equal((2.0, 1024L, 300.0, 4), (shards.Spec.Cpus!.Value, shards.Spec.MemoryMb, shards.Spec.TimeoutSeconds!.Value, shards.Spec.Retries));
        Assert.Equal("7", shards.Spec.Env["SEED"]);
        Assert.Equal("/base/sub", shards.Spec.Cwd);
        Assert.Equal("full/p/w/shards", shards.Spec.Name);

        var merge = Accept(envs[1]);
        Assert.Equal(envs[0].TaskIds, merge.Spec.After.Select(a => a.Value));
        Assert.Equal(20480, merge.Spec.GpuMemoryMb);
        Assert.Equal("/abs", merge.Spec.Cwd);
        Assert.Equal("gpu", merge.Spec.Class);
    }

    [Fact]
    public void Ids_are_deterministic_per_attempt_and_differ_across_attempts_hashes_and_names()
    {
        var plan = Parse(SpecExample);
        var ws = plan.Phases[0].Workstreams[0];
        string Id(Plan p, int attempt) => PlanEnvelopes.For(p, p.Phases[0], p.Phases[0].Workstreams[0], attempt, "/w")[0].Id;
        Assert.Equal(Id(plan, 1), Id(Parse(SpecExample), 1));
        Assert.NotEqual(Id(plan, 1), Id(plan, 2));
        Assert.NotEqual(Id(plan, 1), Id(Parse(SpecExample.Replace("./fetch.sh", "./fetch2.sh")), 1));
        Assert.StartsWith("nightly.prepare.fetch.fetch-", Id(plan, 1));

        // Names that sanitize alike still get different ids.
        Assert.NotEqual(PlanEnvelopes.TaskId("p", "a b", "w", "t", "h", 1), PlanEnvelopes.TaskId("p", "a_b", "w", "t", "h", 1));
    }

    [Theory]
    [InlineData("p", "phase", "ws", "task")]
    [InlineData("-x", "ünïcødé phase", "with/slash", "..")]
    [InlineData("x", "a very long phase name that goes on and on and on and on and on and on", "an equally long workstream name that keeps going and going and going", "and a long task name as well, for good measure, really quite long")]
    public void Ids_always_match_the_task_id_rule_with_room_for_an_array_index(string plan, string phase, string ws, string task)
    {
        var id = PlanEnvelopes.TaskId(plan, phase, ws, task, new string('f', 64), 12345);
        Assert.True(TaskId.TryParse(id, out _), id);
        Assert.True(TaskId.TryParse(id + "_99999999", out _), id);
    }
}

public class GateTests
{
    private static MetricCheck Metric(string path, double? min = null, double? max = null, string? eq = null) =>
        new() { File = "m.json", Path = path, Min = min, Max = max, EqualsValue = eq };

    private const string Json = """{"accuracy": 0.83, "eval": {"scores": [{"f1": 0.5}, {"f1": 0.9}], "status": "done", "ok": true}, "n": 8}""";

    [Theory]
    [InlineData("accuracy", 0.8, null, null, true)]
    [InlineData("accuracy", 0.9, null, null, false)]
    [InlineData("accuracy", null, 0.83, null, true)]
    [InlineData("accuracy", null, 0.5, null, false)]
    [InlineData("eval.scores[1].f1", 0.85, 1.0, null, true)]
    [InlineData("eval.scores[0].f1", 0.85, null, null, false)]
    [InlineData("eval.status", null, null, "done", true)]
    [InlineData("eval.status", null, null, "running", false)]
    [InlineData("eval.ok", null, null, "true", true)]
    [InlineData("n", null, null, "8", true)]
    [InlineData("n", null, null, "8.0", true)]
    [InlineData("n", null, null, "9", false)]
    public void Metric_checks(string path, double? min, double? max, string? eq, bool passes)
    {
        var r = Gates.EvaluateMetric(Metric(path, min, max, eq), Json);
        Assert.True(passes == r.Passed, r.Output);
    }

    [Fact]
    public void Metric_failures_say_why()
    {
        Assert.Equal(new CheckResult(false, "accuracy = 0.83, below the minimum 0.9"), Gates.EvaluateMetric(Metric("accuracy", 0.9), Json));
        Assert.Equal(new CheckResult(false, "accuracy = 0.83, above the maximum 0.5"), Gates.EvaluateMetric(Metric("accuracy", max: 0.5), Json));
        Assert.Equal(new CheckResult(false, "m.json: no such file"), Gates.EvaluateMetric(Metric("accuracy", 0.9), null));
        Assert.Equal(new CheckResult(false, "m.json: no eval.scores[5].f1 (found eval.scores, but not [5] under it)"), Gates.EvaluateMetric(Metric("eval.scores[5].f1", 0.1), Json));
        Assert.Equal(new CheckResult(false, "m.json: no recall (found the top, but not 'recall' under it)"), Gates.EvaluateMetric(Metric("recall", 0.1), Json));
        Assert.Equal(new CheckResult(false, "eval.status = \"done\" in m.json, not a number"), Gates.EvaluateMetric(Metric("eval.status", 0.1), Json));
        Assert.StartsWith("m.json is not JSON: ", Gates.EvaluateMetric(Metric("a", 1), "{oops").Output);
        Assert.Equal(new CheckResult(true, "accuracy = 0.83 (>= 0.8)"), Gates.EvaluateMetric(Metric("accuracy", 0.8), Json));
    }

    [Fact]
    public void File_checks()
    {
        var plain = new FileCheck { Path = "a.txt" };
        var nonEmpty = new FileCheck { Path = "a.txt", NonEmpty = true };
        Assert.False(Gates.EvaluateFile(plain, false, 0).Passed);
        Assert.True(Gates.EvaluateFile(plain, true, 0).Passed);
        Assert.Equal(new CheckResult(false, "a.txt is empty"), Gates.EvaluateFile(nonEmpty, true, 0));
        Assert.True(Gates.EvaluateFile(nonEmpty, true, 10).Passed);
    }

    [Theory]
    [InlineData("a", true)]
    [InlineData("a.b.c", true)]
    [InlineData("a[0]", true)]
    [InlineData("[0].a", true)]
    [InlineData("a[0][1].b", true)]
    [InlineData("a..b", false)]
    [InlineData(".a", false)]
    [InlineData("a.", false)]
    [InlineData("a[x]", false)]
    [InlineData("a[0", false)]
    [InlineData("a]", false)]
    [InlineData("", false)]
    public void Metric_paths(string path, bool ok) => Assert.Equal(ok, Gates.ParsePath(path) is not null);

    [Fact]
    public void Run_results()
    {
        Assert.True(Gates.FromRun(0, "ok").Passed);
        Assert.Equal(new CheckResult(false, "exit code 1\nno tokens"), Gates.FromRun(1, "no tokens"));
        Assert.False(Gates.FromRun(0, "", timedOut: true).Passed);
    }
}

public class DistributedPlanTests
{
    private static readonly IReadOnlySet<string> Classes = new HashSet<string> { "cpu_short", "gpu", "gpu_slurm" };

    [Fact]
    public void Nodes_gpus_per_node_procs_per_node_exclusive_and_port_reach_the_spec_from_defaults_and_tasks()
    {
        var plan = Parse("""
            name: dist
            defaults: {class: gpu_slurm, gpus_per_node: 4, exclusive: true}
            phases:
              - name: p
                workstreams:
                  - name: train
                    run: torchrun train.py
                    nodes: 2
                    procs_per_node: 8
                    port: true
            """);
        var e = PlanEnvelopes.For(plan, plan.Phases[0], plan.Phases[0].Workstreams[0], 1, "/w").Single();
        var r = EnvelopeParser.Parse(JsonNode.Parse(e.Envelope.ToJsonString()), Classes);
        Assert.True(r.Ok, r.Error);
        var spec = r.Submission!.Spec;
        Assert.Equal((2, 4, 8, true, true), (spec.Nodes, spec.GpusPerNode, spec.ProcsPerNode, spec.Exclusive, spec.Port));
        Assert.Empty(EnvelopeParser.Check(r.Submission, Classes));
    }

    [Fact]
    public void Bad_distributed_options_in_a_plan_are_refused_where_they_are()
    {
        var errors = Errors("""
            name: dist
            phases:
              - name: p
                workstreams:
                  - name: train
                    run: x
                    nodes: 0
                    exclusive: "yes; rm -rf /"
            """);
        Assert.Contains(errors, x => x.StartsWith("plan.yaml:7:", StringComparison.Ordinal) && x.Contains("nodes must be an integer from 1 to 4096"));
        Assert.Contains(errors, x => x.StartsWith("plan.yaml:8:", StringComparison.Ordinal) && x.Contains("exclusive must be true or false"));
    }
}
