using System.Text.Json.Nodes;
using Sparky.Core.Tasks;
using Sparky.Store.Sqlite;

namespace Sparky.Server.Http;

/// <summary>How tasks look on the wire and in done files.</summary>
public static class TaskJson
{
    /// <param name="slurm">Slurm's last word on the task's current job, where the daemon follows one.</param>
    /// <param name="progress">The task's latest progress where it is newer than the stored one (not yet written).</param>
    public static JsonObject Task(TaskRecord t, Sparky.Execution.Slurm.SlurmView? slurm = null, string? progress = null)
    {
        var o = new JsonObject
        {
            ["id"] = t.Id.Value,
            ["name"] = t.Name,
            ["class"] = t.Class,
            ["state"] = t.State.Name(),
            ["reason"] = t.Reason,
            ["command"] = t.Spec.Argv is { } argv ? new JsonArray(argv.Select(a => (JsonNode?)a).ToArray()) : t.Spec.Shell,
            ["array_index"] = t.Spec.ArrayIndex,
            ["after"] = new JsonArray(t.Spec.After.Select(a => (JsonNode?)a.Value).ToArray()),
            ["retries"] = t.Spec.Retries,
            ["timeout_seconds"] = t.Spec.TimeoutSeconds,
            ["attempts"] = t.Attempts,
            ["exit_code"] = t.ExitCode,
            ["signal"] = t.Signal,
            ["submitted_at"] = Iso(t.SubmittedAt),
            ["started_at"] = Iso(t.StartedAt),
            ["finished_at"] = Iso(t.FinishedAt),
            ["duration_ms"] = t.StartedAt is { } s && t.FinishedAt is { } f ? f - s : null,
            ["result"] = t.ResultJson is null ? null : JsonNode.Parse(t.ResultJson),
            ["result_error"] = t.ResultError,
            ["artifacts"] = t.ArtifactsJson is null ? null : JsonNode.Parse(t.ArtifactsJson),
            // {"done", "total", "message", "updated_at"}, each where given (TaskProgress.ToJson), or null.
            ["progress"] = (progress ?? t.ProgressJson) is { } p ? JsonNode.Parse(p) : null,
            ["host"] = t.AttemptList.LastOrDefault()?.Host,
            ["cursor"] = t.Seq,
        };
        Placement(t.Spec, o);
        // A payload that names work has no command: what its class's handler is given shows in its place.
        if (t.Spec.HandlerPayload is { } handlerPayload) o["payload"] = JsonNode.Parse(handlerPayload);
        if (ErrorOf(t) is { } error) o["error"] = error;
        if (Slurm(t, slurm) is { } sl) o["slurm"] = sl;
        if (t.AttemptList.Count > 0)
        {
            o["attempt_list"] = new JsonArray(t.AttemptList.Select(a => (JsonNode?)new JsonObject
            {
                ["n"] = a.N,
                ["started_at"] = Iso(a.StartedAt),
                ["ended_at"] = Iso(a.EndedAt),
                ["exit_code"] = a.ExitCode,
                ["signal"] = a.Signal,
                ["pid"] = a.Pid,
                ["host"] = a.Host,
                ["outcome"] = a.Outcome?.Name(),
                ["reason"] = a.Reason,
                ["slurm_job_id"] = a.SlurmJobId,
                ["slurm_started_at"] = Iso(a.SlurmStartedAt),
                ["slurm_ended_at"] = Iso(a.SlurmEndedAt),
                ["cpu_ms"] = a.CpuMs,
                ["mem_peak_bytes"] = a.MemPeakBytes,
            }).ToArray());
        }
        return o;
    }

    /// <summary>The port and node options the task was submitted with, under the names it was sent with (<c>port</c>,
    /// <c>nodes</c>, <c>gpus_per_node</c>, <c>procs_per_node</c>, <c>exclusive</c>), each only where set: a task that
    /// asks for none looks as it always did.</summary>
    private static void Placement(TaskSpec spec, JsonObject o)
    {
        if (spec.Port) o["port"] = true;
        if (spec.Nodes is { } nodes) o["nodes"] = nodes;
        if (spec.GpusPerNode is { } gpn) o["gpus_per_node"] = gpn;
        if (spec.ProcsPerNode is { } ppn) o["procs_per_node"] = ppn;
        if (spec.Exclusive) o["exclusive"] = true;
    }

    /// <summary>
    /// The Slurm view of a task (<c>GET /slurm/status/{id}</c>, and <c>slurm</c> in a task): the replaced orchestrator's
    /// fields, as its <c>SlurmJob</c> had them (<c>id</c> the job id, <c>task_id</c>, <c>status</c> in its words,
    /// <c>submit_time</c>, and where known <c>start_time</c>, <c>end_time</c>, <c>exit_code</c>, <c>error</c>,
    /// <c>payload</c>), beside Sparky's (<c>job_id</c>, <c>state</c> as Slurm says it, <c>node</c>). Null if the task
    /// never had a job, unless <paramref name="onSlurm"/> (its class runs on Slurm): then it is pending, with no id yet.
    /// </summary>
    /// <param name="withPayload">Add the envelope's payload (the endpoint does; a task's own view has its envelope elsewhere).</param>
    public static JsonObject? Slurm(TaskRecord t, Sparky.Execution.Slurm.SlurmView? live, bool onSlurm = false, bool withPayload = false)
    {
        var last = t.AttemptList.LastOrDefault();
        var jobId = live?.JobId ?? last?.SlurmJobId;
        if (jobId is null && !onSlurm) return null;
        // The daemon forgets a job once it ended; then the stored outcome stands in for Slurm's state.
        var state = live?.State ?? (t.State.IsTerminal() ? t.State.Name().ToUpperInvariant() : jobId is null ? "QUEUED" : "UNKNOWN");
        var o = new JsonObject
        {
            ["id"] = jobId,
            ["task_id"] = t.Id.Value,
            ["status"] = SlurmStatus(t.State, t.Reason, jobId, state),
            ["submit_time"] = Iso(last?.StartedAt ?? t.SubmittedAt),
        };
        if (last?.SlurmStartedAt is { } started) o["start_time"] = Iso(started);
        if (last?.SlurmEndedAt is { } ended) o["end_time"] = Iso(ended);
        else if (t.State.IsTerminal() && t.FinishedAt is { } finished) o["end_time"] = Iso(finished);
        if (t.State.IsTerminal() && t.ExitCode is { } code) o["exit_code"] = code;
        if (t.State is TaskState.Failed or TaskState.Cancelled && t.Reason is { } reason) o["error"] = reason;
        if (withPayload && (JsonNode.Parse(t.EnvelopeJson) as JsonObject)?["payload"] is JsonObject payload) o["payload"] = payload.DeepClone();
        o["job_id"] = jobId;
        o["state"] = state;
        o["node"] = live?.Node ?? last?.Host;
        return o;
    }

    /// <summary>The replaced orchestrator's status words: pending, running, completed, failed, cancelled, and timeout for a
    /// job that ran out of time (the old bridge folded that into failed; its clients read only that a status is there).
    /// Sparky's outcome once the task ended, else what Slurm says of the job.</summary>
    private static string SlurmStatus(TaskState task, string? reason, string? jobId, string slurmState) => task switch
    {
        TaskState.Succeeded => "completed",
        TaskState.Failed when reason == Reasons.Timeout => "timeout",
        TaskState.Failed => "failed",
        TaskState.Cancelled => "cancelled",
        _ when jobId is null => "pending",
        _ => Sparky.Execution.Slurm.SlurmStates.Map(slurmState) switch
        {
            Sparky.Execution.Slurm.SlurmPhase.Pending or Sparky.Execution.Slurm.SlurmPhase.Suspended => "pending",
            Sparky.Execution.Slurm.SlurmPhase.Succeeded or Sparky.Execution.Slurm.SlurmPhase.CompletedUnverified => "completed",
            Sparky.Execution.Slurm.SlurmPhase.Cancelled => "cancelled",
            Sparky.Execution.Slurm.SlurmPhase.TimedOut => "timeout",
            Sparky.Execution.Slurm.SlurmPhase.Failed or Sparky.Execution.Slurm.SlurmPhase.OutOfMemory
                or Sparky.Execution.Slurm.SlurmPhase.NodeFail or Sparky.Execution.Slurm.SlurmPhase.Preempted => "failed",
            // Running, or a state Sparky is looking up again (the task still runs as far as Sparky knows).
            _ => "running",
        },
    };

    /// <summary>The replaced system's done file: the envelope as sent (extensions kept) plus the result, why there is
    /// none (<c>result_error</c>) and the recorded output artifacts.</summary>
    public static JsonObject DoneFile(TaskRecord t)
    {
        var o = JsonNode.Parse(t.EnvelopeJson) as JsonObject ?? new JsonObject();
        o["id"] = t.Id.Value;
        o["class"] = t.Class;
        o["state"] = t.State.Name();
        o["exit_code"] = t.ExitCode;
        o["result"] = t.ResultJson is null ? null : JsonNode.Parse(t.ResultJson);
        if (t.ResultError is not null) o["result_error"] = t.ResultError;
        // The declared outputs with their sizes and checksums (the file is written once they are recorded). At the
        // top level, where the replaced runner's clients may have declared them: the same entries, with more fields.
        if (t.ArtifactsJson is not null) o["artifacts"] = JsonNode.Parse(t.ArtifactsJson);
        o["completed_at"] = Iso(t.FinishedAt);
        o["duration_ms"] = t.StartedAt is { } s && t.FinishedAt is { } f ? f - s : null;
        if (t.Reason is not null) o["reason"] = t.Reason;
        if (ErrorOf(t) is { } error) o["error"] = error;
        return o;
    }

    /// <summary>What a reader needs to put right, where a reason code alone does not say it: what to set for a payload
    /// no handler could run.</summary>
    public static string? ErrorOf(TaskRecord t) => t.Reason == Reasons.NoHandler ? Handlers.NoHandlerMessage(t.Class) : null;

    private static string? Iso(long? ms) => ms is { } v ? DateTimeOffset.FromUnixTimeMilliseconds(v).ToString("O") : null;
}
