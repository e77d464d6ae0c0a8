using System.Text.Json.Nodes;
using Sparky.IntegrationTests.Support;

namespace Sparky.IntegrationTests.Api;

/// <summary>
/// GPU hand-out through a real daemon and real processes. This machine has no GPU, so discovery reads a
/// stand-in nvidia-smi that prints what a real one prints for two 40 GB A100s (NVML is switched off so a
/// machine with a real GPU runs the same test).
/// </summary>
public sealed class GpuTests
{
    internal const string GpuA = "GPU-0a1b2c3d-0000-1111-2222-333344445555";
    internal const string GpuB = "GPU-9f8e7d6c-0000-1111-2222-333344445555";

    internal static async Task<TestDaemon> StartWithTwoGpusAsync(Dictionary<string, string>? extra = null)
    {
        var root = TestDaemon.NewRoot();
        var smi = Path.Combine(root, "nvidia-smi");
        File.WriteAllText(smi, $"""
            #!/bin/sh
            cat <<'CSV'
            0, {GpuA}, NVIDIA A100-SXM4-40GB, 40960, 3, 12, 33, 00000000:07:00.0
            1, {GpuB}, NVIDIA A100-SXM4-40GB, 40960, 0, 0, 31, 00000000:0F:00.0
            CSV
            """.Replace("\r", ""));
        File.SetUnixFileMode(smi, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var settings = new Dictionary<string, string> { ["nvml_library"] = "", ["nvidia_smi"] = smi };
        foreach (var (k, v) in extra ?? []) settings[k] = v;
        return await TestDaemon.StartAsync(settings, root);
    }

    /// <summary>A task that records what it was given, then waits until <paramref name="together"/> tasks have started (so they provably overlap).</summary>
    private static JsonObject Recorder(TestDaemon d, string name, int together, JsonObject? resources = null, string cls = "gpu") => new()
    {
        ["class"] = cls,
        ["payload"] = new JsonObject
        {
            ["command"] = $"echo \"$CUDA_VISIBLE_DEVICES $CUDA_DEVICE_ORDER $SPARKY_GPU_MEMORY_MB\" > {name}.gpu; " +
                          $"n=0; while [ $(ls *.gpu | wc -l) -lt {together} ] && [ $n -lt 500 ]; do sleep 0.02; n=$((n+1)); done",
            ["cwd"] = d.WorkDir,
            ["resources"] = resources ?? new JsonObject(),
        },
    };

    private static string Given(TestDaemon d, string name) => File.ReadAllText(Path.Combine(d.WorkDir, name + ".gpu")).Trim();

    [Fact]
    public async Task Gpu_tasks_get_their_own_gpu_by_uuid_in_pci_order_and_a_third_waits_for_one()
    {
        await using var d = await StartWithTwoGpusAsync();
        var a = (await d.SubmitAsync(Recorder(d, "a", 2)))[0];
        var b = (await d.SubmitAsync(Recorder(d, "b", 2)))[0];
        var c = (await d.SubmitAsync(Recorder(d, "c", 3)))[0];
        foreach (var id in new[] { a, b, c }) Assert.Equal("succeeded", (string?)(await d.WaitAsync(id))["state"]);
        Assert.Equal([$"{GpuA} PCI_BUS_ID", $"{GpuB} PCI_BUS_ID"], new[] { Given(d, "a"), Given(d, "b") }.Order());
        // c could only start once a or b ended (both GPUs were held), so it never saw 3 files at once... but it ran.
        Assert.Contains(Given(d, "c").Split(' ')[0], new[] { GpuA, GpuB });
        var cTask = await d.GetTaskAsync(c);
        var aTask = await d.GetTaskAsync(a);
        Assert.True(DateTimeOffset.Parse((string)cTask["started_at"]!) >= DateTimeOffset.Parse((string)aTask["finished_at"]!).AddMilliseconds(-5)
                    || DateTimeOffset.Parse((string)cTask["started_at"]!) >= DateTimeOffset.Parse((string)(await d.GetTaskAsync(b))["finished_at"]!).AddMilliseconds(-5),
            "a third whole-GPU task started while both GPUs were held");
    }

    [Fact]
    public async Task Memory_shares_run_side_by_side_on_one_gpu_within_its_memory()
    {
        // cpu_long has one slot by default: give it room so only GPU memory bounds the shares.
        await using var d = await StartWithTwoGpusAsync(new() { ["cpu_long_slots"] = "4" });
        var ids = new List<string>();
        foreach (var name in new[] { "s1", "s2", "s3" })
            ids.Add((await d.SubmitAsync(Recorder(d, name, 3, new JsonObject { ["gpu_memory_mb"] = 20480 }, cls: "cpu_long")))[0]);
        foreach (var id in ids) Assert.Equal("succeeded", (string?)(await d.WaitAsync(id))["state"]);
        var given = new[] { "s1", "s2", "s3" }.Select(n => Given(d, n)).ToList();
        Assert.All(given, g => Assert.EndsWith("PCI_BUS_ID 20480", g));
        // Two 20 GB shares fill one 40 GB GPU; the third goes to the other.
        Assert.Equal(2, given.Count(g => g.StartsWith(GpuA)));
        Assert.Equal(1, given.Count(g => g.StartsWith(GpuB)));
    }

    [Fact]
    public async Task The_gpus_are_listed_by_the_api_and_measured_in_metrics_and_cpu_tasks_see_none()
    {
        await using var d = await StartWithTwoGpusAsync();
        var found = JsonNode.Parse(await d.Http.GetStringAsync("api/v1/gpus"))!;
        Assert.Equal("nvidia-smi", (string?)found["source"]);
        var gpus = (JsonArray)found["gpus"]!;
        Assert.Equal([GpuA, GpuB], gpus.Select(g => (string)g!["uuid"]!));
        Assert.Equal(40960L * 1024 * 1024, (long)gpus[0]!["memory_total_bytes"]!);
        Assert.Equal(0.12, (double)gpus[0]!["utilization"]!, 3);

        var metrics = await d.Http.GetStringAsync("metrics");
        Assert.Contains("sparky_gpu_utilization_ratio{gpu=\"0\"} 0.12", metrics);
        Assert.Contains("sparky_gpu_memory_total_bytes{gpu=\"1\"} 42949672960", metrics);

        var cpu = await d.SubmitShellAsync("echo \"[$CUDA_VISIBLE_DEVICES]\"");
        await d.WaitAsync(cpu);
        Assert.Equal("[]\n", await d.Http.GetStringAsync($"api/v1/tasks/{cpu}/logs"));
    }

    [Fact]
    public async Task The_gpus_say_which_running_task_holds_each_and_how_much_and_the_classes_their_counts()
    {
        await using var d = await StartWithTwoGpusAsync(new() { ["cpu_long_slots"] = "4" });
        var hold = $"while [ ! -e {d.WorkDir}/release ]; do sleep 0.05; done";
        var whole = (await d.SubmitAsync(new JsonObject { ["class"] = "gpu", ["payload"] = new JsonObject { ["command"] = hold } }))[0];
        var share = (await d.SubmitAsync(new JsonObject
        {
            ["class"] = "cpu_long",
            ["payload"] = new JsonObject { ["command"] = hold, ["resources"] = new JsonObject { ["gpu_memory_mb"] = 10240 } },
        }))[0];
        JsonArray gpus = [];
        await Api.TaskLifecycleTests.WaitForAsync(async () =>
        {
            gpus = (JsonArray)JsonNode.Parse(await d.Http.GetStringAsync("api/v1/gpus"))!["gpus"]!;
            return gpus.Sum(g => ((JsonArray)g!["tasks"]!).Count) == 2;
        });
        var holders = gpus.SelectMany(g => ((JsonArray)g!["tasks"]!).Select(t => ((string)g["uuid"]!, (string)t!["id"]!, (long?)t["gpu_memory_mb"]))).ToList();
        Assert.Contains((GpuA, whole, null), holders);
        Assert.Contains((GpuB, share, 10240L), holders);

        var classes = (JsonArray)JsonNode.Parse(await d.Http.GetStringAsync("api/v1/classes"))!["classes"]!;
        Assert.Equal(["cpu_short", "cpu_long", "gpu", "gpu_slurm"], classes.Select(c => (string)c!["name"]!));
        var gpu = classes.Single(c => (string?)c!["name"] == "gpu")!;
        Assert.Equal((0, 1), ((int)gpu["queued"]!, (int)gpu["running"]!));
        Assert.Equal(4, (int)classes.Single(c => (string?)c!["name"] == "cpu_long")!["limit"]!);

        File.WriteAllText(Path.Combine(d.WorkDir, "release"), "");
        foreach (var id in new[] { whole, share }) Assert.Equal("succeeded", (string?)(await d.WaitAsync(id))["state"]);
        await Api.TaskLifecycleTests.WaitForAsync(async () =>
            ((JsonArray)JsonNode.Parse(await d.Http.GetStringAsync("api/v1/gpus"))!["gpus"]!).All(g => ((JsonArray)g!["tasks"]!).Count == 0));
        classes = (JsonArray)JsonNode.Parse(await d.Http.GetStringAsync("api/v1/classes"))!["classes"]!;
        Assert.Equal(1, (int)classes.Single(c => (string?)c!["name"] == "gpu")!["succeeded"]!);
    }

    [Fact]
    public async Task Visible_gpus_limits_the_pool_and_a_task_wanting_more_is_refused()
    {
        await using var d = await StartWithTwoGpusAsync(new() { ["visible_gpus"] = GpuB });
        var id = (await d.SubmitAsync(Recorder(d, "only", 1)))[0];
        Assert.Equal("succeeded", (string?)(await d.WaitAsync(id))["state"]);
        Assert.StartsWith(GpuB, Given(d, "only"));
        var two = Recorder(d, "two", 1, new JsonObject { ["gpus"] = 2 });
        var e = await Assert.ThrowsAsync<InvalidOperationException>(() => d.SubmitAsync(two));
        Assert.Contains("asks for 2 GPUs; this machine has 1", e.Message);
    }

    [Fact]
    public async Task A_visible_gpu_that_does_not_exist_stops_the_daemon_from_starting()
    {
        var e = await Assert.ThrowsAsync<InvalidOperationException>(() => StartWithTwoGpusAsync(new() { ["visible_gpus"] = "5" }));
        Assert.Contains("'5'", e.Message);
        Assert.Contains(GpuA, e.Message);
    }

    /// <summary><c>gpu_memory_default</c> (the replaced system's <c>DSPY_GPU_MEMORY_LIMIT=20G</c>): a gpu task that asks for
    /// nothing gets a 20 GB share of one GPU instead of a whole one, so three run at once on two 40 GB GPUs; one that
    /// asks for a whole GPU still gets it.</summary>
    [Fact]
    public async Task A_gpu_task_that_asks_for_nothing_gets_the_default_share()
    {
        await using var d = await StartWithTwoGpusAsync(new() { ["gpu_memory_default"] = "20G" });
        var ids = new List<string>();
        foreach (var name in new[] { "d1", "d2", "d3" }) ids.Add((await d.SubmitAsync(Recorder(d, name, 3)))[0]);
        foreach (var id in ids) Assert.Equal("succeeded", (string?)(await d.WaitAsync(id))["state"]);
        var given = new[] { "d1", "d2", "d3" }.Select(n => Given(d, n)).ToList();
        // All three saw each other's files: they ran side by side, each with its 20 GB budget.
        Assert.All(given, g => Assert.EndsWith("PCI_BUS_ID 20480", g));
        Assert.Equal(2, given.Count(g => g.StartsWith(GpuA)));

        var whole = (await d.SubmitAsync(Recorder(d, "whole", 1, new JsonObject { ["gpus"] = 1 })))[0];
        Assert.Equal("succeeded", (string?)(await d.WaitAsync(whole))["state"]);
        Assert.Matches("^GPU-[0-9a-f-]+ PCI_BUS_ID$", Given(d, "whole"));
    }

    /// <summary>A default share larger than any GPU here is a limit no GPU reaches: the task gets a whole GPU.</summary>
    [Fact]
    public async Task A_default_share_larger_than_the_gpus_gives_a_whole_gpu()
    {
        await using var d = await StartWithTwoGpusAsync(new() { ["gpu_memory_default"] = "80G" });
        var id = (await d.SubmitAsync(Recorder(d, "big", 1)))[0];
        Assert.Equal("succeeded", (string?)(await d.WaitAsync(id))["state"]);
        Assert.Matches("^GPU-[0-9a-f-]+ PCI_BUS_ID$", Given(d, "big"));
    }

    /// <summary><c>enable_gpu = false</c> (<c>DSPY_ENABLE_GPU=false</c>): the GPUs are still found and shown, but none is
    /// handed out; a task that needs one here is refused at once, saying why, rather than queued for ever.</summary>
    [Fact]
    public async Task With_enable_gpu_false_no_gpu_is_handed_out_and_a_gpu_task_is_refused_saying_why()
    {
        await using var d = await StartWithTwoGpusAsync(new() { ["enable_gpu"] = "false" });
        Assert.Equal(2, ((JsonArray)JsonNode.Parse(await d.Http.GetStringAsync("api/v1/gpus"))!["gpus"]!).Count);
        foreach (var task in new[] { Recorder(d, "gpu", 1), Recorder(d, "share", 1, new JsonObject { ["gpu_memory_mb"] = 1024 }, cls: "cpu_short") })
        {
            var e = await Assert.ThrowsAsync<InvalidOperationException>(() => d.SubmitAsync(task));
            Assert.StartsWith("400", e.Message);
            Assert.Contains("enable_gpu", e.Message);
        }
        var cpu = await d.SubmitShellAsync("echo \"[$CUDA_VISIBLE_DEVICES]\"");
        Assert.Equal("succeeded", (string?)(await d.WaitAsync(cpu))["state"]);
        Assert.Equal("[]\n", await d.Http.GetStringAsync($"api/v1/tasks/{cpu}/logs"));
    }
}
