using System.Text.Json.Nodes;
using Sparky.Core.Tasks;

namespace Sparky.Core.Tests.Tasks;

public sealed class EnvelopeParserTests
{
    private static readonly IReadOnlySet<string> Known = new HashSet<string> { "cpu_short", "cpu_long", "gpu", "gpu_slurm" };

    private static EnvelopeResult Parse(string json) => EnvelopeParser.Parse(JsonNode.Parse(json), Known);

    [Fact]
    public void The_seed_envelope_becomes_a_spec()
    {
        var r = Parse("""
            {"id":"job-1","class":"cpu_long","payload":{"command":["python","train.py"],"env":{"SEED":"3"},"cwd":"/tmp",
             "timeout_seconds":60,"resources":{"cpus":2,"memory_mb":512,"gpus":0},"retries":2}}
            """);
        Assert.True(r.Ok, r.Error);
        var s = r.Submission!;
        Assert.Equal("job-1", s.Id!.Value.Value);
        Assert.Equal("cpu_long", s.Spec.Class);
        Assert.Equal(["python", "train.py"], s.Spec.Argv);
        Assert.Equal("3", s.Spec.Env["SEED"]);
        Assert.Equal("/tmp", s.Spec.Cwd);
        Assert.Equal(60, s.Spec.TimeoutSeconds);
        Assert.Equal(2, s.Spec.Cpus);
        Assert.Equal(512, s.Spec.MemoryMb);
        Assert.Equal(2, s.Spec.Retries);
    }

    [Fact]
    public void The_nested_runner_form_means_the_same_task()
    {
        var r = Parse("""
            {"tenant":"t1","workflow_id":"w9","execution":{"command":["python","eval.py"],"env":{"A":"1"},"working_dir":"/srv",
             "timeout_seconds":30,"resources":{"cpu_millicores":1500,"mem_bytes":1073741824,"gpu_count":1,"gpu_memory_gb":20}},
             "artifacts":{"outputs":[{"path":"out.json"}]}}
            """);
        Assert.True(r.Ok, r.Error);
        var spec = r.Submission!.Spec;
        Assert.Equal(["python", "eval.py"], spec.Argv);
        Assert.Equal("/srv", spec.Cwd);
        Assert.Equal(1.5, spec.Cpus);
        Assert.Equal(1024, spec.MemoryMb);
        Assert.Equal(1, spec.Gpus);
        Assert.Equal(0, spec.GpuMemoryMb); // a count with memory per GPU means whole GPUs
        Assert.Equal("cpu_short", spec.Class);
        // Unknown fields stay in the envelope.
        Assert.Equal("w9", (string?)r.Submission.Envelope["workflow_id"]);
        Assert.NotNull(r.Submission.Envelope["artifacts"]);
    }

    [Theory]
    [InlineData("""{"gpu_memory_mb":20480}""", 20480)]
    [InlineData("""{"gpu_memory_gb":20}""", 20480)]
    [InlineData("""{"gpu_memory_gb":0.5}""", 512)]
    public void A_gpu_memory_share_is_read_in_mib(string resources, long mb)
    {
        var r = Parse("""{"payload":{"command":"x","resources":""" + resources + "}}");
        Assert.True(r.Ok, r.Error);
        Assert.Equal(mb, r.Submission!.Spec.GpuMemoryMb);
        Assert.Equal(new Sparky.Core.Scheduling.ResourceRequest(0, 0, 0, mb), r.Submission.Spec.Asks);
        var nested = Parse("""{"execution":{"command":["x"],"resources":{"gpu_memory_gb":""" + (mb / 1024.0).ToString(System.Globalization.CultureInfo.InvariantCulture) + "}}}");
        Assert.Equal(mb, nested.Submission!.Spec.GpuMemoryMb);
    }

    [Fact]
    public void A_task_that_names_no_resources_reserves_none()
    {
        var r = Parse("""{"payload":{"command":"x"}}""");
        Assert.Null(r.Submission!.Spec.Cpus);
        Assert.True(r.Submission.Spec.Asks.IsNone);
    }

    [Fact]
    public void A_gpu_share_with_several_whole_gpus_is_refused()
    {
        var r = Parse("""{"payload":{"command":"x","resources":{"gpus":2,"gpu_memory_mb":1024}}}""");
        Assert.False(r.Ok);
        Assert.Contains("share of one GPU", r.Error);
    }

    [Fact]
    public void A_string_command_runs_in_a_shell_and_the_flat_form_is_accepted()
    {
        var r = Parse("""{"command":"echo hi > out.txt","name":"writer","after":["a1"],"array":"0-9:3"}""");
        Assert.True(r.Ok, r.Error);
        Assert.Equal("echo hi > out.txt", r.Submission!.Spec.Shell);
        Assert.Equal(["/bin/sh", "-c", "echo hi > out.txt"], r.Submission.Spec.CommandLine);
        Assert.Equal("writer", r.Submission.Spec.Name);
        Assert.Equal(["a1"], r.Submission.Spec.After.Select(a => a.Value));
        Assert.Equal([0, 3, 6, 9], r.Submission.Array!.Value.Indices());
    }

    [Theory]
    [InlineData("[]", "expected a JSON object")]
    [InlineData("\"text\"", "expected a JSON object")]
    [InlineData("{}", "missing command")]
    [InlineData("""{"payload":{}}""", "missing command")]
    [InlineData("""{"payload":[]}""", "missing command")]
    [InlineData("""{"payload":{"command":["true"],"execution":{"command":["true"]}}}""", "payload holds both command and execution")]
    [InlineData("""{"payload":{"execution":"true"}}""", "payload.execution must be an object")]
    [InlineData("""{"payload":{"execution":{"env":{}}}}""", "missing payload.execution.command")]
    [InlineData("""{"payload":{"execution":{"command":["true"],"working_dir":7}}}""", "payload.execution.working_dir must be")]
    [InlineData("""{"payload":{"command":[]}}""", "command must not be empty")]
    [InlineData("""{"payload":{"command":42}}""", "command must be an array of strings or a string")]
    [InlineData("""{"payload":{"command":["a",1]}}""", "command must hold only strings")]
    [InlineData("""{"payload":{"command":["a\u0000b"]}}""", "NUL")]
    [InlineData("""{"payload":{"command":"  "}}""", "command must not be empty")]
    [InlineData("""{"class":"quantum","payload":{"command":"true"}}""", "unknown class 'quantum'")]
    [InlineData("""{"class":7,"payload":{"command":"true"}}""", "class must be a string")]
    [InlineData("""{"id":"../../etc/passwd","payload":{"command":"true"}}""", "id must be a string matching")]
    [InlineData("""{"id":"a/b","payload":{"command":"true"}}""", "id must be a string matching")]
    [InlineData("""{"id":"a\u0000","payload":{"command":"true"}}""", "id must be a string matching")]
    [InlineData("""{"id":5,"payload":{"command":"true"}}""", "id must be a string matching")]
    [InlineData("""{"payload":{"command":"true","retries":-1}}""", "retries must be an integer")]
    [InlineData("""{"payload":{"command":"true","retries":"3"}}""", "retries must be an integer")]
    [InlineData("""{"payload":{"command":"true","timeout_seconds":0}}""", "timeout_seconds must be a positive number")]
    [InlineData("""{"payload":{"command":"true","env":{"A":{"b":1}}}}""", "env.A must be a string")]
    [InlineData("""{"payload":{"command":"true","env":{"A=B":"x"}}}""", "invalid variable name")]
    [InlineData("""{"payload":{"command":"true","env":[1]}}""", "env must be an object")]
    [InlineData("""{"payload":{"command":"true","resources":{"gpus":-2}}}""", "resources.gpus must be an integer")]
    [InlineData("""{"after":"x","payload":{"command":"true"}}""", "after must be an array")]
    [InlineData("""{"after":["../x"],"payload":{"command":"true"}}""", "after holds an invalid task id")]
    [InlineData("""{"array":"9-1","payload":{"command":"true"}}""", "FIRST <= LAST")]
    [InlineData("""{"array":"0-1000000","payload":{"command":"true"}}""", "at most")]
    [InlineData("""{"execution":{"command":"true","resources":{"mem_bytes":"lots"}}}""", "mem_bytes must be a non-negative number")]
    public void Bad_envelopes_are_refused_with_a_reason_that_names_the_field(string json, string expected)
    {
        var r = Parse(json);
        Assert.False(r.Ok);
        Assert.Contains(expected, r.Error);
    }

    [Fact]
    public void The_runner_form_inside_payload_means_the_same_task_as_at_the_top_level()
    {
        // As the replaced system's training pipeline and gRPC server sent it.
        const string execution = """
            {"command":["python","-m","gepa","--module","m1"],"env":{"PYTHONPATH":"/src"},"timeout_seconds":900,"working_dir":"/tmp/gepa-m1",
             "resources":{"cpu_millicores":2500,"mem_bytes":3145728,"gpu_count":1}}
            """;
        var top = Parse("""{"id":"gepa-m1","class":"cpu_long","tenant":"acme","execution":""" + execution + "}");
        var nested = Parse("""{"id":"gepa-m1","class":"cpu_long","payload":{"execution":""" + execution +
            ""","artifacts":{"outputs":[{"path":"/tmp/gepa-m1/result.json","type":"json","name":"m1_result"}]},"tenant":"acme"}}""");
        Assert.True(top.Ok, top.Error);
        Assert.True(nested.Ok, nested.Error);
        Assert.Equal(SpecJsonOf(top.Submission!.Spec), SpecJsonOf(nested.Submission!.Spec));
        var spec = nested.Submission.Spec;
        Assert.Equal(["python", "-m", "gepa", "--module", "m1"], spec.Argv);
        Assert.Equal("/tmp/gepa-m1", spec.Cwd);
        Assert.Equal(900, spec.TimeoutSeconds);
        Assert.Equal(2.5, spec.Cpus);
        Assert.Equal(3, spec.MemoryMb);
        Assert.Equal(1, spec.Gpus);
        Assert.Null(spec.HandlerPayload);
        // What the client sent is kept whole.
        Assert.Equal("acme", (string?)nested.Submission.Envelope["payload"]!["tenant"]);
        Assert.NotNull(nested.Submission.Envelope["payload"]!["artifacts"]);
    }

    private static string SpecJsonOf(TaskSpec s) =>
        string.Join("|", string.Join(" ", s.Argv ?? []), s.Shell, string.Join(",", s.Env.Select(kv => kv.Key + "=" + kv.Value)), s.Cwd, s.TimeoutSeconds,
            s.Cpus, s.MemoryMb, s.Gpus, s.GpuMemoryMb, s.Retries, s.Class);

    private static readonly EnvelopeOptions Compat = new() { CompatDoor = true };

    [Theory]
    [InlineData("""{"id":"t1","class":"cpu_short","payload":{"test":"data"}}""", """{"test":"data"}""")]
    [InlineData("""{"id":"unit-task-1","class":"cpu_short","payload":"demo"}""", "\"demo\"")]
    [InlineData("""{"class":"gpu_slurm","payload":{"method":"grpo","module":"orchestrator","model":"gpt2"}}""", """{"method":"grpo","module":"orchestrator","model":"gpt2"}""")]
    [InlineData("""{"payload":{}}""", "{}")]
    [InlineData("""{"payload":[1,2]}""", "[1,2]")]
    [InlineData("""{"payload":7}""", "7")]
    // No payload, or null: the replaced orchestrator ran it with an empty one (its test sends {"class":"gpu_slurm"}).
    [InlineData("""{"class":"gpu_slurm"}""", "{}")]
    [InlineData("""{"payload":null}""", "{}")]
    [InlineData("""{}""", "{}")]
    public void The_replaced_systems_doors_take_a_payload_that_names_work_whatever_its_class(string json, string payload)
    {
        var r = EnvelopeParser.Parse(JsonNode.Parse(json), Known, Compat);
        Assert.True(r.Ok, r.Error);
        var spec = r.Submission!.Spec;
        Assert.Equal(payload, spec.HandlerPayload);
        Assert.Null(spec.Argv);
        Assert.Null(spec.Shell);
        Assert.Empty(spec.CommandLine);
    }

    [Fact]
    public void The_native_doors_take_a_payload_that_names_work_only_where_its_class_has_a_handler()
    {
        var json = JsonNode.Parse("""{"class":"gpu_slurm","payload":{"method":"grpo"}}""");
        var refused = EnvelopeParser.Parse(json, Known);
        Assert.False(refused.Ok);
        Assert.Contains("missing command", refused.Error);
        Assert.Contains("gpu_slurm_handler", refused.Error);
        Assert.Contains("gpu_slurm_sbatch_template", refused.Error);

        var handled = EnvelopeParser.Parse(json, Known, new EnvelopeOptions { HandlerClasses = new HashSet<string> { "gpu_slurm" } });
        Assert.True(handled.Ok, handled.Error);
        Assert.Equal("""{"method":"grpo"}""", handled.Submission!.Spec.HandlerPayload);
        Assert.Equal("gpu_slurm", handled.Submission.Spec.Class);
        // Another class still has none.
        Assert.False(EnvelopeParser.Parse(JsonNode.Parse("""{"payload":{"method":"grpo"}}"""), Known,
            new EnvelopeOptions { HandlerClasses = new HashSet<string> { "gpu_slurm" } }).Ok);
    }

    [Theory]
    [InlineData("""{"payload":{"command":null}}""", "missing command")]
    [InlineData("""{"payload":{"command":[]}}""", "command must not be empty")]
    [InlineData("""{"payload":{"execution":{"env":{}}}}""", "missing payload.execution.command")]
    [InlineData("""{"class":"quantum","payload":{"test":"data"}}""", "unknown class")]
    public void A_payload_with_a_command_field_is_still_checked_at_the_replaced_systems_doors(string json, string expected)
    {
        var r = EnvelopeParser.Parse(JsonNode.Parse(json), Known, Compat);
        Assert.False(r.Ok);
        Assert.Contains(expected, r.Error);
    }

    [Fact]
    public void Every_error_is_reported_at_once()
    {
        var r = Parse("""{"id":"../x","class":"nope","payload":{"command":"true","retries":-1}}""");
        Assert.False(r.Ok);
        Assert.Equal(3, r.Errors.Count);
    }
}
