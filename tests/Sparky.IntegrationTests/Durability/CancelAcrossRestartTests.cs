using System.Text;
using System.Text.Json.Nodes;
using Sparky.IntegrationTests.Support;

namespace Sparky.IntegrationTests.Durability;

/// <summary>
/// A cancel answered before the daemon is killed holds after its restart. The daemon that signalled the attempt never
/// saw it end; before the stop was stored with the attempt, the restarted daemon forgot it, recorded the end by its exit
/// (here a clean one: a success) or as lost, and ran a task its user had cancelled again.
/// </summary>
public sealed class CancelAcrossRestartTests
{
    [Fact]
    public async Task A_cancel_answered_before_a_kill_nine_ends_the_task_cancelled_after_the_restart_and_runs_it_no_more()
    {
        var root = TestDaemon.NewRoot();
        var data = Path.Combine(root, "data");
        var runs = Path.Combine(root, "runs");
        int port = SparkyCli.FreePort();
        var d = await DaemonProcess.StartAsync(data, port);
        try
        {
            // cpu_long runs under the exit-code shim, so the attempt is followed again after the restart. It takes two
            // seconds to stop after SIGTERM, and then exits 0; the daemon is killed in those two seconds.
            var command = $"echo run >> '{runs}'; trap 'sleep 2; exit 0' TERM; sleep 60 & wait; sleep 2";
            var body = new JsonObject { ["class"] = "cpu_long", ["payload"] = new JsonObject { ["command"] = command, ["retries"] = 2 } };
            string id;
            using (var resp = await d.Http.PostAsync("api/v1/tasks", new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json")))
            {
                Assert.True(resp.IsSuccessStatusCode, await resp.Content.ReadAsStringAsync());
                id = (string)JsonNode.Parse(await resp.Content.ReadAsStringAsync())!["ids"]![0]!;
            }
            await d.TaskUntilAsync(id, t => File.Exists(runs) && (string?)t["state"] == "running");
            using (var resp = await d.Http.DeleteAsync($"api/v1/tasks/{id}")) Assert.True(resp.IsSuccessStatusCode, await resp.Content.ReadAsStringAsync());
            d.KillHard();
            await d.DisposeAsync();

            d = await DaemonProcess.StartAsync(data, port);
            var task = await d.TaskUntilAsync(id, t => (string?)t["state"] is "succeeded" or "failed" or "cancelled");
            Assert.Equal("cancelled", (string?)task["state"]);
            var attempt = Assert.Single(task["attempt_list"]!.AsArray())!;
            Assert.Equal("cancelled", (string?)attempt["reason"]);
            await Task.Delay(1000); // a retry, had one been queued, would have started by now
            Assert.Single(File.ReadAllLines(runs));
            Assert.Single((await d.GetAsync($"api/v1/tasks/{id}"))["attempt_list"]!.AsArray());
        }
        finally
        {
            await d.DisposeAsync();
            try { Directory.Delete(root, true); } catch (IOException) { }
        }
    }
}
