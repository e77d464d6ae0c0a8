using Sparky.Execution.Slurm;

namespace Sparky.Execution.Tests.Slurm;

public sealed class SlurmExecutorTests
{
    [Theory]
    [InlineData("5-9", new[] { 5, 6, 7, 8, 9 })]
    [InlineData("1,3,5", new[] { 1, 3, 5 })]
    [InlineData("0-6:2%4", new[] { 0, 2, 4, 6 })]
    [InlineData("2-3,7", new[] { 2, 3, 7 })]
    [InlineData("4", new int[0])]
    [InlineData(null, new int[0])]
    public void A_pending_array_range_names_every_element_it_covers(string? arrayTask, int[] indices) =>
        Assert.Equal(indices, SlurmExecutor.PendingIndices(arrayTask));
}
