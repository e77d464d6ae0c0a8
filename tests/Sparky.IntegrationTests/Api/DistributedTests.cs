using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Sparky.IntegrationTests.Support;

namespace Sparky.IntegrationTests.Api;

/// <summary>Distributed training on one machine: a reserved rendezvous port per task, the world size with GPUs, and
/// the options only Slurm can serve refused on a class that runs here.</summary>
public sealed class DistributedTests
{
    /// <summary>Binds and listens on its MASTER_ADDR:MASTER_PORT (as torchrun's store does), records the port (and the
    /// worker it ran on, "-" for none), and holds it until four tasks have recorded theirs (at most 15 s), then a second
    /// more: the four run at once, so two given one port would fail to bind.</summary>
    internal const string Binder = """
        import glob, os, socket, time
        s = socket.socket()
        s.bind((os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"])))
        s.listen()
        with open(os.environ["SPARKY_TASK_ID"] + ".port", "w") as f:
            f.write(" ".join([os.environ["MASTER_PORT"], os.environ["SPARKY_PORT"], os.environ["MASTER_ADDR"], os.environ.get("SPARKY_WORKER", "-")]))
        t = time.time()
        while len(glob.glob("*.port")) < 4 and time.time() - t < 15:
            time.sleep(0.05)
        time.sleep(1)
        """;

    [Fact]
    public async Task Four_concurrent_tasks_with_port_each_bind_their_own_reserved_port()
    {
        await using var d = await TestDaemon.StartAsync(new() { ["cpu_short_slots"] = "8" });
        string[] server = ["--server", d.Daemon.Url];
        var submits = Enumerable.Range(0, 4).Select(_ =>
            SparkyCli.RunAsync(["submit", .. server, "--port", "--wait", "--json", "--", "python3", "-c", Binder], cwd: d.WorkDir)).ToList();
        var results = await Task.WhenAll(submits);
        foreach (var r in results) Assert.True(r.ExitCode == 0, r.Stdout + r.Stderr);

        var seen = Directory.GetFiles(d.WorkDir, "*.port").Select(f => File.ReadAllText(f).Split(' ')).ToList();
        Assert.Equal(4, seen.Count);
        Assert.All(seen, s => Assert.Equal(s[0], s[1]));
        Assert.All(seen, s => Assert.Equal("127.0.0.1", s[2]));
        Assert.Equal(4, seen.Select(s => s[0]).Distinct().Count());
        Assert.All(seen, s => Assert.InRange(int.Parse(s[0]), 29501, 29999));
    }

    /// <summary>A gpu task that writes its rendezvous and world-size variables (and the GPUs it sees) to NAME.env.</summary>
    internal static JsonObject GpuEnvTask(string workDir, string name, JsonObject resources) => new()
    {
        ["class"] = "gpu",
        ["payload"] = new JsonObject
        {
            ["command"] = $"echo \"$MASTER_ADDR $MASTER_PORT $SPARKY_PORT $SPARKY_GPUS $WORLD_SIZE $LOCAL_WORLD_SIZE $NNODES $NODE_RANK $CUDA_VISIBLE_DEVICES\" > {name}.env",
            ["cwd"] = workDir,
            ["resources"] = resources,
        },
    };

    [Fact]
    public async Task A_task_given_gpus_gets_a_port_and_its_world_size_and_procs_per_node_overrides_it()
    {
        await using var d = await GpuTests.StartWithTwoGpusAsync();
        var two = (await d.SubmitAsync(GpuEnvTask(d.WorkDir, "two", new JsonObject { ["gpus"] = 2 })))[0];
        Assert.Equal("succeeded", (string?)(await d.WaitAsync(two))["state"]);
        var eight = (await d.SubmitAsync(GpuEnvTask(d.WorkDir, "eight", new JsonObject { ["gpus"] = 1, ["procs_per_node"] = 8 })))[0];
        Assert.Equal("succeeded", (string?)(await d.WaitAsync(eight))["state"]);

        var a = File.ReadAllText(Path.Combine(d.WorkDir, "two.env")).Trim().Split(' ');
        Assert.Equal("127.0.0.1", a[0]);
        Assert.InRange(int.Parse(a[1]), 29501, 29999);
        Assert.Equal(a[1], a[2]);
        Assert.Equal(["2", "2", "2", "1", "0"], a[3..8]);
        var b = File.ReadAllText(Path.Combine(d.WorkDir, "eight.env")).Trim().Split(' ');
        Assert.Equal(["1", "8", "8", "1", "0"], b[3..8]);
    }

    [Fact]
    public async Task A_tasks_json_echoes_the_node_options_it_was_sent_with_and_the_cli_shows_them_where_set()
    {
        await using var d = await TestDaemon.StartAsync();
        var asked = (await d.SubmitAsync(new JsonObject
        {
            ["payload"] = new JsonObject
            {
                ["command"] = "true", ["cwd"] = d.WorkDir, ["port"] = true,
                ["resources"] = new JsonObject { ["nodes"] = 1, ["procs_per_node"] = 3 },
            },
        }))[0];
        var plain = await d.SubmitShellAsync("true");
        await d.WaitAsync(asked);
        await d.WaitAsync(plain);

        using var z = new Sparky.IntegrationTests.Zmq.ZmqTestClient(d.Daemon.ZmqEndpoint);
        var listed = (JsonArray)JsonNode.Parse(await d.Http.GetStringAsync("api/v1/tasks"))!["tasks"]!;
        var zlisted = (JsonArray)z.Ok("list", new JsonObject())!["tasks"]!;
        foreach (var t in new[]
        {
            await d.GetTaskAsync(asked), z.Ok("status", new JsonObject { ["id"] = asked })!,
            listed.Single(t => (string?)t!["id"] == asked)!, zlisted.Single(t => (string?)t!["id"] == asked)!,
        })
        {
            Assert.Equal((true, 1, 3), ((bool?)t["port"], (int?)t["nodes"], (int?)t["procs_per_node"]));
            Assert.False(((JsonObject)t).ContainsKey("gpus_per_node"));
            Assert.False(((JsonObject)t).ContainsKey("exclusive"));
        }
        // A task that asked for none has none of the fields.
        var other = (JsonObject)(await d.GetTaskAsync(plain));
        Assert.DoesNotContain(other, kv => kv.Key is "port" or "nodes" or "gpus_per_node" or "procs_per_node" or "exclusive");

        var ls = await SparkyCli.RunAsync(["ls", "--server", d.Daemon.Url]);
        Assert.Contains("nodes", ls.Stdout);
        Assert.Contains("1 node, 3 procs per node, port", ls.Stdout);
        var show = await SparkyCli.RunAsync(["status", asked, "--server", d.Daemon.Url]);
        Assert.Contains("1 node, 3 procs per node, port", show.Stdout);
        var showPlain = await SparkyCli.RunAsync(["status", plain, "--server", d.Daemon.Url]);
        Assert.DoesNotContain("per node", showPlain.Stdout);
    }

    [Theory]
    [InlineData("""{"nodes": 2}""", "cpu_short", "asks for 2 nodes")]
    [InlineData("""{"gpus_per_node": 4}""", "cpu_long", "asks for 4 GPUs per node")]
    [InlineData("""{"exclusive": true}""", "cpu_short", "asks for whole nodes (exclusive)")]
    public async Task Options_only_slurm_serves_are_refused_on_a_class_that_runs_here(string resources, string cls, string why)
    {
        await using var d = await TestDaemon.StartAsync();
        var body = new JsonObject
        {
            ["class"] = cls,
            ["payload"] = new JsonObject { ["command"] = "true", ["cwd"] = d.WorkDir, ["resources"] = JsonNode.Parse(resources) },
        };
        using var resp = await d.Http.PostAsync("api/v1/tasks", new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json"));
        var text = await resp.Content.ReadAsStringAsync();
        Assert.Equal(HttpStatusCode.BadRequest, resp.StatusCode);
        Assert.Contains(why, text);
        Assert.Contains($"class {cls} runs on this machine (the local executor)", text);
        Assert.Equal(0, (int)JsonNode.Parse(await d.Http.GetStringAsync("queue/status"))!["submitted"]!);

        // The CLI says the same, and nothing is queued.
        var cli = await SparkyCli.RunAsync(["submit", "--server", d.Daemon.Url, "--class", cls, "--nodes", "3", "--", "true"], cwd: d.WorkDir);
        Assert.NotEqual(0, cli.ExitCode);
        Assert.Contains("asks for 3 nodes", cli.Stderr);
    }
}
