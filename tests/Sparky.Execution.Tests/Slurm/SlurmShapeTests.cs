using Sparky.Execution.Slurm;

namespace Sparky.Execution.Tests.Slurm;

public sealed class SlurmShapeTests
{
    private const string Sinfo = """
        node1|debug*|gpu:2
        node2|debug*|gpu:a100:4(S:0-1)
        node2|gpu|gpu:a100:4(S:0-1)
        node3|gpu|gpu:a100:4,gpu:v100:2
        node4|cpu|(null)
        garbage line
        """;

    [Fact]
    public void Partitions_count_their_nodes_and_their_largest_gpu_node()
    {
        var shape = SlurmShape.Parse(Sinfo).ToDictionary(p => p.Name);
        Assert.Equal(new SlurmPartition("debug", true, 2, 4), shape["debug"]);
        Assert.Equal(new SlurmPartition("gpu", false, 2, 6), shape["gpu"]);
        Assert.Equal(new SlurmPartition("cpu", false, 1, 0), shape["cpu"]);
        Assert.Empty(SlurmShape.Parse(""));
    }

    [Fact]
    public void Too_many_nodes_or_gpus_per_node_are_refused_saying_what_exists()
    {
        var shape = SlurmShape.Parse(Sinfo);
        Assert.Equal("asks for 3 nodes; the default partition debug has 2", SlurmShape.WhyNeverFits(shape, null, 3, null));
        Assert.Equal("asks for 5 GPUs per node; the nodes of the default partition debug have at most 4", SlurmShape.WhyNeverFits(shape, null, 2, 5));
        Assert.Equal("asks for 2 nodes; partition cpu has 1", SlurmShape.WhyNeverFits(shape, "cpu", 2, null));
        // A list of partitions: the largest counts.
        Assert.Null(SlurmShape.WhyNeverFits(shape, "cpu,gpu", 2, 6));
        Assert.Null(SlurmShape.WhyNeverFits(shape, null, 2, 4));
        // A partition sinfo does not show is left to Slurm.
        Assert.Null(SlurmShape.WhyNeverFits(shape, "elsewhere", 100, 100));
    }
}
