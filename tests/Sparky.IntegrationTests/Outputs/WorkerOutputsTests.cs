using System.Security.Cryptography;
using System.Text.Json.Nodes;
using NetMQ;
using Sparky.IntegrationTests.Support;
using Sparky.IntegrationTests.Zmq;
using Xunit.Abstractions;
using static Sparky.IntegrationTests.BadInput.BadInputSupport;

namespace Sparky.IntegrationTests.Outputs;

/// <summary>Results and artifacts of tasks run by workers: the worker reads the result marker by the daemon's rule and
/// sends why it gave none; the daemon hashes the outputs of a worker on its own host and skips, saying why, those of a
/// worker on another host, whose files it cannot see.</summary>
[Collection(SerialCollection.Name)] // workers on this host: one class at a time (see SerialCollection)
public sealed class WorkerOutputsTests(ITestOutputHelper output)
{
    private static Dictionary<string, string> Settings() => new()
    {
        // 30 s: the hand-written worker here never heartbeats, and no loss is tested.
        ["worker_classes"] = "cpu_short", ["worker_heartbeat"] = "0.2", ["worker_timeout"] = "30",
    };

    private static JsonObject Task(string id, string command, string cwd, params string[] outputs) => new()
    {
        ["id"] = id,
        ["payload"] = new JsonObject { ["command"] = command, ["cwd"] = cwd },
        ["artifacts"] = new JsonObject { ["outputs"] = new JsonArray(outputs.Select(p => (JsonNode?)new JsonObject { ["path"] = p }).ToArray()) },
    };

    [Fact]
    public async Task A_worker_on_this_host_reads_the_marker_by_the_same_rule_and_its_outputs_are_hashed()
    {
        await using var d = await TestDaemon.StartAsync(Settings());
        await using var w = WorkerProcess.Start(d.Daemon.ZmqEndpoint, "local", slots: 2);
        await d.SubmitAsync(new JsonArray(
            Task("w-good", "printf 'x%.0s' $(seq 1 64) > o.txt; echo '__DSPY_RESULT__:{\"k\": 2}'; echo after", d.WorkDir, "o.txt", "nope.txt"),
            Task("w-bad", "echo '__DSPY_RESULT__:{oops'; echo after", d.WorkDir)));
        Assert.True(await EventuallyAsync(async () => (string?)(await d.GetTaskAsync("w-good"))["artifacts"]?["state"] == "recorded", seconds: 60),
            "the worker task's artifacts were not recorded; worker said: " + w.Stderr);
        var good = await d.GetTaskAsync("w-good");
        output.WriteLine(good["artifacts"]!.ToJsonString());
        Assert.Equal("local", (string?)good["host"]);
        Assert.Equal("""{"k":2}""", good["result"]?.ToJsonString());
        var o = good["artifacts"]!["outputs"]!;
        Assert.Equal(64, (long)o[0]!["size_bytes"]!);
        Assert.Equal("sha256:" + Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(Path.Combine(d.WorkDir, "o.txt")))), (string?)o[0]!["checksum"]);
        Assert.True((bool?)o[1]!["missing"]);

        var bad = await d.WaitAsync("w-bad");
        Assert.Equal("succeeded", (string?)bad["state"]);
        Assert.Null(bad["result"]);
        Assert.Contains("not valid JSON", (string?)bad["result_error"]);
    }

    [Fact]
    public async Task The_outputs_of_a_worker_on_another_host_are_skipped_with_the_reason()
    {
        await using var d = await TestDaemon.StartAsync(Settings());
        using var c = new ZmqTestClient(d.Daemon.ZmqEndpoint);
        var session = (string)c.Ok("hello", new JsonObject { ["name"] = "far", ["host"] = "bench-7", ["slots"] = 1, ["credits"] = 1 })!["session"]!;
        await d.SubmitAsync(Task("remote", "true", "/data/run", "result.json"));
        var frames = new List<byte[]>();
        Assert.True(c.Socket.TryReceiveMultipartBytes(TimeSpan.FromSeconds(10), ref frames), "no task came to the worker");
        var t = ZmqTestClient.Unpack(frames[1])["body"]!;
        c.Socket.SendMoreFrameEmpty().SendFrame(ZmqTestClient.Pack(ZmqTestClient.Envelope("finished", new JsonObject
        {
            ["session"] = session, ["id"] = (string?)t["id"], ["attempt"] = (int?)t["attempt"], ["exit_code"] = 0,
            ["result_error"] = "the last __DSPY_RESULT__: line is not valid JSON: test", ["credit"] = 1,
        }, 1)));
        var task = await d.WaitAsync("remote");
        output.WriteLine(task["artifacts"]!.ToJsonString());
        Assert.Equal("succeeded", (string?)task["state"]);
        Assert.Equal("skipped", (string?)task["artifacts"]!["state"]);
        Assert.Contains("bench-7", (string?)task["artifacts"]!["reason"]);
        Assert.Equal("result.json", (string?)task["artifacts"]!["outputs"]![0]!["path"]);
        Assert.Equal("the last __DSPY_RESULT__: line is not valid JSON: test", (string?)task["result_error"]);
    }
}
