using System.Text.Json.Nodes;

namespace Sparky.Core.Tasks;

/// <summary>
/// Where two envelopes differ, as field paths (<c>payload.command[1]</c>, <c>class</c>): a client that sends an id
/// again is told whether it is the same task (an idempotent submit, answered with the task) or another task under a
/// taken id (409, naming what differs). Object fields compare by name, whatever their order.
/// </summary>
public static class EnvelopeDiff
{
    public static IReadOnlyList<string> Paths(JsonNode? a, JsonNode? b, int max = 5)
    {
        var found = new List<string>();
        Walk(a, b, "", found, max);
        return found;
    }

    public static bool Same(JsonNode? a, JsonNode? b) => Paths(a, b, max: 1).Count == 0;

    private static void Walk(JsonNode? a, JsonNode? b, string path, List<string> found, int max)
    {
        if (found.Count >= max) return;
        switch (a, b)
        {
            case (null, null):
                return;
            case (JsonObject x, JsonObject y):
                foreach (var (k, v) in x)
                    if (!y.TryGetPropertyValue(k, out var w)) found.Add(Join(path, k) + " (not in the new one)");
                    else Walk(v, w, Join(path, k), found, max);
                foreach (var (k, _) in y)
                    if (!x.ContainsKey(k) && found.Count < max) found.Add(Join(path, k) + " (new)");
                return;
            case (JsonArray x, JsonArray y):
                if (x.Count != y.Count) { found.Add($"{Name(path)} ({x.Count} items, now {y.Count})"); return; }
                for (int i = 0; i < x.Count; i++) Walk(x[i], y[i], $"{path}[{i}]", found, max);
                return;
            case (JsonValue, JsonValue):
                if (!JsonNode.DeepEquals(a, b)) found.Add(Name(path));
                return;
            default:
                found.Add(Name(path));
                return;
        }
    }

    private static string Join(string path, string key) => path.Length == 0 ? key : path + "." + key;
    private static string Name(string path) => path.Length == 0 ? "the envelope" : path;
}
