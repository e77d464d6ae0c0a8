using Sparky.Core.Tasks;

namespace Sparky.Server.Executors.Workers;

/// <summary>
/// A task run by a worker over ZeroMQ. <paramref name="Session"/>: the worker session running it; null while it waits
/// for a credit, or (with <paramref name="AdoptBy"/>) for the worker named <paramref name="Name"/> to say hello again
/// after a restart. <paramref name="Seq"/>: the number of the task message that gave it to its worker.
/// <paramref name="Result"/>/<paramref name="ResultError"/>: what the worker read from its output's result line.
/// <paramref name="Spec"/>: what it is sent with once a worker has a credit for it (null after a restart: it is
/// followed, never sent again); <paramref name="Gpus"/>: the whole GPUs it holds on its worker.
/// </summary>
internal sealed record WorkerPlacement(string? Session, string? Name, long Seq, DateTimeOffset? AdoptBy, TaskSpec? Spec, int Gpus,
    string? Result = null, string? ResultError = null) : Placement;
