using System.Text.Json.Nodes;
using Sparky.IntegrationTests.Support;

namespace Sparky.IntegrationTests.Api;

public sealed class TaskLifecycleTests
{
    [Fact]
    public async Task A_task_runs_in_its_cwd_with_its_env_and_keeps_its_exit_code()
    {
        await using var d = await TestDaemon.StartAsync();
        var ids = await d.SubmitAsync(new JsonObject
        {
            ["payload"] = new JsonObject
            {
                ["command"] = new JsonArray("/bin/sh", "-c", "pwd; echo \"$GREETING\"; exit 7"),
                ["cwd"] = d.WorkDir,
                ["env"] = new JsonObject { ["GREETING"] = "hello there" },
            },
        });
        var t = await d.WaitAsync(ids[0]);
        Assert.Equal("failed", (string?)t["state"]);
        Assert.Equal(7, (int?)t["exit_code"]);
        var log = await d.Http.GetStringAsync($"api/v1/tasks/{ids[0]}/logs");
        Assert.Equal($"{d.WorkDir}\nhello there\n", log);
    }
}
