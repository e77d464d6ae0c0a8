using System.Text.Json.Nodes;
using Sparky.Core.Tasks;
using Sparky.Store.Sqlite;

namespace Sparky.Server.Http;

/// <summary>How tasks look on the wire and in done files.</summary>
public static class TaskJson
{
    /// <param name="slurm">Slurm's last word on the task's current job, where the daemon follows one.</param>
    public static JsonObject Task(TaskRecord t, Sparky.Execution.Slurm.SlurmView? slurm = null)
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
            ["after"] = new JsonArray(t.Spec.After.Select(a => (JsonNode?)a).ToArray()),
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
            ["host"] = t.AttemptList.LastOrDefault()?.Host,
            ["cursor"] = t.Seq,
        };
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
                ["outcome"] = a.Outcome,
                ["reason"] = a.Reason,
                ["slurm_job_id"] = a.SlurmJobId,
                ["slurm_started_at"] = Iso(a.SlurmStartedAt),
                ["slurm_ended_at"] = Iso(a.SlurmEndedAt),
            }).ToArray());
        }
        return o;
    }

    /// <summary>The Slurm view of a task: its last job's id, Slurm state and node; null if it never had a job.</summary>
    public static JsonObject? Slurm(TaskRecord t, Sparky.Execution.Slurm.SlurmView? live)
    {
        var last = t.AttemptList.LastOrDefault();
        var jobId = live?.JobId ?? last?.SlurmJobId;
        if (jobId is null) return null;
        // The daemon forgets a job once it ended; then the stored outcome stands in for Slurm's state.
        var state = live?.State ?? (t.State.IsTerminal() ? t.State.Name().ToUpperInvariant() : "UNKNOWN");
        return new JsonObject { ["id"] = t.Id.Value, ["job_id"] = jobId, ["state"] = state, ["node"] = live?.Node ?? last?.Host };
    }

    /// <summary>The replaced system's done file: the envelope as sent (extensions kept) plus the result.</summary>
    public static JsonObject DoneFile(TaskRecord t)
    {
        var o = JsonNode.Parse(t.EnvelopeJson) as JsonObject ?? new JsonObject();
        o["id"] = t.Id.Value;
        o["class"] = t.Class;
        o["state"] = t.State.Name();
        o["exit_code"] = t.ExitCode;
        o["result"] = t.ResultJson is null ? null : JsonNode.Parse(t.ResultJson);
        o["completed_at"] = Iso(t.FinishedAt);
        o["duration_ms"] = t.StartedAt is { } s && t.FinishedAt is { } f ? f - s : null;
        if (t.Reason is not null) o["reason"] = t.Reason;
        return o;
    }

    private static string? Iso(long? ms) => ms is { } v ? DateTimeOffset.FromUnixTimeMilliseconds(v).ToString("O") : null;
}
