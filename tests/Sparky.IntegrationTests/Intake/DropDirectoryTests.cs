using System.Text.Json.Nodes;
using Sparky.IntegrationTests.Support;

namespace Sparky.IntegrationTests.Intake;

public sealed class DropDirectoryTests
{
    /// <summary>
    /// If the daemon dies after storing a dropped file but before moving it to accepted/, the file is
    /// seen again at the next start. With an id, the same envelope is recognised: accepted, not run twice.
    /// </summary>
    [Fact]
    public async Task The_same_envelope_dropped_again_is_accepted_once_and_runs_once()
    {
        await using var d = await TestDaemon.StartAsync();
        var pending = Path.Combine(d.DataDir, "queue", "pending");
        var accepted = Path.Combine(d.DataDir, "queue", "accepted", "once.json");
        const string envelope = """{"id":"once","payload":{"command":"echo ran >> runs.txt","cwd":"WORK"}}""";
        var text = envelope.Replace("WORK", d.WorkDir);

        void Drop(string name)
        {
            var tmp = Path.Combine(pending, "." + name + ".tmp");
            File.WriteAllText(tmp, text);
            File.Move(tmp, Path.Combine(pending, name));
        }

        Drop("first.json");
        await Api.TaskLifecycleTests.WaitForAsync(() => File.Exists(accepted));
        Assert.Equal("succeeded", (string?)(await d.WaitAsync("once"))["state"]);
        File.Delete(accepted);

        Drop("again.json");
        await Api.TaskLifecycleTests.WaitForAsync(() => File.Exists(accepted));
        Assert.False(File.Exists(Path.Combine(d.DataDir, "queue", "rejected", "again.json")));
        var t = await d.GetTaskAsync("once");
        Assert.Equal(1, (int?)t["attempts"]);
        Assert.Equal("ran\n", File.ReadAllText(Path.Combine(d.WorkDir, "runs.txt")));
    }
}
