using System.Diagnostics;
using System.Text;
using System.Text.Json.Nodes;
using Sparky.IntegrationTests.Support;
using Xunit.Abstractions;
using static Sparky.IntegrationTests.BadInput.BadInputSupport;
using static Sparky.IntegrationTests.Hardening.DropDirHardeningTests;

namespace Sparky.IntegrationTests.Hardening;

/// <summary>
/// <c>&lt;data&gt;/queue/done/&lt;id&gt;.json</c> is owed by the store, not by an event: a task that ends while the file
/// cannot be written (a full disk, a kill -9) gets its file once it can be, and the file is its owner's alone.
/// </summary>
public sealed class DoneFileHardeningTests(ITestOutputHelper output)
{
    /// <summary>A done file holds the task's envelope, environment included: 0600, like the store, not the umask's 0644.</summary>
    [Fact]
    public async Task A_done_file_is_readable_by_its_owner_only()
    {
        await using var d = await TestDaemon.StartAsync();
        DropFile(d.DataDir, "secret.json", Encoding.UTF8.GetBytes("""{"id":"secret","payload":{"command":["true"],"env":{"API_KEY":"hunter2"}}}"""));
        var done = Path.Combine(Queue(d.DataDir, "done"), "secret.json");
        Assert.True(await EventuallyAsync(() => Task.FromResult(File.Exists(done)), seconds: 20), "done/secret.json never appeared");
        var mode = File.GetUnixFileMode(done);
        output.WriteLine($"done/secret.json: {mode}");
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, mode);
        Assert.Empty(Directory.EnumerateFiles(Queue(d.DataDir, "done"), ".*"));
    }

    /// <summary>
    /// done/ on a tmpfs of its own, filled to the last byte (the store, elsewhere, still commits): a task that ends
    /// then logged "No space left on device" and its done file never came, even after space came back. It must come
    /// once the space does.
    /// </summary>
    [Fact]
    public async Task A_done_file_that_met_a_full_disk_is_written_once_space_comes_back()
    {
        var root = TestDaemon.NewRoot();
        var done = Path.Combine(root, "data", "queue", "done");
        if (!Tmpfs.TryMount(done, "256k", output)) return;
        try
        {
            await using var d = await TestDaemon.StartAsync(root: root);
            var filler = Path.Combine(done, "filler");
            Fill(filler);
            Assert.True(new DriveInfo(done).AvailableFreeSpace < 4096, "done/ is not full");

            var id = await SubmitCompatibleAsync(d.Http, "full-disk");
            Assert.Equal("succeeded", (string?)(await d.WaitAsync(id))["state"]);
            // The end is stored and announced; the file cannot be written. Give the writer a moment to try: nothing
            // outside shows that it has (it only logs, and the file stays owed), so this pause is a bound, not a sign.
            await Task.Delay(500);
            Assert.False(File.Exists(Path.Combine(done, id + ".json")));

            File.Delete(filler);
            var start = Stopwatch.StartNew();
            Assert.True(await EventuallyAsync(() => Task.FromResult(File.Exists(Path.Combine(done, id + ".json"))), seconds: 20),
                "the done file was not written after space came back");
            output.WriteLine($"done/{id}.json written {start.ElapsedMilliseconds} ms after the space came back");
            var file = JsonNode.Parse(File.ReadAllText(Path.Combine(done, id + ".json")))!;
            Assert.Equal("succeeded", (string?)file["state"]);
            Assert.Empty(Directory.EnumerateFiles(done, ".*"));
        }
        finally
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            Tmpfs.Unmount(done);
            try { Directory.Delete(root, true); } catch (IOException) { }
        }
    }

    /// <summary>
    /// The end committed, the file not yet written, then kill -9: the same gap. done/ is made a plain file so that
    /// the write fails until the kill; after it, done/ is back and the next start must write the missing file.
    /// </summary>
    [Fact]
    public async Task A_done_file_missed_by_a_kill_9_is_written_at_the_next_start()
    {
        var root = TestDaemon.NewRoot();
        var data = Path.Combine(root, "data");
        int port = SparkyCli.FreePort();
        var d = await DaemonProcess.StartAsync(data, port);
        try
        {
            var done = Queue(data, "done");
            Directory.Move(done, done + ".away");
            File.WriteAllText(done, "not a directory\n");
            var id = await SubmitCompatibleAsync(d.Http, "kill-nine");
            Assert.True(await EventuallyAsync(async () => (string?)(await d.GetAsync($"api/v1/tasks/{id}"))["state"] == "succeeded", seconds: 20),
                "the task did not succeed");
            d.KillHard();
            await d.DisposeAsync();

            File.Delete(done);
            Directory.Move(done + ".away", done);
            Assert.False(File.Exists(Path.Combine(done, id + ".json")));
            d = await DaemonProcess.StartAsync(data, port);
            Assert.True(await EventuallyAsync(() => Task.FromResult(File.Exists(Path.Combine(done, id + ".json"))), seconds: 20),
                "the done file missed before the kill -9 was not written at the next start");
            var file = JsonNode.Parse(File.ReadAllText(Path.Combine(done, id + ".json")))!;
            Assert.Equal(id, (string?)file["id"]);
            Assert.Equal("succeeded", (string?)file["state"]);
        }
        finally
        {
            await d.DisposeAsync();
            try { Directory.Delete(root, true); } catch (IOException) { }
        }
    }

    /// <summary>POST /queue/submit: the replaced system's door, whose tasks get a done file.</summary>
    private static async Task<string> SubmitCompatibleAsync(HttpClient http, string id)
    {
        var body = new JsonObject { ["id"] = id, ["payload"] = new JsonObject { ["command"] = new JsonArray("true") } }.ToJsonString();
        using var resp = await http.PostAsync("queue/submit", new StringContent(body, Encoding.UTF8, "application/json"));
        Assert.True(resp.IsSuccessStatusCode, await resp.Content.ReadAsStringAsync());
        return (string)JsonNode.Parse(await resp.Content.ReadAsStringAsync())!["id"]!;
    }

    /// <summary>Writes until the file system says it is full.</summary>
    private static void Fill(string path)
    {
        using var f = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1, FileOptions.None);
        var block = new byte[4096];
        try
        {
            while (true) f.Write(block);
        }
        catch (IOException) { }
    }
}
