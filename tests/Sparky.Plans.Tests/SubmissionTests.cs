using System.Globalization;
using System.Text.Json.Nodes;
using Sparky.Core.Tasks;
using static Sparky.Plans.Tests.PlanFileTests;

namespace Sparky.Plans.Tests;

/// <summary>A plan's tasks are submitted typed, in the daemon's process: each must be what its envelope, sent to the
/// native door, would parse to, and be refused there for the same reasons in the same words.</summary>
public class SubmissionTests
{
    private static readonly IReadOnlySet<string> Known = new HashSet<string> { "cpu_short", "cpu_long", "gpu", "gpu_slurm" };

    private const string Full = """
        name: full
        env: {A: plan, B: plan}
        defaults: {class: cpu_long, retries: 1, timeout: 10m, mem: 512M, env: {B: defaults, C: defaults}}
        phases:
          - name: p
            workstreams:
              - name: w
                tasks:
                  - name: shards
                    run: ./shard.sh
                    array: 0-7:2
                    cpus: 2.5
                    mem: 1.5G
                    timeout: 1h30m
                    retries: 4
                    env: {SEED: "7", C: task, SPARKY_PLAN: mine}
                    cwd: sub/../dir
                  - name: merge
                    after: [shards]
                    run: [./merge.sh, "--in", "a b", ""]
                    gpu_mem: 20G
                    cwd: /abs
                    class: gpu
                  - name: last
                    after: [merge, shards]
                    run: [./report.sh]
                    gpus: 2
                    mem: 0
              - name: alone
                run: echo one
                retries: 0
        """;

    public static TheoryData<string> Plans() => new() { SpecExample, Full, File("demo.yaml"), File("ml-pipeline.yaml") };

    private static string File(string name) => System.IO.File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "plans", name));

    [Theory]
    [MemberData(nameof(Plans))]
    public void Each_typed_submission_is_what_its_envelope_parses_to(string yaml)
    {
        var plan = Parse(yaml);
        int count = 0;
        foreach (var phase in plan.Phases)
            foreach (var ws in phase.Workstreams)
                foreach (var e in PlanEnvelopes.For(plan, phase, ws, 3, "/base/dir"))
                {
                    // As the native door reads it: from the text (the same envelope the store keeps).
                    var parsed = EnvelopeParser.Parse(JsonNode.Parse(e.Envelope.ToJsonString()), Known);
                    Assert.True(parsed.Ok, parsed.Error);
                    var p = parsed.Submission!;
                    Assert.Equal(p.Id, e.Submission.Id);
                    Assert.Equal(e.Id, e.Submission.Id!.Value.Value);
                    Assert.Equal(p.Array, e.Submission.Array);
                    Assert.Equal(Describe(p.Spec), Describe(e.Submission.Spec));
                    Assert.Empty(EnvelopeParser.Check(e.Submission, Known));
                    count++;
                }
        Assert.True(count > 0);
    }

    [Fact]
    public void The_envelope_kept_with_a_plan_task_is_unchanged()
    {
        // Resuming a plan after a crash sends the same envelopes again, and the daemon compares them with what it
        // kept: this text must not change from one version to the next.
        var plan = Parse(Full);
        var ws = plan.Phases[0].Workstreams[0];
        var envs = PlanEnvelopes.For(plan, plan.Phases[0], ws, 1, "/base");
        var id = envs[1].Id;
        var shards = envs[0].Id;
        Assert.Equal(
            "{\"id\":\"" + id + "\",\"class\":\"gpu\",\"name\":\"full/p/w/merge\",\"after\":[\"" + shards + "_0\",\"" + shards + "_2\",\"" + shards + "_4\",\"" + shards + "_6\"]," +
            "\"payload\":{\"command\":[\"./merge.sh\",\"--in\",\"a b\",\"\"],\"env\":{\"A\":\"plan\",\"B\":\"defaults\",\"C\":\"defaults\"," +
            "\"SPARKY_PLAN\":\"full\",\"SPARKY_PLAN_PHASE\":\"p\",\"SPARKY_PLAN_WORKSTREAM\":\"w\"},\"cwd\":\"/abs\",\"timeout_seconds\":600," +
            "\"retries\":1,\"resources\":{\"memory_mb\":512,\"gpu_memory_mb\":20480}}," +
            "\"plan\":{\"name\":\"full\",\"phase\":\"p\",\"workstream\":\"w\",\"task\":\"merge\",\"hash\":\"" + ws.Hash + "\",\"attempt\":1}}",
            envs[1].Envelope.ToJsonString());
        Assert.Equal(["A", "B", "C", "SPARKY_PLAN", "SPARKY_PLAN_PHASE", "SPARKY_PLAN_WORKSTREAM"], envs[1].Submission.Spec.Env.Keys);
        // The task's own SPARKY_PLAN gives way to the plan's, in its place.
        Assert.Equal(["A", "B", "C", "SEED", "SPARKY_PLAN", "SPARKY_PLAN_PHASE", "SPARKY_PLAN_WORKSTREAM"], envs[0].Envelope["payload"]!["env"]!.AsObject().Select(kv => kv.Key));
        Assert.Equal("full", envs[0].Submission.Spec.Env["SPARKY_PLAN"]);
    }

    [Theory]
    [InlineData("run: [\"./a\", \"x\\0y\"]", true)]                       // a NUL byte YAML lets through
    [InlineData("run: \"echo \\0\"", true)]
    [InlineData("run: [./a]\n        env: {X: \"a\\0b\"}", true)]
    [InlineData("run: [./a]\n        class: nosuch", true)]
    [InlineData("run: \"x\\0\"\n        class: nosuch\n        env: {X: \"a\\0b\", Y: \"c\\0\"}", true)] // every reason, in the parser's order
    [InlineData("run: [./a]\n        env: {X: \"${surrogate}\"}", true)]    // a lone surrogate, given with --var (YAML refuses it)
    [InlineData("run: [./a]\n        mem: 1e30T", false)]                   // read as the parser reads it: capped
    public void A_typed_submission_is_refused_as_its_envelope_would_be(string task, bool refused)
    {
        var plan = Parse($"""
            name: bad
            phases:
              - name: p
                workstreams:
                  - name: w
                    {task}
            """, new Dictionary<string, string> { ["surrogate"] = "\uD800" });
        var ws = plan.Phases[0].Workstreams[0];
        var e = Assert.Single(PlanEnvelopes.For(plan, plan.Phases[0], ws, 1, "/base"));
        var parsed = EnvelopeParser.Parse(e.Envelope, Known);
        Assert.Equal(refused, !parsed.Ok);
        if (parsed.Ok)
        {
            Assert.Equal(Describe(parsed.Submission!.Spec), Describe(e.Submission.Spec));
            Assert.Null(PlanEnvelopes.Refusal([e], Known));
        }
        else Assert.Equal(parsed.Error, PlanEnvelopes.Refusal([e], Known));
    }

    [Theory]
    [InlineData(EnvelopeParser.MaxArgs + 1, 1)]
    [InlineData(3, EnvelopeParser.MaxArgBytes)]
    public void Commands_too_big_for_the_kernel_are_refused_in_the_parsers_words(int args, int argBytes)
    {
        var arg = new string('x', argBytes);
        var list = string.Join(", ", Enumerable.Repeat(arg, args));
        var plan = Parse($$"""
            name: big
            phases:
              - name: p
                workstreams:
                  - name: w
                    tasks:
                      - {name: fine, run: [./ok]}
                      - {name: big, run: [./a, {{list}}]}
            """);
        var envs = PlanEnvelopes.For(plan, plan.Phases[0], plan.Phases[0].Workstreams[0], 1, "/base");
        var parsed = EnvelopeParser.Parse(envs[1].Envelope, Known);
        Assert.False(parsed.Ok);
        // Several tasks: the refused one is named by its index, as in an array sent to POST /api/v1/tasks.
        Assert.Equal($"task [1]: {parsed.Error}", PlanEnvelopes.Refusal(envs, Known));
        Assert.Contains(args > EnvelopeParser.MaxArgs ? "arguments; at most" : "bytes; the kernel takes at most", parsed.Error);
    }

    /// <summary>Every field of a spec, in one comparable line (lists and maps by value, in their order).</summary>
    internal static string Describe(TaskSpec s) => string.Join(" | ",
        "argv=" + (s.Argv is null ? "null" : string.Join("\u241f", s.Argv)),
        "shell=" + s.Shell,
        "payload=" + s.HandlerPayload,
        "env=" + string.Join(",", s.Env.Select(kv => kv.Key + "=" + kv.Value)),
        "cwd=" + s.Cwd,
        "class=" + s.Class,
        "name=" + s.Name,
        "cpus=" + s.Cpus?.ToString("R", CultureInfo.InvariantCulture),
        "mem=" + s.MemoryMb,
        "gpus=" + s.Gpus,
        "gpumem=" + s.GpuMemoryMb,
        "retries=" + s.Retries,
        "timeout=" + s.TimeoutSeconds?.ToString("R", CultureInfo.InvariantCulture),
        "after=" + string.Join(",", s.After.Select(a => a.Value)),
        "index=" + s.ArrayIndex,
        "done=" + s.DoneFile,
        "outputs=" + (s.Outputs is null ? "null" : string.Join(",", s.Outputs)));
}
