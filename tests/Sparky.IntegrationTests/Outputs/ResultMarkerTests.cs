using System.Text.Json.Nodes;
using Sparky.IntegrationTests.Support;
using Xunit.Abstractions;
using static Sparky.IntegrationTests.BadInput.BadInputSupport;

namespace Sparky.IntegrationTests.Outputs;

/// <summary>The result marker as the replaced runner read it, over real tasks: the last stdout line that starts with
/// <c>__DSPY_RESULT__:</c> once trimmed, whatever follows it; an invalid one leaves no result and says why.</summary>
public sealed class ResultMarkerTests(ITestOutputHelper output)
{
    [Fact]
    public async Task The_last_marker_line_is_the_result_even_with_lines_after_it_and_an_invalid_one_says_why()
    {
        await using var d = await TestDaemon.StartAsync();
        // A marker, then a later indented one, then 200 KiB of other output (more than the tail the old reader looked at).
        var good = """
            echo '__DSPY_RESULT__:{"first": true}'
            printf '  __DSPY_RESULT__: {"score": 0.93, "items": [1, 2]}  \r\n'
            i=0; while [ $i -lt 2000 ]; do echo "log line $i ....................................................................................................."; i=$((i+1)); done
            echo "shutting down" >&2
            """;
        var bad = """
            echo '__DSPY_RESULT__:{"ok": 1}'
            echo '__DSPY_RESULT__:{"score": 0.93,'
            echo 'done'
            """;
        await ArtifactsTests.SubmitCompatibleAsync(d.Http, new JsonObject { ["id"] = "good", ["payload"] = new JsonObject { ["command"] = good, ["cwd"] = d.WorkDir } });
        await ArtifactsTests.SubmitCompatibleAsync(d.Http, new JsonObject { ["id"] = "bad", ["payload"] = new JsonObject { ["command"] = bad, ["cwd"] = d.WorkDir } });
        var doneDir = Path.Combine(d.DataDir, "queue", "done");
        Assert.True(await EventuallyAsync(() => Task.FromResult(File.Exists(Path.Combine(doneDir, "good.json")) && File.Exists(Path.Combine(doneDir, "bad.json"))), seconds: 30),
            "the done files never appeared");

        var g = await d.GetTaskAsync("good");
        Assert.Equal("succeeded", (string?)g["state"]);
        Assert.Equal("""{"score":0.93,"items":[1,2]}""", g["result"]?.ToJsonString());
        Assert.Null(g["result_error"]);
        var gFile = JsonNode.Parse(File.ReadAllText(Path.Combine(doneDir, "good.json")))!;
        Assert.Equal("""{"score":0.93,"items":[1,2]}""", gFile["result"]?.ToJsonString());
        Assert.Null(gFile["result_error"]);

        var b = await d.GetTaskAsync("bad");
        output.WriteLine($"bad: result_error = {b["result_error"]}");
        Assert.Equal("succeeded", (string?)b["state"]);
        Assert.Null(b["result"]); // the earlier valid marker does not stand in, as with the runner
        Assert.Contains("not valid JSON", (string?)b["result_error"]);
        var bFile = JsonNode.Parse(File.ReadAllText(Path.Combine(doneDir, "bad.json")))!;
        Assert.Null(bFile["result"]);
        Assert.Equal((string?)b["result_error"], (string?)bFile["result_error"]);
    }
}
