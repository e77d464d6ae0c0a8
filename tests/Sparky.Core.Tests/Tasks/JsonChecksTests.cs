using System.Text.Json.Nodes;
using Sparky.Core.Tasks;

namespace Sparky.Core.Tests.Tasks;

public sealed class JsonChecksTests
{
    [Theory]
    [InlineData("""{"a":1,"a":2}""", "duplicate key")]
    [InlineData("""{"x":{"env":{"K":"1","K":"2"}}}""", "duplicate key")]
    [InlineData("""{"s":"\ud800"}""", "not valid")]
    [InlineData("""["ok","\udc00x"]""", "not valid")]
    [InlineData("""{"\ud800":1}""", "not valid")]
    public void Lazily_decoded_problems_are_found_up_front(string json, string expected) =>
        Assert.Contains(expected, JsonChecks.FirstProblem(JsonNode.Parse(json)));

    [Theory]
    [InlineData("""{"a":[1,{"b":"text \ud83d\ude80"}],"c":null}""")]
    [InlineData("[]")]
    [InlineData("null")]
    public void Sound_json_passes(string json) => Assert.Null(JsonChecks.FirstProblem(JsonNode.Parse(json)));
}
