using System.Text;
using System.Text.Json.Nodes;
using Sparky.IntegrationTests.Support;
using Xunit.Abstractions;

namespace Sparky.IntegrationTests.Durability;

/// <summary>
/// Issue 15, point 8: after a restart, a start that throws (here: its log folder cannot be made) built its attempt as
/// <c>cpu_short</c> with no retries, because the engine knew the specs only of tasks submitted to it, not of recovered
/// ones: the wrong class's counters moved and the task's own retry policy was skipped. The task must keep its class
/// and be retried as its spec says.
/// </summary>
public sealed class RestartStartFailureTests(ITestOutputHelper output)
{
    /// <summary>The engine's log folder for a task id (FNV-1a of the id, its low byte), as Engine.LogShard makes it.</summary>
    private static string Shard(string id)
    {
        uint h = 2166136261;
        foreach (char c in id) h = (h ^ c) * 16777619;
        return (h & 0xff).ToString("x2");
    }

    [Fact]
    public async Task A_recovered_task_whose_start_throws_keeps_its_class_and_its_retries()
    {
        var root = TestDaemon.NewRoot();
        var data = Path.Combine(root, "data");
        var work = Path.Combine(root, "work");
        Directory.CreateDirectory(work);
        int port = SparkyCli.FreePort();
        const string A = "restart-a", B = "restart-b";
        Assert.NotEqual(Shard(A), Shard(B));
        string[] settings = ["--retry-base-seconds", "0.05"];
        var d = await DaemonProcess.StartAsync(data, port, settings);
        try
        {
            // A runs when the daemon dies (its second attempt succeeds); B, a cpu_long task with two retries, waits on A,
            // so it is first started by the restarted daemon, which knows it only from the store.
            var body = new JsonArray(
                new JsonObject
                {
                    ["id"] = A,
                    ["payload"] = new JsonObject { ["command"] = "[ \"$SPARKY_ATTEMPT\" = 1 ] && sleep 60; true", ["cwd"] = work, ["retries"] = 1 },
                },
                new JsonObject
                {
                    ["id"] = B, ["class"] = "cpu_long", ["after"] = new JsonArray(A),
                    ["payload"] = new JsonObject { ["command"] = new JsonArray("true"), ["cwd"] = work, ["retries"] = 2 },
                });
            using (var resp = await d.Http.PostAsync("api/v1/tasks", new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json")))
                Assert.True(resp.IsSuccessStatusCode, await resp.Content.ReadAsStringAsync());
            var deadline = DateTime.UtcNow.AddSeconds(20);
            while ((string?)(await d.GetAsync($"api/v1/tasks/{A}"))["state"] != "running")
            {
                Assert.True(DateTime.UtcNow < deadline, "A never started");
                await Task.Delay(20);
            }
            d.KillHard();
            // B's log folder cannot be made: a file is where it would go.
            var shard = Path.Combine(data, "logs", Shard(B));
            if (Directory.Exists(shard)) Directory.Delete(shard, recursive: true);
            File.WriteAllText(shard, "not a folder");

            d = await DaemonProcess.StartAsync(data, port, settings);
            deadline = DateTime.UtcNow.AddSeconds(60);
            JsonNode b;
            while ((string?)(b = await d.GetAsync($"api/v1/tasks/{B}"))["state"] is not ("failed" or "succeeded" or "cancelled"))
            {
                Assert.True(DateTime.UtcNow < deadline, $"B is still {(string?)b["state"]}");
                await Task.Delay(50);
            }
            output.WriteLine(b.ToJsonString());
            Assert.Equal("succeeded", (string?)(await d.GetAsync($"api/v1/tasks/{A}"))["state"]);
            Assert.Equal("failed", (string?)b["state"]);
            Assert.Equal("cpu_long", (string?)b["class"]);
            Assert.Equal(3, (int)b["attempts"]!); // its own retry policy: the first attempt and two retries
            // Counted under its own class: no cpu_short task failed.
            var metrics = (await d.Http.GetStringAsync("metrics")).Split('\n');
            double Failed(string cls) => metrics.Where(l => l.StartsWith("sparky_tasks_completed_total{") && l.Contains($"class=\"{cls}\"") && l.Contains("outcome=\"failed\""))
                .Select(l => double.Parse(l[(l.LastIndexOf(' ') + 1)..], System.Globalization.CultureInfo.InvariantCulture)).Sum();
            Assert.Equal(0, Failed("cpu_short"));
            Assert.Equal(1, Failed("cpu_long"));
        }
        finally
        {
            await d.DisposeAsync();
        }
    }
}
