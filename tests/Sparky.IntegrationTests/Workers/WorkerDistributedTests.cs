using System.Text.Json.Nodes;
using Sparky.IntegrationTests.Support;

namespace Sparky.IntegrationTests.Workers;

/// <summary>Distributed training on a worker: the worker reserves each task's rendezvous port on its own host (never
/// one port for two of its running tasks), and a task with GPUs gets the same world size there as it would locally.</summary>
[Collection(SerialCollection.Name)] // workers on this host: one class at a time (see SerialCollection)
public sealed class WorkerDistributedTests
{
    [Fact]
    public async Task Four_port_tasks_running_at_once_on_a_worker_each_bind_their_own_port_of_its_host()
    {
        await using var d = await TestDaemon.StartAsync(WorkerTests.WorkerSettings(timeout: 5));
        await using var w = WorkerProcess.Start(d.Daemon.ZmqEndpoint, "wport", slots: 4);
        var ids = new List<string>();
        for (int i = 0; i < 4; i++)
        {
            var body = new JsonObject
            {
                ["payload"] = new JsonObject
                {
                    ["command"] = new JsonArray("python3", "-c", Api.DistributedTests.Binder), ["cwd"] = d.WorkDir, ["port"] = true,
                },
            };
            ids.Add((await d.SubmitAsync(body))[0]);
        }
        foreach (var id in ids)
        {
            var t = await d.WaitAsync(id, 60);
            Assert.True("succeeded" == (string?)t["state"],
                $"{t}\n{await d.Http.GetStringAsync($"api/v1/tasks/{id}/logs?stream=stderr")}\n{w.Stderr}");
        }
        var seen = ids.Select(id => File.ReadAllText(Path.Combine(d.WorkDir, id + ".port")).Split(' ')).ToList();
        Assert.All(seen, s => Assert.Equal(s[0], s[1]));
        Assert.All(seen, s => Assert.Equal(("127.0.0.1", "wport"), (s[2], s[3])));
        Assert.Equal(4, seen.Select(s => s[0]).Distinct().Count());
        Assert.All(seen, s => Assert.InRange(int.Parse(s[0]), 29501, 29999));
    }

    [Fact]
    public async Task A_task_given_gpus_on_a_worker_gets_a_port_and_the_same_world_size_as_locally()
    {
        var settings = WorkerTests.WorkerSettings(timeout: 5);
        settings["worker_classes"] = "gpu";
        await using var d = await TestDaemon.StartAsync(settings);
        await using var w = WorkerProcess.Start(d.Daemon.ZmqEndpoint, "wgpu", 2, "--gpus", "0,1", "--classes", "gpu");
        var two = (await d.SubmitAsync(Api.DistributedTests.GpuEnvTask(d.WorkDir, "two", new JsonObject { ["gpus"] = 2 })))[0];
        Assert.True("succeeded" == (string?)(await d.WaitAsync(two, 60))["state"], w.Stderr);
        var eight = (await d.SubmitAsync(Api.DistributedTests.GpuEnvTask(d.WorkDir, "eight", new JsonObject { ["gpus"] = 1, ["procs_per_node"] = 8 })))[0];
        Assert.True("succeeded" == (string?)(await d.WaitAsync(eight, 60))["state"], w.Stderr);

        var a = File.ReadAllText(Path.Combine(d.WorkDir, "two.env")).Trim().Split(' ');
        Assert.Equal("127.0.0.1", a[0]);
        Assert.InRange(int.Parse(a[1]), 29501, 29999);
        Assert.Equal(a[1], a[2]);
        Assert.Equal(["2", "2", "2", "1", "0", "0,1"], a[3..]);
        var b = File.ReadAllText(Path.Combine(d.WorkDir, "eight.env")).Trim().Split(' ');
        Assert.Equal(["1", "8", "8", "1", "0"], b[3..8]);
    }
}
