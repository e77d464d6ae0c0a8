using System.Text.Json.Nodes;
using Sparky.Core.Config;
using Sparky.Core.Tasks;
using Sparky.Server.Http;

namespace Sparky.Server.Daemon;

/// <summary>
/// What a command answers, whatever door it came through: a JSON body with a success status, or an
/// HTTP-like error status with one line of detail. HTTP turns it into a response or a problem, ZeroMQ
/// into a <c>&lt;type&gt;.ok</c> or <c>error</c> reply, so both say the same thing.
/// </summary>
public readonly record struct Answer(int Status, JsonNode? Body, string? Detail = null)
{
    public bool Ok => Status < 400;
    public static Answer Of(JsonNode body, int status = 200) => new(status, body);
    public static Answer Error(int status, string detail) => new(status, null, detail);
}

/// <summary>The task commands shared by the HTTP API and the ZeroMQ command socket. Thread-safe.</summary>
public static class Commands
{
    /// <summary>One envelope or an array of them, as <c>POST /api/v1/tasks</c> and ZeroMQ <c>submit</c> take: 201
    /// <c>{"id", "ids":[…]}</c> (<c>id</c> where one envelope made one task).</summary>
    public static async Task<Answer> SubmitAsync(SparkyDaemon d, JsonNode? node)
    {
        var items = node is JsonArray arr ? arr.ToList() : [node];
        if (items.Count == 0) return Answer.Error(400, "the array is empty");
        var (subs, error) = Parse(d, items);
        if (error is not null) return Answer.Error(400, error);
        // One envelope that made one task also answers its "id", as /queue/submit does, over HTTP and ZeroMQ alike.
        bool one = node is not JsonArray;
        return await SubmitAsync(d, subs, ids => one && ids.Count == 1
            ? new JsonObject { ["id"] = ids[0].Value, ["ids"] = IdArray(ids) }
            : new JsonObject { ["ids"] = IdArray(ids) }, 201);
    }

    /// <summary>Envelopes as the native door reads them; the first one that does not parse says why (with its index
    /// where there are several), and then nothing is submitted.</summary>
    public static (List<Submission> Submissions, string? Error) Parse(SparkyDaemon d, IReadOnlyList<JsonNode?> items)
    {
        var subs = new List<Submission>(items.Count);
        for (int i = 0; i < items.Count; i++)
        {
            var parsed = EnvelopeParser.Parse(items[i], d.Engine.KnownClasses, d.Engine.NativeDoor);
            if (!parsed.Ok) return (subs, items.Count == 1 ? parsed.Error! : $"task [{i}]: {parsed.Error}");
            subs.Add(parsed.Submission!);
        }
        return (subs, null);
    }

    /// <summary>What a client is told to wait after a 429 (Retry-After, seconds): a plan waits at least as long.</summary>
    public const int QueueFullRetryAfterSeconds = 1;

    /// <summary>Parsed submissions to the engine; <paramref name="ok"/> shapes the success body.</summary>
    public static async Task<Answer> SubmitAsync(SparkyDaemon d, IReadOnlyList<Submission> subs, Func<IReadOnlyList<TaskId>, JsonNode> ok, int okStatus = 200) =>
        await d.Engine.SubmitAsync(subs) switch
        {
            // The same envelope under the same id again (a script run twice) gets the task it made the first time:
            // 200, not 201, and "existing" says that nothing new was queued.
            SubmitOutcome.Accepted { AllSentAgain: true } a => Answer.Of(Existing(ok(a.Ids)), 200),
            SubmitOutcome.Accepted a => Answer.Of(ok(a.Ids), okStatus),
            SubmitOutcome.Invalid i => Answer.Error(400, i.Reason),
            SubmitOutcome.Conflict c => Answer.Error(409, c.Reason),
            SubmitOutcome.QueueFull q => Answer.Error(429, QueueFullDetail(q, subs.Sum(s => (long)(s.Array?.Count ?? 1)))),
            SubmitOutcome.Unavailable u => Answer.Error(503, u.Reason),
            _ => throw new InvalidOperationException(),
        };

    /// <summary>The replaced orchestrator's <c>/queue/status</c> counters: from counters, never a scan.</summary>
    public static JsonObject QueueStatus(SparkyDaemon d)
    {
        var c = d.Store.Counters;
        long pending = c.Total(TaskState.Queued), running = c.Total(TaskState.Running);
        long succeeded = c.Total(TaskState.Succeeded), failed = c.Total(TaskState.Failed) + c.Total(TaskState.Cancelled);
        return new JsonObject
        {
            ["pending"] = pending,
            ["running"] = running,
            ["done"] = succeeded,
            ["failed"] = failed,
            ["submitted"] = pending + running + succeeded + failed,
            ["processed"] = succeeded + failed,
            ["completed"] = succeeded,
        };
    }

    /// <summary><c>GET /api/v1/classes</c>: per class, its tasks in each state (from the counters, as <c>/metrics</c>) and
    /// its concurrency limit now (the limiter's, or a worker class's free slots).</summary>
    public static JsonObject Classes(SparkyDaemon d)
    {
        var c = d.Store.Counters;
        var list = new JsonArray();
        // The built-in classes in their usual order, then any other, by name.
        var others = d.Engine.KnownClasses.Concat(c.Classes).Except(SparkyConfig.Classes).Distinct().Order(StringComparer.Ordinal);
        foreach (var cls in SparkyConfig.Classes.Concat(others))
        {
            var o = new JsonObject { ["name"] = cls };
            foreach (var s in Enum.GetValues<TaskState>()) o[s.Name()] = c.Get(cls, s);
            o["limit"] = d.Engine.Limit(cls);
            list.Add((JsonNode)o);
        }
        return new JsonObject { ["classes"] = list };
    }

    /// <summary>One task, as <c>GET /api/v1/tasks/{id}</c>.</summary>
    public static Answer Get(SparkyDaemon d, string id) =>
        !TaskId.TryParse(id, out var tid) ? BadId()
        : d.Store.Get(tid) is { } t ? Answer.Of(TaskJson.Task(t, d.Engine.SlurmViewOf(tid), d.Progress.Unstored(tid, t.State)))
        : Answer.Error(404, $"no task '{tid}'");

    /// <summary>Cancels a queued or running task, as <c>DELETE /api/v1/tasks/{id}</c>: 202 once it is signalled.</summary>
    public static async Task<Answer> CancelAsync(SparkyDaemon d, string id)
    {
        if (!TaskId.TryParse(id, out var tid)) return BadId();
        return await d.Engine.CancelAsync(tid) switch
        {
            CommandOutcome.Done => Answer.Of(new JsonObject { ["ok"] = true, ["id"] = tid.Value }, 202),
            CommandOutcome.NotFound => Answer.Error(404, $"no task '{tid}'"),
            CommandOutcome.AlreadyFinished => Answer.Error(409, $"task {tid} has already finished"),
            _ => Answer.Error(503, "the store is unavailable"),
        };
    }

    /// <summary>A page of tasks, as <c>GET /api/v1/tasks?state=&amp;class=&amp;q=&amp;limit=&amp;cursor=&amp;order=</c> (see
    /// <see cref="TaskQuery"/>): <c>{"tasks": [...], "next_cursor"}</c>, the cursor null on the last page (a search's
    /// page may be short and still have one: <see cref="SearchWalk"/>). A wrong parameter is a 400 that names it.</summary>
    public static Answer List(SparkyDaemon d, string? state, string? cls, string? q, long? limit, long? cursor, string? order)
    {
        // The classes configured, and any a task in the store still has (a class since removed from the configuration).
        var known = new HashSet<string>(d.Engine.KnownClasses, StringComparer.Ordinal);
        known.UnionWith(d.Store.Counters.Classes);
        var (query, error) = TaskQueries.Parse(state, cls, q, limit, cursor, order, known);
        if (query is null) return Answer.Error(400, error!);
        var page = d.Store.List(query);
        return Answer.Of(new JsonObject
        {
            ["tasks"] = new JsonArray(page.Tasks.Select(t => (JsonNode?)TaskJson.Task(t, d.Engine.SlurmViewOf(t.Id), d.Progress.Unstored(t.Id, t.State))).ToArray()),
            ["next_cursor"] = page.NextCursor,
        });
    }

    /// <summary>Says what was asked as well as what is there: a batch (or an array) that alone is over the bound
    /// can never go in, and waiting would not help.</summary>
    private static string QueueFullDetail(SubmitOutcome.QueueFull q, long adding) =>
        adding > q.Bound
            ? $"this request adds {adding} tasks, more than the queue's bound of {q.Bound} (SPARKY_MAX_QUEUED): send it in smaller batches"
            : $"the queue holds {q.Queued} tasks and this request adds {adding}: over its bound of {q.Bound} (SPARKY_MAX_QUEUED)";

    private static JsonNode Existing(JsonNode body)
    {
        if (body is JsonObject o) o["existing"] = true;
        return body;
    }

    public static JsonArray IdArray(IReadOnlyList<TaskId> ids) => new(ids.Select(i => (JsonNode?)i.Value).ToArray());

    private static Answer BadId() => Answer.Error(400, $"invalid task id (must match {TaskId.Pattern})");
}
