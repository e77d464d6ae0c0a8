using System.Text.Json.Nodes;
using Sparky.Core.Config;
using Sparky.Server.Executors;

namespace Sparky.Server.Http;

/// <summary>
/// <c>GET /api/v1/workers</c>: where work runs away from the daemon. The connected workers (who, where, what they take,
/// their credits, the tasks each runs now, when each was last heard from), the tasks waiting for a worker's credit, the
/// pilot allocations on Slurm and the workers they brought up, and the Slurm jobs of running tasks. Everything a worker
/// says of itself (its host, its classes, its pilot) is data here: the page shows it as text.
/// </summary>
internal static class WorkersJson
{
    public static JsonObject Of(RemoteView view, SparkyConfig config)
    {
        var workers = new JsonArray();
        foreach (var w in view.Workers)
        {
            var tasks = new JsonArray();
            foreach (var t in w.Tasks) tasks.Add((JsonNode)Task(t));
            workers.Add((JsonNode)new JsonObject
            {
                ["name"] = w.Info.Name,
                ["host"] = w.Info.Host,
                ["connection"] = w.Connection,
                ["classes"] = Strings(w.Classes),
                ["slots"] = w.Info.Slots,
                ["prefetch"] = w.Info.Prefetch,
                ["credits_free"] = w.Credits,
                ["credits_in_use"] = w.Tasks.Count,
                ["gpus"] = w.Info.Gpus,
                ["gpus_free"] = w.FreeGpus,
                ["memory_mb"] = w.Info.MemoryMb,
                ["draining"] = w.Draining,
                ["pilot"] = w.Info.Pilot,
                ["connected_at"] = Iso(w.ConnectedAt),
                ["last_seen_at"] = Iso(w.LastSeen),
                ["last_seen_seconds_ago"] = Math.Round(Math.Max(0, (view.Now - w.LastSeen).TotalSeconds), 3),
                ["tasks"] = tasks,
            });
        }
        var pilots = new JsonArray();
        foreach (var p in view.Pilots)
            pilots.Add((JsonNode)new JsonObject
            {
                ["id"] = p.Id,
                ["job_id"] = p.JobId,
                ["state"] = p.SlurmState,
                ["node"] = p.Node,
                ["connected"] = p.Connected,
                ["inherited"] = p.Inherited,
                ["submitted_at"] = p.SubmittedAt is { } at ? Iso(at) : null,
                ["workers"] = Strings(p.Workers),
            });
        var jobs = new JsonArray();
        foreach (var j in view.SlurmJobs)
        {
            var o = Task(j.Task);
            o["job_id"] = j.JobId;
            o["state"] = j.State;
            o["node"] = j.Node;
            jobs.Add((JsonNode)o);
        }
        return new JsonObject
        {
            ["now"] = Iso(view.Now),
            ["worker_classes"] = Strings(config.WorkerClasses.Order(StringComparer.Ordinal)),
            ["pilot_classes"] = Strings(config.PilotClasses.Order(StringComparer.Ordinal)),
            ["heartbeat_seconds"] = config.WorkerHeartbeat.TotalSeconds,
            ["timeout_seconds"] = config.WorkerTimeout.TotalSeconds,
            ["awaiting_worker"] = view.AwaitingWorker,
            ["workers"] = workers,
            ["pilots"] = pilots,
            ["slurm_jobs"] = jobs,
        };
    }

    /// <summary>A task running away from the daemon: <c>started_at</c> is when its worker was given it, or when its
    /// job went to sbatch.</summary>
    private static JsonObject Task(RemoteTask t) => new()
    {
        ["id"] = t.Id.Value,
        ["attempt"] = t.Attempt,
        ["class"] = t.Class,
        ["name"] = t.Name,
        ["gpus"] = t.Gpus,
        ["started_at"] = Iso(t.StartedAt),
    };

    private static JsonArray Strings(IEnumerable<string> values) => new(values.Select(v => (JsonNode?)v).ToArray());

    private static string Iso(DateTimeOffset t) => t.ToUniversalTime().ToString("O");
}
