using Sparky.Core.Tasks;
using Sparky.Server.Executors;
using Sparky.Server.Executors.Slurm;

namespace Sparky.Server.Daemon;

/// <summary>What runs away from the daemon (workers, pilots, Slurm jobs), read on the loop that owns it.</summary>
public sealed partial class Engine
{
    private sealed record RemoteCmd(TaskCompletionSource<RemoteView> Reply) : Command;

    /// <summary>Where work runs away from the daemon now, copied on the loop; null where the loop did not answer within
    /// <paramref name="wait"/> (the daemon is starting or stopping). Any thread.</summary>
    internal async Task<RemoteView?> RemoteAsync(TimeSpan wait)
    {
        if (!Ready) return null;
        var reply = new TaskCompletionSource<RemoteView>(TaskCreationOptions.RunContinuationsAsynchronously);
        Post(new RemoteCmd(reply));
        try { return await reply.Task.WaitAsync(wait).ConfigureAwait(false); }
        catch (TimeoutException) { return null; }
    }

    private void AnswerRemote(RemoteCmd cmd, DateTimeOffset now)
    {
        try { cmd.Reply.TrySetResult(Remote(now)); }
        catch (Exception e) { cmd.Reply.TrySetException(e); throw; }
    }

    private RemoteView Remote(DateTimeOffset now)
    {
        var (workers, awaiting) = _onWorkers?.View(NameOf) ?? ([], 0);
        var jobs = new List<SlurmJobView>();
        foreach (var r in _running.Values)
        {
            if (r.Place is not SlurmPlacement placed) continue;
            var slurm = _slurmAttempts.ViewOf(r.Id);
            var jobId = slurm?.JobId ?? placed.JobId;
            var task = new RemoteTask(r.Id, r.N, r.Class, NameOf(r.Id), _known.TryGetValue(r.Id, out var k) ? k.Spec.Gpus : 0,
                DateTimeOffset.FromUnixTimeMilliseconds(r.StartedAt));
            jobs.Add(new SlurmJobView(task, jobId, slurm?.State ?? (jobId is null ? "SUBMITTING" : "UNKNOWN"), slurm?.Node));
        }
        jobs.Sort((a, b) => a.Task.StartedAt != b.Task.StartedAt ? a.Task.StartedAt.CompareTo(b.Task.StartedAt)
            : string.CompareOrdinal(a.Task.Id.Value, b.Task.Id.Value));
        return new RemoteView(now, workers, awaiting, _onWorkers?.Pilots.View() ?? [], jobs);
    }

    /// <summary>A task's name where the engine still keeps its spec (not after a restart, nor past <see cref="MaxKnown"/>).</summary>
    private string? NameOf(TaskId id) => _known.TryGetValue(id, out var k) ? k.Spec.Name : null;
}
