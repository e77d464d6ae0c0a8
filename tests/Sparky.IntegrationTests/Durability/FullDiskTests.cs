using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Sparky.IntegrationTests.Support;
using Xunit.Abstractions;

namespace Sparky.IntegrationTests.Durability;

/// <summary>
/// The data directory on a small tmpfs that fills up: submissions get a clear 503, never a 500, every
/// acknowledged task is still there, the daemon keeps serving, and it accepts work again once space is freed.
/// Needs root (mount); CI runs as root, so there it never skips.
/// </summary>
public sealed class FullDiskTests(ITestOutputHelper output)
{
    [Fact]
    public async Task A_full_disk_refuses_new_work_clearly_and_loses_nothing()
    {
        var root = TestDaemon.NewRoot();
        var data = Path.Combine(root, "data");
        if (!Tmpfs.TryMount(data, "3m", output)) return;
        try
        {
            var d = await TestDaemon.StartAsync(root: root);
            await using (d)
            {
                var blocker = await d.SubmitShellAsync("sleep 60", cls: "cpu_long");
                await Api.TaskLifecycleTests.WaitForAsync(async () => (string?)(await d.GetTaskAsync(blocker))["state"] == "running");

                // Leave ~200 KB free, then submit until the store refuses.
                var filler = Path.Combine(data, "filler");
                long free = new DriveInfo(data).AvailableFreeSpace;
                await File.WriteAllBytesAsync(filler, new byte[Math.Max(0, free - 200 * 1024)]);
                var acked = new List<string>();
                HttpStatusCode? refusal = null;
                string detail = "";
                var pad = new string('x', 8 * 1024);
                for (int i = 0; i < 2000 && refusal is null; i++)
                {
                    var body = new JsonObject
                    {
                        ["after"] = new JsonArray(blocker),
                        ["payload"] = new JsonObject { ["command"] = "true", ["env"] = new JsonObject { ["PAD"] = pad } },
                    };
                    using var resp = await d.Http.PostAsync("api/v1/tasks", new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json"));
                    var text = await resp.Content.ReadAsStringAsync();
                    if (resp.IsSuccessStatusCode) acked.Add((string)JsonNode.Parse(text)!["ids"]![0]!);
                    else
                    {
                        refusal = resp.StatusCode;
                        detail = (string?)JsonNode.Parse(text)?["detail"] ?? "";
                        Assert.Equal("application/problem+json", resp.Content.Headers.ContentType?.MediaType);
                    }
                }
                output.WriteLine($"{acked.Count} tasks acknowledged before the disk filled; then {(int?)refusal}: {detail}");
                Assert.Equal(HttpStatusCode.ServiceUnavailable, refusal);
                Assert.Contains("store", detail);

                // Every acknowledged task is there, and the daemon still answers.
                foreach (var id in acked) Assert.Equal("queued", (string?)(await d.GetTaskAsync(id))["state"]);
                using (var health = await d.Http.GetAsync("healthz")) Assert.Equal(HttpStatusCode.OK, health.StatusCode);

                // Free the space: work is accepted again and runs.
                File.Delete(filler);
                var after = await d.SubmitShellAsync("echo back");
                Assert.Equal("succeeded", (string?)(await d.WaitAsync(after))["state"]);
                using (await d.Http.DeleteAsync($"api/v1/tasks/{blocker}")) { }
                await d.WaitAsync(blocker);
            }
        }
        finally
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            Tmpfs.Unmount(data);
            try { Directory.Delete(root, true); } catch (IOException) { }
        }
    }

}
