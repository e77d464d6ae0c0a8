using System.Text.Json.Nodes;

namespace Sparky.Cli.Tests;

public sealed class TaskTextTests
{
    [Fact]
    public void A_tasks_node_options_are_put_in_words_in_the_order_they_are_asked()
    {
        var t = JsonNode.Parse("""{"id":"a","nodes":2,"gpus_per_node":8,"procs_per_node":1,"exclusive":true,"port":true}""")!;
        Assert.Equal("2 nodes, 8 GPUs per node, 1 proc per node, exclusive, port", TaskText.Nodes(t));
        Assert.Equal("1 node", TaskText.Nodes(JsonNode.Parse("""{"nodes":1}""")!));
        Assert.Equal("port", TaskText.Nodes(JsonNode.Parse("""{"port":true}""")!));
    }

    [Fact]
    public void A_task_that_asked_for_none_or_sent_odd_values_shows_nothing()
    {
        Assert.Null(TaskText.Nodes(JsonNode.Parse("""{"id":"a","command":"true"}""")!));
        Assert.Null(TaskText.Nodes(JsonNode.Parse("""{"nodes":"2; rm -rf /","exclusive":"yes","port":false}""")!));
    }
}
