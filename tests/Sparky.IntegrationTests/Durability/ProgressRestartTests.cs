using System.Text.Json.Nodes;
using Microsoft.Data.Sqlite;
using Sparky.IntegrationTests.Support;

namespace Sparky.IntegrationTests.Durability;

/// <summary>A task's last progress is stored with it and survives a kill -9 of the daemon; a re-attached attempt's
/// progress is followed again after the restart.</summary>
public sealed class ProgressRestartTests
{
    [Fact]
    public async Task The_stored_progress_survives_a_kill_nine_and_a_re_attached_attempt_is_followed_again()
    {
        var root = TestDaemon.NewRoot();
        var data = Path.Combine(root, "data");
        var go = Path.Combine(root, "go");
        int port = SparkyCli.FreePort();
        var d = await DaemonProcess.StartAsync(data, port);
        try
        {
            var ended = await SubmitAsync(d, "cpu_short", """printf '%s\n' '__SPARKY_PROGRESS__:{"done": 7, "total": 10, "message": "ended"}'""");
            // cpu_long is re-attached after a restart: it reports once before the kill and once after.
            var running = await SubmitAsync(d, "cpu_long", $$"""
                printf '%s\n' '__SPARKY_PROGRESS__:{"message": "before"}'; while [ ! -e '{{go}}' ]; do sleep 0.05; done
                printf '%s\n' '__SPARKY_PROGRESS__:{"done": 1, "total": 1, "message": "after"}'
                """);
            await d.TaskUntilAsync(ended, t => (string?)t["state"] == "succeeded" && (string?)t["progress"]?["message"] == "ended");
            await d.TaskUntilAsync(running, t => (string?)t["progress"]?["message"] == "before");
            // In the store, not only in the daemon's memory, before the kill.
            await StoredAsync(Path.Combine(data, "sparky.db"), ended, "ended");
            d.KillHard();
            await d.DisposeAsync();

            d = await DaemonProcess.StartAsync(data, port);
            var t = await d.GetAsync($"api/v1/tasks/{ended}");
            Assert.Equal(7, (long)t["progress"]!["done"]!);
            Assert.Equal("ended", (string?)t["progress"]!["message"]);
            Assert.Equal("before", (string?)(await d.TaskUntilAsync(running, t => t["progress"] is JsonObject))["progress"]!["message"]);
            File.WriteAllText(go, "");
            var after = await d.TaskUntilAsync(running, t => (string?)t["progress"]?["message"] == "after");
            Assert.Equal(1, (long)after["progress"]!["done"]!);
        }
        finally
        {
            File.WriteAllText(go, "");
            await d.DisposeAsync();
            try { Directory.Delete(root, true); } catch (IOException) { }
        }
    }

    private static async Task<string> SubmitAsync(DaemonProcess d, string cls, string command)
    {
        var body = new JsonObject { ["class"] = cls, ["payload"] = new JsonObject { ["command"] = command } };
        return await d.SubmitAsync(body);
    }

    /// <summary>Polls the store's file itself, as another reader of the WAL database would.</summary>
    private static async Task StoredAsync(string db, string id, string message)
    {
        for (var until = DateTime.UtcNow.AddSeconds(30); ; await Task.Delay(50))
        {
            using (var conn = new SqliteConnection($"Data Source={db};Mode=ReadOnly;Pooling=False"))
            {
                conn.Open();
                using var cmd = conn.CreateCommand();
                cmd.CommandText = "SELECT progress FROM tasks WHERE id = $id";
                cmd.Parameters.AddWithValue("$id", id);
                if (cmd.ExecuteScalar() is string json && (string?)JsonNode.Parse(json)!["message"] == message) return;
            }
            Assert.True(DateTime.UtcNow < until, $"the progress of {id} was never stored");
        }
    }
}
