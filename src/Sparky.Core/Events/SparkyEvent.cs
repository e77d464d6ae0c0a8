using System.Text.Json.Nodes;

namespace Sparky.Core.Events;

/// <summary>One state change. Every consumer (SSE, metrics, drop-dir done files, later the PUB socket
/// and plans) reads the same stream of these.</summary>
public sealed record SparkyEvent(string Topic, long TsMs, JsonObject Body)
{
    public const string TaskQueued = "task.queued";
    public const string TaskStarted = "task.started";
    public const string TaskFinished = "task.finished";
    public const string TaskRetrying = "task.retrying";
    /// <summary>An ended task's declared output artifacts are hashed and recorded (after its task.finished).</summary>
    public const string TaskArtifacts = "task.artifacts";
    /// <summary>A running task reported progress (<c>{"id", "class", "progress"}</c>): at most one per task per 500 ms,
    /// the latest value last.</summary>
    public const string TaskProgress = "task.progress";
    public const string WorkerJoined = "worker.joined";
    public const string WorkerLeft = "worker.left";
    public const string WorkerLost = "worker.lost";
}
