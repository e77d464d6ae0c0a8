using System.Text.Json.Nodes;
using Sparky.IntegrationTests.Support;

namespace Sparky.IntegrationTests.Api;

/// <summary>The SSE stream's bytes, as clients parse them: the framework's formatter writes the events, and the wire
/// is what it was when they were framed by hand.</summary>
public sealed class EventStreamTests
{
    [Fact]
    public async Task Headers_and_a_comment_come_at_once_then_each_event_is_its_name_its_json_and_a_blank_line()
    {
        await using var d = await TestDaemon.StartAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        // The response (headers and the opening comment) arrives before anything happens.
        using var resp = await d.Http.GetAsync("api/v1/events", HttpCompletionOption.ResponseHeadersRead, cts.Token);
        Assert.Equal("text/event-stream", resp.Content.Headers.ContentType?.MediaType);
        Assert.Equal("no-cache", resp.Headers.CacheControl?.ToString());
        using var reader = new StreamReader(await resp.Content.ReadAsStreamAsync(cts.Token));
        Assert.Equal(": sparky events", await reader.ReadLineAsync(cts.Token));
        Assert.Equal("", await reader.ReadLineAsync(cts.Token));

        var id = await d.SubmitShellAsync("true");
        var seen = new List<string>();
        while (!seen.Contains("task.finished"))
        {
            var name = await reader.ReadLineAsync(cts.Token);
            Assert.NotNull(name);
            Assert.StartsWith("event: ", name);
            var data = await reader.ReadLineAsync(cts.Token);
            Assert.NotNull(data);
            Assert.StartsWith("data: ", data);
            Assert.Equal("", await reader.ReadLineAsync(cts.Token));
            var e = JsonNode.Parse(data[6..])!;
            Assert.Equal(name[7..], (string?)e["type"]);
            Assert.Equal(1, (int?)e["v"]);
            Assert.True((long?)e["ts"] > 0);
            if ((string?)e["body"]!["id"] == id) seen.Add(name[7..]);
        }
        Assert.Equal(["task.queued", "task.started", "task.finished"], seen);
    }
}
