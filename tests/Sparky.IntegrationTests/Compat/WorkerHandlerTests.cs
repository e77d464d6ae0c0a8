using System.Text;
using Sparky.IntegrationTests.Support;

namespace Sparky.IntegrationTests.Compat;

/// <summary>A payload that names work, in a class that runs on workers: the payload travels in the task message and the
/// worker writes the file its handler reads (a worker on another host sees nothing of the daemon's data dir).</summary>
[Collection(SerialCollection.Name)] // workers on this host: one class at a time (see SerialCollection)
public sealed class WorkerHandlerTests
{
    [Fact]
    public async Task A_worker_runs_the_handler_with_the_payload_on_stdin_and_in_a_file_of_its_own()
    {
        await using var d = await TestDaemon.StartAsync(new()
        {
            ["worker_classes"] = "cpu_short", ["worker_heartbeat"] = "0.2", ["worker_timeout"] = "5",
            ["cpu_short_handler"] = "sh -c 'cat; echo; cat \"$SPARKY_PAYLOAD_FILE\"; echo; stat -c %a \"$SPARKY_PAYLOAD_FILE\"; echo \"$SPARKY_PAYLOAD_FILE\"'",
        });
        await using var w = WorkerProcess.Start(d.Daemon.ZmqEndpoint, "hw1", slots: 1);
        using var resp = await d.Http.PostAsync("queue/submit", new StringContent("""{"id":"on-worker","class":"cpu_short","payload":{"test":"data"}}""", Encoding.UTF8, "application/json"));
        Assert.True(resp.IsSuccessStatusCode, await resp.Content.ReadAsStringAsync());
        var t = await d.WaitAsync("on-worker", 60);
        Assert.True((string?)t["state"] == "succeeded", t.ToJsonString());
        Assert.Equal("hw1", (string?)t["host"]);
        var lines = (await d.Http.GetStringAsync("api/v1/tasks/on-worker/logs")).Split('\n');
        Assert.Equal(["""{"test":"data"}""", """{"test":"data"}""", "600"], lines[..3]);
        Assert.DoesNotContain(d.DataDir, lines[3]);
        Assert.False(File.Exists(lines[3]), "the worker removes the payload file when the task ends");
    }
}
