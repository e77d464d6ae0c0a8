using System.Text.Json.Nodes;
using Sparky.Cli.Progress;

namespace Sparky.Cli.Top;

/// <summary>One class: its tasks in each state and its concurrency limit now (<c>GET /api/v1/classes</c>).</summary>
internal sealed record ClassRow(string Name, long Queued, long Running, int Limit, long Succeeded, long Failed, long Cancelled)
{
    public static ClassRow? Of(JsonNode? c) => JsonRead.Str(c, "name") is not { } name ? null
        : new ClassRow(name, JsonRead.Long(c, "queued") ?? 0, JsonRead.Long(c, "running") ?? 0, (int)(JsonRead.Long(c, "limit") ?? 0),
            JsonRead.Long(c, "succeeded") ?? 0, JsonRead.Long(c, "failed") ?? 0, JsonRead.Long(c, "cancelled") ?? 0);
}

/// <summary>A running task as the view shows it: what its start said, then its details and progress as they come.</summary>
internal sealed class RunningTask(string id, string cls)
{
    public string Id { get; } = id;
    public string Class { get; set; } = cls;
    public string? Name { get; set; }
    public DateTimeOffset? StartedAt { get; set; }
    public int? Attempt { get; set; }
    public TaskProgress? Progress { get; set; }
    /// <summary>Its details (name, start) were read, or asked for: it is not asked for again.</summary>
    public bool Described { get; set; }

    public static RunningTask? Of(JsonNode? t)
    {
        if (JsonRead.Str(t, "id") is not { } id) return null;
        return new RunningTask(id, JsonRead.Str(t, "class") ?? "")
        {
            Name = JsonRead.Str(t, "name"),
            StartedAt = JsonRead.Time(t, "started_at"),
            Attempt = (int?)JsonRead.Long(t, "attempts"),
            Progress = TaskProgress.Of(t?["progress"]),
            Described = true,
        };
    }
}

/// <summary>A task that ended: its outcome and how it ended.</summary>
internal sealed record EndedTask(string Id, string? Name, string Class, string State, int? ExitCode, int? Signal, string? Reason,
    long? DurationMs, DateTimeOffset? EndedAt)
{
    /// <summary>From a task as the API gives it.</summary>
    public static EndedTask? Of(JsonNode? t) => JsonRead.Str(t, "id") is not { } id ? null
        : new EndedTask(id, JsonRead.Str(t, "name"), JsonRead.Str(t, "class") ?? "", JsonRead.Str(t, "state") ?? "?", (int?)JsonRead.Long(t, "exit_code"),
            (int?)JsonRead.Long(t, "signal"), JsonRead.Str(t, "reason"), JsonRead.Long(t, "duration_ms"), JsonRead.Time(t, "finished_at"));
}

/// <summary>A task holding (part of) a GPU: a whole one, or a share of its memory.</summary>
internal sealed record GpuHolder(string Id, long? ShareMb);

/// <summary>One GPU (<c>GET /api/v1/gpus</c>): its readings and the tasks holding it.</summary>
internal sealed record GpuRow(string Index, string? Name, double? Utilization, long? UsedBytes, long? TotalBytes, IReadOnlyList<GpuHolder> Holders)
{
    public static GpuRow? Of(JsonNode? g)
    {
        if (g is not JsonObject) return null;
        var holders = (g["tasks"] as JsonArray ?? []).Select(h => JsonRead.Str(h, "id") is { } id ? new GpuHolder(id, JsonRead.Long(h, "gpu_memory_mb")) : null)
            .OfType<GpuHolder>().ToList();
        double? util = JsonRead.Number(g["utilization"]);
        return new GpuRow(JsonRead.Long(g, "index")?.ToString() ?? "?", JsonRead.Str(g, "name"), util, JsonRead.Long(g, "memory_used_bytes"),
            JsonRead.Long(g, "memory_total_bytes"), holders);
    }
}

/// <summary>What one full read of the daemon gave, as sent (so <c>--json</c> prints it as it came).</summary>
internal sealed record TopSnapshot(JsonNode? Classes, JsonArray Running, JsonArray Ended, JsonNode? Gpus)
{
    public JsonObject ToJson() => new()
    {
        ["classes"] = Classes?["classes"]?.DeepClone(),
        ["running"] = Running.DeepClone(),
        ["ended"] = Ended.DeepClone(),
        ["gpus"] = Gpus?["gpus"]?.DeepClone(),
    };
}
