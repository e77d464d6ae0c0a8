using Sparky.Execution.Slurm;

namespace Sparky.Execution.Tests.Slurm;

/// <summary>Slurm's compressed node lists expanded into every node, as <c>scontrol show hostnames</c> gives them.</summary>
public sealed class SlurmHostlistTests
{
    [Theory]
    [InlineData("node1", "node1")]
    [InlineData("node[1-2]", "node1,node2")]
    [InlineData("sparky-n[1-2]", "sparky-n1,sparky-n2")]
    [InlineData("gpu[01-03,07],login1", "gpu01,gpu02,gpu03,gpu07,login1")]
    [InlineData("gpu[08-11]", "gpu08,gpu09,gpu10,gpu11")]
    [InlineData("r[1-2]n[1-2]", "r1n1,r1n2,r2n1,r2n2")]
    [InlineData("a,b[3],c", "a,b3,c")]
    [InlineData("sparky-a,sparky-b", "sparky-a,sparky-b")]
    [InlineData("node[1-2],node2", "node1,node2")]
    public void A_list_expands_into_every_node_in_slurms_order(string list, string nodes)
    {
        Assert.Equal(nodes.Split(','), SlurmHostlist.Expand(list));
        Assert.Equal(nodes, SlurmHostlist.Join(list));
    }

    [Theory]
    [InlineData("node[1-2")]
    [InlineData("node1-2]")]
    [InlineData("node[2-1]")]
    [InlineData("node[a-b]")]
    [InlineData("node[]")]
    [InlineData("node[1-2-3]")]
    [InlineData("node[[1]]")]
    [InlineData("node[0-99999]")]
    [InlineData("r[0-99]n[0-99]")]
    [InlineData("node[1-9999999999]")]
    public void What_slurm_does_not_write_or_expands_past_any_cluster_is_kept_as_given(string list)
    {
        Assert.Null(SlurmHostlist.Expand(list));
        Assert.Equal(list, SlurmHostlist.Join(list));
    }

    [Fact]
    public void The_parsers_record_every_node_of_a_job()
    {
        var jobs = SlurmQueries.ParseSqueue("4250|RUNNING|gpu[01-02]|2026-11-25T02:40:00|2026-11-26T02:40:00|None|sparky:t1\n");
        Assert.Equal("gpu01,gpu02", Assert.Single(jobs).Node);
    }
}
