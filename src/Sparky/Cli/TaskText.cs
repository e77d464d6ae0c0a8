using System.Text.Json.Nodes;

namespace Sparky.Cli;

/// <summary>Parts of a task's JSON put in words for its table row and its detail. Pure.</summary>
internal static class TaskText
{
    /// <summary>What the task asked for beyond one process on one machine, as submitted: "2 nodes, 8 GPUs per node,
    /// 4 procs per node, exclusive, port"; null where it asked for none of them.</summary>
    public static string? Nodes(JsonNode t)
    {
        var parts = new List<string>(5);
        if (Int(t["nodes"]) is { } n) parts.Add(Count(n, "node"));
        if (Int(t["gpus_per_node"]) is { } g) parts.Add(Count(g, "GPU") + " per node");
        if (Int(t["procs_per_node"]) is { } p) parts.Add(Count(p, "proc") + " per node");
        if (True(t["exclusive"])) parts.Add("exclusive");
        if (True(t["port"])) parts.Add("port");
        return parts.Count == 0 ? null : string.Join(", ", parts);
    }

    private static string Count(int n, string what) => n == 1 ? $"1 {what}" : $"{n} {what}s";
    private static int? Int(JsonNode? v) => v is JsonValue j && j.TryGetValue<int>(out var n) ? n : null;
    private static bool True(JsonNode? v) => v is JsonValue j && j.TryGetValue<bool>(out var b) && b;
}
