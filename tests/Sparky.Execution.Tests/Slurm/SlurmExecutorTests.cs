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

    [Theory]
    [InlineData("RUNNING", "sparky:t1:1", 2, true)]     // live: the task's, whichever attempt wrote it
    [InlineData("PENDING", "sparky:t1", 2, true)]       // live, an earlier daemon's comment
    [InlineData("COMPLETED", "sparky:t1:2", 2, true)]   // ended under this attempt: taken, so not run again
    [InlineData("FAILED", "sparky:t1:2", 2, true)]
    [InlineData("COMPLETED", "sparky:t1:1", 2, false)]  // an earlier attempt's end is not this one's
    [InlineData("COMPLETED", "sparky:t1", 2, false)]    // ended, with no attempt to tell
    [InlineData("RUNNING", "sparky:t2:2", 2, false)]
    [InlineData("RUNNING", null, 2, false)]
    public void A_job_is_an_attempts_when_it_is_live_with_the_tasks_comment_or_ended_with_the_attempts(string state, string? comment, int attempt, bool mine) =>
        Assert.Equal(mine, SlurmExecutor.IsOf(new SlurmJob("42", state, null, comment, null, null, null, null, null), "t1", attempt));
}
