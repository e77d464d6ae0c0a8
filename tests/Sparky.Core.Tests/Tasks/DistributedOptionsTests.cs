using System.Text.Json.Nodes;
using Sparky.Core.Tasks;

namespace Sparky.Core.Tests.Tasks;

/// <summary>The distributed options (<c>port</c>, <c>resources.nodes</c>, <c>gpus_per_node</c>, <c>procs_per_node</c>,
/// <c>exclusive</c>) as envelopes send them, and what is refused.</summary>
public sealed class DistributedOptionsTests
{
    private static readonly IReadOnlySet<string> Known = new HashSet<string> { "cpu_short", "gpu", "gpu_slurm" };
    private static EnvelopeResult Parse(string payloadFields) =>
        EnvelopeParser.Parse(JsonNode.Parse("""{"class":"gpu_slurm","payload":{"command":["train"],""" + payloadFields + "}}"), Known);

    [Fact]
    public void Every_option_is_read_into_the_spec()
    {
        var r = Parse("""
            "port": true, "resources": {"nodes": 2, "gpus_per_node": 4, "procs_per_node": 8, "exclusive": true}
            """);
        Assert.Empty(r.Errors);
        var spec = r.Submission!.Spec;
        Assert.True(spec.Port);
        Assert.Equal(2, spec.Nodes);
        Assert.Equal(4, spec.GpusPerNode);
        Assert.Equal(8, spec.ProcsPerNode);
        Assert.True(spec.Exclusive);
        Assert.True(spec.WantsAllocation);
        Assert.Empty(EnvelopeParser.Check(r.Submission, Known));
    }

    [Fact]
    public void A_task_that_asks_for_none_runs_as_before()
    {
        var spec = Parse("\"env\": {}").Submission!.Spec;
        Assert.False(spec.Port);
        Assert.Null(spec.Nodes);
        Assert.Equal(1, spec.NodeCount);
        Assert.False(spec.WantsAllocation);
    }

    [Theory]
    [InlineData("\"port\": \"yes\"", "port must be true or false")]
    [InlineData("\"port\": 1", "port must be true or false")]
    [InlineData("\"resources\": {\"nodes\": 0}", "resources.nodes must be an integer from 1 to 4096")]
    [InlineData("\"resources\": {\"nodes\": 1.5}", "resources.nodes must be an integer from 1 to 4096")]
    [InlineData("\"resources\": {\"nodes\": \"2; rm -rf /\"}", "resources.nodes must be an integer from 1 to 4096")]
    [InlineData("\"resources\": {\"nodes\": 1e12}", "resources.nodes must be an integer from 1 to 4096")]
    [InlineData("\"resources\": {\"gpus_per_node\": -1}", "resources.gpus_per_node must be an integer from 0 to 1024")]
    [InlineData("\"resources\": {\"procs_per_node\": 0}", "resources.procs_per_node must be an integer from 1 to 1024")]
    [InlineData("\"resources\": {\"exclusive\": \"--exclusive\"}", "resources.exclusive must be true or false")]
    [InlineData("\"resources\": {\"nodes\": 2, \"gpus\": 4}", "with resources.nodes > 1 ask for resources.gpus_per_node")]
    [InlineData("\"resources\": {\"nodes\": 2, \"gpus\": 4, \"gpus_per_node\": 4}", "disagree")]
    public void Bad_values_are_refused_with_the_field(string fields, string error)
    {
        var r = Parse(fields);
        Assert.Null(r.Submission);
        Assert.Contains(r.Errors, e => e.Contains(error, StringComparison.Ordinal));
    }

    [Fact]
    public void Options_merge_level_over_level_as_the_others_do()
    {
        var merged = new TaskOptions { Nodes = 4 }.Or(new TaskOptions { Nodes = 2, GpusPerNode = 8, Exclusive = true, Port = true, ProcsPerNode = 2 });
        Assert.Equal(4, merged.Nodes);
        Assert.Equal(8, merged.GpusPerNode);
        Assert.True(merged.Exclusive);
        Assert.True(merged.Port);
        Assert.Equal(2, merged.ProcsPerNode);
    }

    /// <summary>The replaced runner's nested form, at the top level or inside payload: the same fields, where the
    /// native form has them (port beside the command, the node options in resources).</summary>
    private static EnvelopeResult ParseExecution(string executionFields, bool inPayload)
    {
        var execution = """{"command":["train"],""" + executionFields + "}";
        return EnvelopeParser.Parse(JsonNode.Parse(inPayload
            ? """{"class":"gpu_slurm","payload":{"execution":""" + execution + "}}"
            : """{"class":"gpu_slurm","execution":""" + execution + "}"), Known);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void The_execution_form_reads_every_option_as_the_payload_form_does(bool inPayload)
    {
        const string fields = """
            "port": true, "resources": {"gpu_count": 8, "nodes": 2, "gpus_per_node": 4, "procs_per_node": 8, "exclusive": true}
            """;
        var r = ParseExecution(fields, inPayload);
        Assert.Empty(r.Errors);
        var spec = r.Submission!.Spec;
        var native = Parse("""
            "port": true, "resources": {"gpus": 8, "nodes": 2, "gpus_per_node": 4, "procs_per_node": 8, "exclusive": true}
            """).Submission!.Spec;
        Assert.Equal((native.Port, native.Nodes, native.GpusPerNode, native.ProcsPerNode, native.Exclusive, native.Gpus),
            (spec.Port, spec.Nodes, spec.GpusPerNode, spec.ProcsPerNode, spec.Exclusive, spec.Gpus));
        Assert.True(spec.WantsAllocation);
        Assert.Empty(EnvelopeParser.Check(r.Submission, Known));
    }

    [Theory]
    [InlineData("\"port\": \"yes\"", "execution.port must be true or false")]
    [InlineData("\"resources\": {\"nodes\": 0}", "execution.resources.nodes must be an integer from 1 to 4096")]
    [InlineData("\"resources\": {\"nodes\": \"2; rm -rf /\"}", "execution.resources.nodes must be an integer from 1 to 4096")]
    [InlineData("\"resources\": {\"gpus_per_node\": -1}", "execution.resources.gpus_per_node must be an integer from 0 to 1024")]
    [InlineData("\"resources\": {\"procs_per_node\": 2000}", "execution.resources.procs_per_node must be an integer from 1 to 1024")]
    [InlineData("\"resources\": {\"exclusive\": 1}", "execution.resources.exclusive must be true or false")]
    [InlineData("\"resources\": {\"nodes\": 2, \"gpu_count\": 4}",
        "execution.resources.gpu_count is a count on one machine; with execution.resources.nodes > 1 ask for execution.resources.gpus_per_node")]
    [InlineData("\"resources\": {\"nodes\": 2, \"gpu_count\": 4, \"gpus_per_node\": 4}",
        "execution.resources.gpu_count and execution.resources.gpus_per_node disagree")]
    public void Bad_values_in_the_execution_form_are_refused_naming_the_field_where_it_was_sent(string fields, string error)
    {
        var top = ParseExecution(fields, inPayload: false);
        Assert.Null(top.Submission);
        Assert.Contains(top.Errors, e => e.StartsWith(error, StringComparison.Ordinal));
        var nested = ParseExecution(fields, inPayload: true);
        Assert.Null(nested.Submission);
        Assert.Contains(nested.Errors, e => e.StartsWith(error.Replace("execution.", "payload.execution.", StringComparison.Ordinal), StringComparison.Ordinal));
    }
}
