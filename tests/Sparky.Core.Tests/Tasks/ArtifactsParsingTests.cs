using System.Text.Json.Nodes;
using Sparky.Core.Tasks;

namespace Sparky.Core.Tests.Tasks;

/// <summary>Declared output artifacts (<c>artifacts.outputs</c>), at the envelope's top level or inside <c>payload</c>.</summary>
public sealed class ArtifactsParsingTests
{
    private static readonly IReadOnlySet<string> Known = new HashSet<string> { "cpu_short", "cpu_long", "gpu", "gpu_slurm" };

    private static EnvelopeResult Parse(string json) => EnvelopeParser.Parse(JsonNode.Parse(json), Known);

    [Fact]
    public void Outputs_at_the_top_level_are_declared_with_their_type_and_name()
    {
        var r = Parse("""
            {"payload":{"command":["true"]},
             "artifacts":{"inputs":[{"path":"in.txt"}],"outputs":[{"path":"out/result.json","type":"json","name":"m_result"},{"path":"/abs/p.jsonl"}]}}
            """);
        Assert.True(r.Ok, r.Error);
        Assert.Equal([new DeclaredOutput("out/result.json", "json", "m_result"), new DeclaredOutput("/abs/p.jsonl")], r.Submission!.Spec.Outputs);
    }

    [Fact]
    public void Outputs_inside_the_payload_are_read_too_as_the_replaced_clients_send_them()
    {
        var r = Parse("""
            {"id":"gepa-1","class":"cpu_short","payload":{"command":["true"],"artifacts":{"outputs":[{"path":"r.json","type":"json","name":null}]}}}
            """);
        Assert.True(r.Ok, r.Error);
        Assert.Equal([new DeclaredOutput("r.json", "json")], r.Submission!.Spec.Outputs);
    }

    [Fact]
    public void A_task_that_declares_none_has_none()
    {
        Assert.Null(Parse("""{"payload":{"command":["true"]}}""").Submission!.Spec.Outputs);
        Assert.Null(Parse("""{"payload":{"command":["true"]},"artifacts":{"inputs":[]}}""").Submission!.Spec.Outputs);
        Assert.Null(Parse("""{"payload":{"command":["true"]},"artifacts":{"outputs":[]}}""").Submission!.Spec.Outputs);
    }

    [Theory]
    [InlineData("""{"payload":{"command":["true"]},"artifacts":"out.json"}""", "artifacts must be an object")]
    [InlineData("""{"payload":{"command":["true"]},"artifacts":{"outputs":{"path":"x"}}}""", "artifacts.outputs must be an array")]
    [InlineData("""{"payload":{"command":["true"]},"artifacts":{"outputs":["x"]}}""", "artifacts.outputs[0] must be an object")]
    [InlineData("""{"payload":{"command":["true"]},"artifacts":{"outputs":[{"type":"json"}]}}""", "artifacts.outputs[0].path must be")]
    [InlineData("""{"payload":{"command":["true"]},"artifacts":{"outputs":[{"path":""}]}}""", "artifacts.outputs[0].path must be")]
    [InlineData("""{"payload":{"command":["true"]},"artifacts":{"outputs":[{"path":"a\u0000b"}]}}""", "without NUL")]
    [InlineData("""{"payload":{"command":["true"]},"artifacts":{"outputs":[{"path":"a","type":3}]}}""", "artifacts.outputs[0].type must be a string")]
    [InlineData("""{"payload":{"command":["true"],"artifacts":{"outputs":[{"path":"a"},{"path":"b","name":[]}]}}}""", "payload.artifacts.outputs[1].name must be a string")]
    public void A_malformed_declaration_is_refused_with_the_field_named(string json, string expected)
    {
        var r = Parse(json);
        Assert.False(r.Ok);
        Assert.Contains(expected, r.Error);
    }

    [Fact]
    public void Too_many_outputs_or_too_long_a_path_are_refused()
    {
        var many = new JsonArray(Enumerable.Range(0, EnvelopeParser.MaxOutputs + 1).Select(i => (JsonNode?)new JsonObject { ["path"] = $"o{i}" }).ToArray());
        var r = EnvelopeParser.Parse(new JsonObject { ["payload"] = new JsonObject { ["command"] = "true" }, ["artifacts"] = new JsonObject { ["outputs"] = many } }, Known);
        Assert.Contains($"at most {EnvelopeParser.MaxOutputs}", r.Error);
        var longPath = new JsonObject { ["path"] = new string('a', EnvelopeParser.MaxPathBytes) };
        r = EnvelopeParser.Parse(new JsonObject { ["payload"] = new JsonObject { ["command"] = "true" }, ["artifacts"] = new JsonObject { ["outputs"] = new JsonArray(longPath) } }, Known);
        Assert.Contains("longer than a path can be", r.Error);
    }
}
