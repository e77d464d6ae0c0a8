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
        Assert.Equal(["a1"], r.Submission.Spec.After);
        Assert.Equal([0, 3, 6, 9], r.Submission.Array!.Value.Indices());
    }

    [Theory]
    [InlineData("[]", "expected a JSON object")]
    [InlineData("\"text\"", "expected a JSON object")]
    [InlineData("{}", "missing command")]
    [InlineData("""{"payload":{}}""", "missing command")]
    [InlineData("""{"payload":[]}""", "payload must be an object")]
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
    public void Every_error_is_reported_at_once()
    {
        var r = Parse("""{"id":"../x","class":"nope","payload":{"command":"true","retries":-1}}""");
        Assert.False(r.Ok);
        Assert.Equal(3, r.Errors.Count);
    }
}
