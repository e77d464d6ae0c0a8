namespace Sparky.Embeddings.Client.Jobs;

/// <summary>What a run does with the outputs it finds.</summary>
public abstract record ResumePlan
{
    /// <summary>Nothing of this job yet: start at the shard's first line.</summary>
    public sealed record Fresh : ResumePlan;
    /// <summary>A stopped run: cut the partial files back to the checkpoint and go on from there.</summary>
    public sealed record Resume(Checkpoint From) : ResumePlan;
    /// <summary>Every row is in; the final header and renames are left to do.</summary>
    public sealed record Finish(Checkpoint From) : ResumePlan;
    /// <summary>The job completed before: nothing to do.</summary>
    public sealed record Done(Checkpoint From) : ResumePlan;
    /// <summary>The outputs are another job's or are damaged: touch nothing, say why.</summary>
    public sealed record Conflict(string Reason) : ResumePlan;

    /// <summary>
    /// Decides from what is on disk. Pure: the checkpoint found (if any), this run's identity and model, and which of the
    /// final and partial files exist, in; a plan out. Outputs are never overwritten unless they are this job's.
    /// </summary>
    /// <param name="model">the model asked for (null: whatever the checkpoint used, or the endpoint's only one)</param>
    public static ResumePlan Decide(Checkpoint? found, JobIdentity job, string? model, bool finalExists, bool partialExists, string stem)
    {
        var startOver = $"remove {stem}.* there to start over, or choose another --output";
        if (found is null)
            return finalExists ? new Conflict($"{stem}.npy is there with no checkpoint saying what it holds: {startOver}") : new Fresh();
        if (found.Job != job)
            return new Conflict($"{stem}.checkpoint.json is of another job ({Differences(found.Job, job)}): {startOver}");
        if (model is not null && found.Model is not null && model != found.Model)
            return new Conflict($"{stem}.checkpoint.json was embedded with model '{found.Model}', not '{model}': {startOver}");
        if (found.Complete)
            return partialExists ? new Finish(found) : finalExists ? new Done(found)
                : new Conflict($"{stem}.checkpoint.json says the job completed, but {stem}.npy is not there: {startOver}");
        if (partialExists) return new Resume(found);
        return found.Rows == 0 ? new Fresh() : new Conflict($"{stem}.checkpoint.json records {found.Rows} rows, but {stem}.npy.partial is gone: {startOver}");
    }

    private static string Differences(JobIdentity was, JobIdentity now)
    {
        var d = new List<string>();
        if (was.InputBytes != now.InputBytes || was.InputModifiedTicks != now.InputModifiedTicks) d.Add("the input file changed since");
        if (was.Format != now.Format) d.Add($"format {was.Format}, not {now.Format}");
        if (was.Field != now.Field) d.Add($"field '{was.Field}', not '{now.Field}'");
        if (was.IdField != now.IdField) d.Add($"id field '{was.IdField ?? "(line number)"}', not '{now.IdField ?? "(line number)"}'");
        if (was.Shard != now.Shard) d.Add($"shard {was.Shard}, not {now.Shard}");
        return string.Join("; ", d);
    }
}
