using System.Text.Json.Nodes;
using Sparky.IntegrationTests.Support;

namespace Sparky.IntegrationTests.Durability;

/// <summary>A re-attached attempt keeps the port Sparky reserved for it: after a kill -9 and a restart, the daemon reads
/// it back from the attempt's environment and gives it to no task started after.</summary>
public sealed class PortRestartTests
{
    [Fact]
    public async Task A_re_attached_task_keeps_its_port_and_a_new_task_gets_another()
    {
        var root = TestDaemon.NewRoot();
        var data = Path.Combine(root, "data");
        var go = Path.Combine(root, "go");
        var work = Path.Combine(root, "work");
        Directory.CreateDirectory(work);
        int httpPort = SparkyCli.FreePort();
        var d = await DaemonProcess.StartAsync(data, httpPort);
        try
        {
            // cpu_long is re-attached after a restart. It holds its reservation without binding it, so only Sparky's
            // own record (not a probe of the port) keeps the next task off it.
            var running = await SubmitAsync(d, "cpu_long", $"echo \"$MASTER_PORT $SPARKY_PORT\" > kept; while [ ! -e '{go}' ]; do sleep 0.05; done", work);
            var kept = Path.Combine(work, "kept");
            await d.TaskUntilAsync(running, _ => File.Exists(kept) && File.ReadAllText(kept).Trim().Length > 0);
            var first = File.ReadAllText(kept).Trim().Split(' ');
            Assert.Equal(first[0], first[1]);
            d.KillHard();
            await d.DisposeAsync();

            d = await DaemonProcess.StartAsync(data, httpPort);
            await d.TaskUntilAsync(running, t => (string?)t["state"] == "running");
            var fresh = await SubmitAsync(d, "cpu_short", "echo \"$MASTER_PORT\" > fresh", work);
            Assert.Equal("succeeded", (string?)(await d.TaskUntilAsync(fresh, t => (string?)t["state"] is "succeeded" or "failed"))["state"]);
            Assert.NotEqual(first[0], File.ReadAllText(Path.Combine(work, "fresh")).Trim());

            File.WriteAllText(go, "");
            Assert.Equal("succeeded", (string?)(await d.TaskUntilAsync(running, t => (string?)t["state"] is "succeeded" or "failed"))["state"]);
        }
        finally
        {
            File.WriteAllText(go, "");
            await d.DisposeAsync();
            try { Directory.Delete(root, true); } catch (IOException) { }
        }
    }

    private static async Task<string> SubmitAsync(DaemonProcess d, string cls, string command, string cwd)
    {
        var body = new JsonObject { ["class"] = cls, ["payload"] = new JsonObject { ["command"] = command, ["cwd"] = cwd, ["port"] = true } };
        return await d.SubmitAsync(body);
    }
}
