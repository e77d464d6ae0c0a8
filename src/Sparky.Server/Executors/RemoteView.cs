using Sparky.Core.Tasks;
using Sparky.Core.Workers;

namespace Sparky.Server.Executors;

/// <summary>
/// Where the daemon's work runs away from it: the connected workers with what each runs, the pilot allocations, and the
/// Slurm jobs of running tasks. Copied on the engine's loop (which owns all of it) for <c>GET /api/v1/workers</c>; the
/// copy is the caller's.
/// </summary>
/// <param name="Now">The engine's clock when it was copied: what heartbeat ages are measured against.</param>
/// <param name="AwaitingWorker">Attempts started and waiting for a worker's credit.</param>
internal sealed record RemoteView(DateTimeOffset Now, IReadOnlyList<WorkerView> Workers, int AwaitingWorker,
    IReadOnlyList<PilotView> Pilots, IReadOnlyList<SlurmJobView> SlurmJobs);

/// <summary>A connected worker. <paramref name="Classes"/>: the worker classes it takes (every one where it named none).
/// <paramref name="Credits"/>: tasks it asked for and has not been given.</summary>
internal sealed record WorkerView(long Connection, WorkerInfo Info, IReadOnlyList<string> Classes, int Credits, int FreeGpus,
    bool Draining, DateTimeOffset ConnectedAt, DateTimeOffset LastSeen, IReadOnlyList<RemoteTask> Tasks);

/// <summary>A task running away from the daemon (on a worker, or as a Slurm job): its attempt, and since when.
/// <paramref name="Name"/>: null where the engine no longer keeps its spec (a restart, a very long queue).</summary>
internal sealed record RemoteTask(TaskId Id, int Attempt, string Class, string? Name, int Gpus, DateTimeOffset StartedAt);

/// <summary>A pilot allocation: its Slurm job (null until sbatch answered; none for one an earlier daemon submitted),
/// Slurm's last word on it, and the workers it brought up.</summary>
internal sealed record PilotView(string Id, string? JobId, string? SlurmState, string? Node, bool Connected, bool Inherited,
    DateTimeOffset? SubmittedAt, IReadOnlyList<string> Workers);

/// <summary>A running task's Slurm job: null <paramref name="JobId"/> while sbatch has not answered.</summary>
internal sealed record SlurmJobView(RemoteTask Task, string? JobId, string State, string? Node);
