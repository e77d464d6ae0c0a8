using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Prometheus;
using Sparky.Core.Tasks;
using Sparky.Plans;
using Sparky.Server.Daemon;
using Sparky.Server.Events;
using Sparky.Store.Sqlite;

namespace Sparky.Server.Http;

/// <summary>The HTTP API: the replaced orchestrator's endpoints, then the native ones.</summary>
internal static class Api
{
    public static void Map(WebApplication app, SparkyDaemon d)
    {
        // ---- compatible ----
        app.MapPost("/queue/submit", async (HttpRequest req) =>
        {
            var (node, error) = await BodyReader.ReadJsonAsync(req, d.Config.MaxBodyBytes);
            if (error is not null) return error;
            var parsed = EnvelopeParser.Parse(node, d.Engine.KnownClasses, d.Engine.CompatDoor);
            if (!parsed.Ok) return Problems.BadRequest(parsed.Error);
            var sub = parsed.Submission!;
            var answer = await Commands.SubmitAsync(d, [sub with { Spec = sub.Spec with { DoneFile = true } }],
                ids => new JsonObject { ["ok"] = true, ["id"] = ids[0].Value, ["ids"] = Commands.IdArray(ids) });
            return Reply(await SlurmSubmitAnswerAsync(d, sub, answer));
        });

        app.MapGet("/queue/status", () => HttpJson.Of(Commands.QueueStatus(d)));

        app.MapMetrics("/metrics", d.Metrics.Registry);

        // A task of a class that runs on Slurm answers from its submit on (status pending until sbatch took it).
        app.MapGet("/slurm/status/{id}", (string id) =>
            !TaskId.TryParse(id, out var tid) || d.Store.Get(tid) is not { } t ? Problems.NotFound("no such task")
            : TaskJson.Slurm(t, d.Engine.SlurmViewOf(tid), d.Engine.RunsOnSlurm(t.Class), withPayload: true) is { } view ? HttpJson.Of(view)
            : Problems.NotFound($"task {tid} has no Slurm job"));

        // ---- native ----
        app.MapPost("/api/v1/tasks", async (HttpRequest req) =>
        {
            var (node, error) = await BodyReader.ReadJsonAsync(req, d.Config.MaxBodyBytes);
            if (error is not null) return error;
            return Reply(await Commands.SubmitAsync(d, node));
        });

        // limit and cursor are read here, not bound, so that a wrong one is a problem that names it.
        app.MapGet("/api/v1/tasks", (string? state, string? @class, string? q, string? limit, string? cursor, string? order) =>
        {
            if (TaskQueries.ParseInteger("limit", limit, out var lim) is { } badLimit) return Problems.BadRequest(badLimit);
            if (TaskQueries.ParseInteger("cursor", cursor, out var cur) is { } badCursor) return Problems.BadRequest(badCursor);
            return Reply(Commands.List(d, state, @class, q, lim, cur, order));
        });

        app.MapGet("/api/v1/tasks/{id}", (string id) => Reply(Commands.Get(d, id)));

        app.MapDelete("/api/v1/tasks/{id}", async (string id) => Reply(await Commands.CancelAsync(d, id)));

        app.MapPost("/api/v1/tasks/{id}/retry", async (string id) =>
        {
            if (ParseId(id, out var tid) is { } bad) return bad;
            return await d.Engine.RetryAsync(tid) switch
            {
                CommandOutcome.Done => HttpJson.Of(new JsonObject { ["ok"] = true, ["id"] = tid.Value }),
                CommandOutcome.NotFound => Problems.NotFound($"no task '{tid}'"),
                CommandOutcome.NotFinished => Problems.Conflict($"task {tid} has not finished; only a finished task can be retried"),
                _ => Problems.Unavailable("the store is unavailable"),
            };
        });

        // tail=N: begin N bytes before the end of what is written so far (the dashboard's log tail); follow goes on from there.
        app.MapGet("/api/v1/tasks/{id}/logs", async (HttpContext ctx, string id, string? stream, bool? follow, int? attempt, long? tail) =>
        {
            if (ParseId(id, out var tid) is { } bad) return bad;
            if (stream is not null and not "stdout" and not "stderr") return Problems.BadRequest("stream must be stdout or stderr");
            if (tail is < 0) return Problems.BadRequest("tail must be a number of bytes, 0 or more");
            var t = d.Store.Get(tid);
            if (t is null) return Problems.NotFound($"no task '{tid}'");
            await LogStreamer.StreamAsync(ctx, d, tid, stream == "stderr", follow == true, attempt, tail);
            return Results.Empty;
        });

        app.MapGet("/api/v1/events", () => EventStream.Of(d.Events));

        // ---- plans (SPEC §5) ----
        app.MapPost("/api/v1/plans", async (HttpRequest req) =>
        {
            var (node, error) = await BodyReader.ReadJsonAsync(req, d.Config.MaxBodyBytes);
            if (error is not null) return error;
            if (node is not JsonObject o || o["text"] is not JsonValue tv || tv.GetValueKind() != JsonValueKind.String)
                return Problems.BadRequest("send {\"text\": <the plan file>, \"path\"?, \"base_dir\"?, \"from\"?, \"vars\"?: {name: value}}");
            string? Str(string key) => o[key] is JsonValue v && v.GetValueKind() == JsonValueKind.String ? v.GetValue<string>() : null;
            var vars = new Dictionary<string, string>(StringComparer.Ordinal);
            if (o["vars"] is { } varsNode)
            {
                if (varsNode is not JsonObject vo) return Problems.BadRequest("vars must be an object of names to values: {\"out\": \"/tmp/run1\"}");
                foreach (var (k, v) in vo)
                {
                    // A number or a boolean is taken as written, as YAML's vars: take them.
                    if (v is JsonValue jv && jv.GetValueKind() is JsonValueKind.String or JsonValueKind.Number or JsonValueKind.True or JsonValueKind.False)
                        vars[k] = jv.GetValueKind() == JsonValueKind.String ? jv.GetValue<string>() : jv.ToJsonString();
                    else return Problems.BadRequest($"vars.{k} must be a string, a number or a boolean");
                }
                if (PlanFile.CheckVars(vars) is { } bad) return Problems.BadRequest("vars: " + bad);
            }
            if (d.Plans is null) return Problems.Unavailable("the daemon is starting");
            var r = await d.Plans.StartAsync(tv.GetValue<string>(), Str("path"), Str("base_dir"), Str("from"), vars);
            if (r is null) return Problems.Unavailable("the daemon is stopping");
            return r.Status switch
            {
                202 => HttpJson.Of(new JsonObject { ["ok"] = true, ["name"] = r.Name, ["status"] = "running" }, statusCode: 202),
                400 => Results.Problem(r.Detail, statusCode: 400, title: "Bad request",
                    extensions: new Dictionary<string, object?> { ["errors"] = new JsonArray(r.Errors.Select(e => (JsonNode?)e).ToArray()) }),
                _ => Problems.Of(r.Status, r.Detail!),
            };
        });

        app.MapGet("/api/v1/plans", () => d.Plans is null ? Problems.Unavailable("the daemon is starting") :
            HttpJson.Of(new JsonObject { ["plans"] = new JsonArray(d.Plans.All().Select(p => (JsonNode?)Sparky.Server.Plans.PlanRunner.Summary(p)).ToArray()) }));

        app.MapGet("/api/v1/plans/{name}", (string name) =>
            d.Plans is null ? Problems.Unavailable("the daemon is starting") :
            d.Plans.Get(name) is { } run ? HttpJson.Of(d.Plans.Report(run)) : Problems.NotFound($"no plan '{name}'"));

        // Stops the plan (its queued and running tasks are cancelled, its gate too) and removes it from the list.
        app.MapDelete("/api/v1/plans/{name}", async (string name) =>
        {
            if (d.Plans is null) return Problems.Unavailable("the daemon is starting");
            var r = await d.Plans.DeleteAsync(name);
            if (r is null) return Problems.Unavailable("the daemon is stopping");
            return r.Status == 200
                ? HttpJson.Of(new JsonObject { ["ok"] = true, ["name"] = name, ["cancelled"] = r.Cancelled })
                : Problems.Of(r.Status, r.Detail!);
        });

        app.MapGet("/api/v1/status", () => HttpJson.Of(DaemonStatusJson.Of(d)));

        app.MapGet("/api/v1/gpus", () => HttpJson.Of(GpuJson.Of(d.Gpus, d.GpuReadings, d.Engine.GpuHolders)));

        // The workers, pilots and Slurm jobs, as the engine's loop sees them: a loop too busy to answer within 5 s is a 503.
        app.MapGet("/api/v1/workers", async () =>
            await d.Engine.RemoteAsync(TimeSpan.FromSeconds(5)) is { } view ? HttpJson.Of(WorkersJson.Of(view, d.Config))
            : Problems.Unavailable("the daemon is starting or stopping"));

        app.MapGet("/api/v1/classes", () => HttpJson.Of(Commands.Classes(d)));

        // Alive. "/health" is the replaced orchestrator's name for it; "status" is what it answered there.
        app.MapGet("/healthz", () => HttpJson.Of(new JsonObject { ["ok"] = true, ["status"] = "ok" }));
        app.MapGet("/health", () => HttpJson.Of(new JsonObject { ["ok"] = true, ["status"] = "ok" }));
        // Not ready while the store cannot be trusted: a write failing (disk full), a failed integrity check, a
        // corrupt page met by a read. A load balancer or a supervisor reads this; /healthz only says the process answers.
        app.MapGet("/readyz", () => !d.Started ? Problems.Unavailable("starting")
            : d.Store.Unhealthy is { } why ? Problems.Unavailable(why)
            : HttpJson.Of(new JsonObject { ["ok"] = true, ["schema"] = d.Store.SchemaVersion }));
    }

    /// <summary>
    /// The replaced orchestrator answered a gpu_slurm submit once sbatch took the job: <c>"slurm_job_id"</c> (digits, as
    /// a string) and <c>"status": "submitted"</c>. So does this, waiting up to <c>slurm_submit_wait</c>; past it (the class
    /// is at its limit, Slurm is slow) the task is queued all the same and the answer says <c>"status": "queued"</c>.
    /// </summary>
    private static async Task<Answer> SlurmSubmitAnswerAsync(SparkyDaemon d, Submission sub, Answer answer)
    {
        if (!answer.Ok || sub.Spec.Class != Classes.GpuSlurm || sub.Array is not null || !d.Engine.RunsOnSlurm(sub.Spec.Class)
            || answer.Body is not JsonObject body || body["id"] is not JsonValue idValue || !TaskId.TryParse(idValue.GetValue<string>(), out var id))
            return answer;
        var jobId = await d.Engine.SlurmJobIdAsync(id, d.Config.SlurmSubmitWait);
        if (jobId is not null)
        {
            body["slurm_job_id"] = jobId;
            body["status"] = "submitted";
        }
        else if (d.Store.Get(id) is { State: var state } t && state.IsTerminal())
        {
            // It ended before Slurm had it (no handler for its payload, sbatch refused it): say so now, as the
            // replaced orchestrator said a failed submission at once.
            body["status"] = state == TaskState.Cancelled ? "cancelled" : "failed";
            body["reason"] = t.Reason;
            if (TaskJson.ErrorOf(t) is { } error) body["error"] = error;
        }
        else body["status"] = "queued";
        return answer;
    }

    /// <summary>A command's answer as HTTP: its JSON with its status, or a problem (429 with Retry-After).</summary>
    private static IResult Reply(Answer a) =>
        a.Ok ? HttpJson.Of(a.Body, statusCode: a.Status)
        : a.Status == 429 ? new QueueFullResult(a.Detail!)
        : Problems.Of(a.Status, a.Detail!);

    private static IResult? ParseId(string text, out TaskId id) =>
        TaskId.TryParse(text, out id) ? null : Problems.BadRequest($"invalid task id (must match {TaskId.Pattern})");

    /// <summary>429 with Retry-After: the queue is over its bound; the client should slow down, not give up.</summary>
    private sealed class QueueFullResult(string detail) : IResult
    {
        public Task ExecuteAsync(HttpContext ctx)
        {
            ctx.Response.Headers.RetryAfter = Commands.QueueFullRetryAfterSeconds.ToString();
            return Results.Problem(detail, statusCode: 429, title: "Too many requests").ExecuteAsync(ctx);
        }
    }
}
