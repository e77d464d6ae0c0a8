using System.Text.Json.Nodes;
using Sparky.Core.Tasks;

namespace Sparky.Core.Tests.Tasks;

public sealed class EnvelopeDiffTests
{
    private static IReadOnlyList<string> Diff(string a, string b) => EnvelopeDiff.Paths(JsonNode.Parse(a), JsonNode.Parse(b));

    [Fact]
    public void The_same_fields_in_another_order_are_the_same_envelope()
    {
        Assert.Empty(Diff("""{"id":"x","payload":{"command":["a","b"],"env":{"K":"1","L":"2"}}}""",
                          """{"payload":{"env":{"L":"2","K":"1"},"command":["a","b"]},"id":"x"}"""));
        Assert.True(EnvelopeDiff.Same(JsonNode.Parse("1.0"), JsonNode.Parse("1.0")));
    }

    [Fact]
    public void Each_difference_is_named_by_its_path()
    {
        Assert.Equal(["payload.command[1]"], Diff("""{"payload":{"command":["a","b"]}}""", """{"payload":{"command":["a","c"]}}"""));
        Assert.Equal(["payload.command (2 items, now 1)"], Diff("""{"payload":{"command":["a","b"]}}""", """{"payload":{"command":["a"]}}"""));
        Assert.Equal(["class (not in the new one)", "name (new)"], Diff("""{"class":"gpu"}""", """{"name":"n"}"""));
        Assert.Equal(["payload"], Diff("""{"payload":{"command":"x"}}""", """{"payload":"x"}"""));
        Assert.Equal(["retries"], Diff("""{"retries":1}""", """{"retries":"1"}"""));
        Assert.Equal(["the envelope"], Diff("[]", "{}"));
    }

    [Fact]
    public void At_most_the_bound_is_named()
    {
        var a = new JsonObject();
        var b = new JsonObject();
        for (int i = 0; i < 20; i++) { a[$"k{i}"] = i; b[$"k{i}"] = i + 1; }
        Assert.Equal(3, EnvelopeDiff.Paths(a, b, max: 3).Count);
    }
}
