using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Sparky.IntegrationTests.Support;

namespace Sparky.IntegrationTests.Api;

/// <summary>CPU, memory and GPU requests against a real daemon on this machine (which has no GPU).</summary>
public sealed class ResourceTests
{
    private static JsonObject Task(string shell, string workDir, JsonObject resources, string? cls = null)
    {
        var body = new JsonObject { ["payload"] = new JsonObject { ["command"] = shell, ["cwd"] = workDir, ["resources"] = resources } };
        if (cls is not null) body["class"] = cls;
        return body;
    }

    [Theory]
    [InlineData("""{"cpus": 100000}""", null, "asks for 100000 CPUs")]
    [InlineData("""{"memory_mb": 999999999}""", null, "asks for 999999999 MiB of memory")]
    [InlineData("""{"gpus": 1}""", null, "asks for a GPU; none was found")]
    [InlineData("""{"gpu_memory_mb": 1024}""", null, "asks for a GPU; none was found")]
    [InlineData("""{}""", "gpu", "asks for a GPU; none was found")]
    public async Task A_task_that_can_never_fit_is_refused_at_submit_with_the_reason(string resources, string? cls, string why)
    {
        await using var d = await TestDaemon.StartAsync();
        var body = Task("true", d.WorkDir, (JsonObject)JsonNode.Parse(resources)!, cls);
        using var resp = await d.Http.PostAsync("api/v1/tasks", new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json"));
        var text = await resp.Content.ReadAsStringAsync();
        Assert.Equal(HttpStatusCode.BadRequest, resp.StatusCode);
        Assert.Contains("can never run here", text);
        Assert.Contains(why, text);
        Assert.Equal(0, (int)JsonNode.Parse(await d.Http.GetStringAsync("queue/status"))!["submitted"]!);
    }

    [Fact]
    public async Task Tasks_that_reserve_every_cpu_run_one_at_a_time_even_with_free_slots()
    {
        await using var d = await TestDaemon.StartAsync(new() { ["cpu_short_slots"] = "8" });
        int cores = Environment.ProcessorCount;
        var ids = new List<string>();
        for (int i = 0; i < 3; i++)
            ids.AddRange(await d.SubmitAsync(Task($"date +%s%N > start.{i}; sleep 0.3; date +%s%N > end.{i}", d.WorkDir, new JsonObject { ["cpus"] = cores })));
        foreach (var id in ids) Assert.Equal("succeeded", (string?)(await d.WaitAsync(id))["state"]);
        var spans = Enumerable.Range(0, 3).Select(i => (
            Start: long.Parse(File.ReadAllText(Path.Combine(d.WorkDir, $"start.{i}"))),
            End: long.Parse(File.ReadAllText(Path.Combine(d.WorkDir, $"end.{i}"))))).OrderBy(s => s.Start).ToList();
        for (int i = 1; i < spans.Count; i++) Assert.True(spans[i].Start >= spans[i - 1].End, "two tasks that each reserve every CPU overlapped");
        // And tasks that reserve nothing still run side by side, up to their class limit.
        var free = new List<string>();
        for (int i = 0; i < 2; i++) free.Add(await d.SubmitShellAsync($"touch go.{i}; while [ ! -e go.0 ] || [ ! -e go.1 ]; do sleep 0.01; done"));
        foreach (var id in free) Assert.Equal("succeeded", (string?)(await d.WaitAsync(id, 30))["state"]);
    }
}
