using Sparky.Embeddings.Client.Jobs;

namespace Sparky.Embeddings.Client.Tests.Jobs;

public class ResumePlanTests
{
    private static readonly JobIdentity Job = new(1000, 42, "jsonl", "text", null, "0/1");
    private static Checkpoint At(long rows, bool complete = false, JobIdentity? job = null, string? model = "m") =>
        new(job ?? Job, model, rows, rows > 0 ? 8 : 0, rows * 3, rows + 1, rows * 10, 0, complete);

    private static ResumePlan Decide(Checkpoint? found, bool final = false, bool partial = false, string? model = null, JobIdentity? job = null) =>
        ResumePlan.Decide(found, job ?? Job, model, final, partial, "embeddings");

    [Fact]
    public void Nothing_there_starts_fresh() => Assert.IsType<ResumePlan.Fresh>(Decide(null));

    [Fact]
    public void A_killed_run_before_its_first_checkpoint_starts_fresh() => Assert.IsType<ResumePlan.Fresh>(Decide(null, partial: true));

    [Fact]
    public void A_stopped_run_resumes_from_its_checkpoint()
    {
        var cp = At(640);
        Assert.Equal(cp, Assert.IsType<ResumePlan.Resume>(Decide(cp, partial: true)).From);
        Assert.IsType<ResumePlan.Resume>(Decide(cp, partial: true, model: "m"));
    }

    [Fact]
    public void A_complete_checkpoint_with_its_files_still_partial_finishes()
    {
        Assert.IsType<ResumePlan.Finish>(Decide(At(10, complete: true), partial: true));
        Assert.IsType<ResumePlan.Finish>(Decide(At(10, complete: true), partial: true, final: true)); // killed between the renames
    }

    [Fact]
    public void A_completed_job_is_not_redone() => Assert.IsType<ResumePlan.Done>(Decide(At(10, complete: true), final: true));

    [Fact]
    public void Outputs_of_another_input_are_never_overwritten()
    {
        var c = Assert.IsType<ResumePlan.Conflict>(Decide(At(10), partial: true, job: Job with { InputBytes = 2000 }));
        Assert.Contains("another job (the input file changed since)", c.Reason);
        c = Assert.IsType<ResumePlan.Conflict>(Decide(At(10, complete: true), final: true, job: Job with { Field = "body", IdField = "id" }));
        Assert.Contains("field 'text', not 'body'; id field '(line number)', not 'id'", c.Reason);
        Assert.Contains("remove embeddings.* there to start over, or choose another --output", c.Reason);
    }

    [Fact]
    public void Another_model_is_another_job()
    {
        var c = Assert.IsType<ResumePlan.Conflict>(Decide(At(10), partial: true, model: "other"));
        Assert.Contains("embedded with model 'm', not 'other'", c.Reason);
    }

    [Fact]
    public void An_npy_with_no_checkpoint_is_left_alone() =>
        Assert.Contains("no checkpoint", Assert.IsType<ResumePlan.Conflict>(Decide(null, final: true)).Reason);

    [Fact]
    public void Rows_recorded_but_their_file_gone_is_a_conflict_not_a_silent_restart()
    {
        Assert.Contains("records 10 rows", Assert.IsType<ResumePlan.Conflict>(Decide(At(10))).Reason);
        Assert.IsType<ResumePlan.Fresh>(Decide(At(0))); // nothing was committed: nothing is lost by starting again
        Assert.IsType<ResumePlan.Conflict>(Decide(At(10, complete: true)));
    }
}
