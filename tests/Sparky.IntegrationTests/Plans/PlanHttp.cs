using System.Text;
using System.Text.Json.Nodes;

namespace Sparky.IntegrationTests.Plans;

/// <summary>The plan API as a test drives it: post a plan, read it, poll it to an end or a condition.</summary>
internal static class PlanHttp
{
    public static async Task<(int Status, JsonNode? Body)> PostAsync(HttpClient http, string text, string baseDir, JsonObject? vars = null)
    {
        var body = new JsonObject { ["text"] = text, ["base_dir"] = baseDir, ["path"] = Path.Combine(baseDir, "plan.yaml") };
        if (vars is not null) body["vars"] = vars;
        using var resp = await http.PostAsync("api/v1/plans", new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json"));
        var s = await resp.Content.ReadAsStringAsync();
        return ((int)resp.StatusCode, s.Length > 0 ? JsonNode.Parse(s) : null);
    }

    public static async Task<JsonNode> GetAsync(HttpClient http, string name) =>
        JsonNode.Parse(await http.GetStringAsync($"api/v1/plans/{Uri.EscapeDataString(name)}"))!;

    /// <summary>Polls the report until <paramref name="done"/> holds (a plan not there yet, as one a CLI is about to
    /// send, does not).</summary>
    public static async Task<JsonNode> UntilAsync(HttpClient http, string name, Func<JsonNode, bool> done, double seconds = 60)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (true)
        {
            using var resp = await http.GetAsync($"api/v1/plans/{Uri.EscapeDataString(name)}");
            var r = resp.StatusCode == System.Net.HttpStatusCode.NotFound ? null
                : JsonNode.Parse(await resp.EnsureSuccessStatusCode().Content.ReadAsStringAsync())!;
            if (r is not null && done(r)) return r;
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"plan {name}: {r?.ToJsonString() ?? "not there"}");
            await Task.Delay(50);
        }
    }

    public static Task<JsonNode> EndAsync(HttpClient http, string name, double seconds = 60) =>
        UntilAsync(http, name, r => (string?)r["status"] is "succeeded" or "stopped", seconds);

    public static JsonNode Phase(JsonNode report, string name) => ((JsonArray)report["phases"]!).First(p => (string?)p!["name"] == name)!;

    public static JsonNode Workstream(JsonNode report, string phase, string name) =>
        ((JsonArray)Phase(report, phase)["workstreams"]!).First(w => (string?)w!["name"] == name)!;
}
