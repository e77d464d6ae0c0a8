using System.Text;
using System.Text.Json.Nodes;
using Sparky.IntegrationTests.Support;
using Xunit.Abstractions;
using static Sparky.IntegrationTests.BadInput.BadInputSupport;

namespace Sparky.IntegrationTests.Cli;

/// <summary>
/// The replaced system's three <c>.env</c> files, as its plan gives them, start <c>sparky serve</c> unchanged: a real
/// daemon process with exactly those variables in its environment starts and answers <c>/healthz</c>; <c>sparky config
/// --json</c> shows each variable's setting with the variable as its origin; and a file written in place where the old
/// clients write it (<c>$ENV_QUEUE_DIR/pending/</c>) runs, its done file where their readers look
/// (<c>$ENV_QUEUE_DIR/done/</c>). The two absolute queue paths (<c>/tmp/dspy_queue</c>, <c>/shared/dspy_queue</c>) are
/// moved under the test's own directory so that runs do not share them; the relative one (<c>logs/env_queue</c>) is kept
/// as written, relative to the daemon's working directory.
/// </summary>
public sealed class EnvFileTests(ITestOutputHelper output)
{
    /// <summary>Each file's variables, and the setting each must set.</summary>
    internal static readonly Dictionary<string, (string Variable, string Value, string Setting)[]> Files = new()
    {
        ["laptop"] =
        [
            ("DSPY_MODE", "laptop", "mode"), ("DSPY_MAX_CONCURRENCY", "1", "max_concurrency"), ("DSPY_ENABLE_DEMO", "false", "enable_demo"),
            ("ENV_QUEUE_DIR", "/tmp/dspy_queue", "queue_dir"), ("DSPY_LOG_LEVEL", "debug", "log_level"),
        ],
        ["workstation"] =
        [
            ("DSPY_MODE", "workstation", "mode"), ("DSPY_MAX_CONCURRENCY", "4", "max_concurrency"), ("DSPY_ENABLE_GPU", "true", "enable_gpu"),
            ("ENV_QUEUE_DIR", "logs/env_queue", "queue_dir"), ("DSPY_GPU_MEMORY_LIMIT", "20G", "gpu_memory_default"),
        ],
        ["cluster"] =
        [
            ("DSPY_MODE", "cluster", "mode"), ("DSPY_MAX_CONCURRENCY", "16", "max_concurrency"), ("DSPY_ENABLE_SLURM", "true", "enable_slurm"),
            ("ENV_QUEUE_DIR", "/shared/dspy_queue", "queue_dir"), ("DSPY_SLURM_PARTITION", "gpu", "slurm_partition"),
        ],
    };

    [Theory]
    [InlineData("laptop")]
    [InlineData("workstation")]
    public async Task A_replaced_systems_env_file_starts_serve_unchanged(string file)
    {
        var root = TestDaemon.NewRoot();
        try
        {
            var (env, queue) = EnvOf(file, root);
            await using var d = await StartAsync(root, env, file);
            var id = $"from-{file}";
            await DropInPlaceAsync(queue, id, Envelope(id, null, $"echo ran > {id}.txt", Path.Combine(root, "work")));
            var done = await WaitDoneAsync(queue, id, d);
            Assert.Equal("succeeded", (string?)done["state"]);
            Assert.Equal("ran\n", File.ReadAllText(Path.Combine(root, "work", id + ".txt")));
            // The queue is where ENV_QUEUE_DIR says, and only there.
            Assert.True(File.Exists(Path.Combine(queue, "accepted", id + ".json")));
            Assert.False(Directory.Exists(Path.Combine(root, "data", "queue")), "the daemon made <data>/queue as well");
        }
        finally { try { Directory.Delete(root, true); } catch (IOException) { } }
    }

    // ---------- shared with the cluster file's test ----------

    /// <summary>The file's variables as the daemon gets them, and the queue directory they name (absolute).</summary>
    internal static (Dictionary<string, string> Env, string Queue) EnvOf(string file, string root)
    {
        var env = new Dictionary<string, string>();
        foreach (var (variable, value, _) in Files[file])
            env[variable] = variable == "ENV_QUEUE_DIR" && Path.IsPathRooted(value) ? Path.Combine(root, value.TrimStart('/')) : value;
        return (env, Path.GetFullPath(env["ENV_QUEUE_DIR"], root));
    }

    /// <summary>Starts <c>sparky serve</c> in <paramref name="root"/> with the file's variables, checks <c>/healthz</c> and
    /// that <c>sparky config --json</c> names each variable as its setting's origin.</summary>
    internal async Task<DaemonProcess> StartAsync(string root, Dictionary<string, string> env, string file)
    {
        var d = await DaemonProcess.StartInAsync(root, Path.Combine(root, "data"), SparkyCli.FreePort(), env);
        try
        {
            using (var health = await d.Http.GetAsync("healthz")) Assert.True(health.IsSuccessStatusCode, $"/healthz answered {(int)health.StatusCode}");
            var config = await SparkyCli.RunAsync(["config", "--json"], env, cwd: root);
            Assert.True(config.ExitCode == 0, config.Stderr);
            var settings = JsonNode.Parse(config.Stdout)!;
            foreach (var (variable, _, setting) in Files[file])
            {
                var s = settings[setting]!;
                output.WriteLine($"{variable}={env[variable]} -> {setting} = {(string?)s["value"]} ({(string?)s["source"]}, {(string?)s["origin"]})");
                Assert.Equal((env[variable], "env", variable), ((string?)s["value"], (string?)s["source"], (string?)s["origin"]));
            }
            return d;
        }
        catch
        {
            output.WriteLine(d.Stderr);
            await d.DisposeAsync();
            throw;
        }
    }

    internal static string Envelope(string id, string? cls, string shell, string cwd)
    {
        var e = new JsonObject { ["id"] = id, ["payload"] = new JsonObject { ["command"] = shell, ["cwd"] = cwd } };
        if (cls is not null) e["class"] = cls;
        return e.ToJsonString();
    }

    /// <summary>Written as the replaced system's clients write: straight into pending/, in two writes with a pause.</summary>
    internal static async Task DropInPlaceAsync(string queue, string id, string envelope)
    {
        var bytes = Encoding.UTF8.GetBytes(envelope);
        await using var f = new FileStream(Path.Combine(queue, "pending", id + ".json"), FileMode.CreateNew, FileAccess.Write, FileShare.ReadWrite, bufferSize: 1);
        await f.WriteAsync(bytes.AsMemory(0, bytes.Length / 2));
        await f.FlushAsync();
        await Task.Delay(300);
        await f.WriteAsync(bytes.AsMemory(bytes.Length / 2));
    }

    internal static async Task<JsonNode> WaitDoneAsync(string queue, string id, DaemonProcess d, double seconds = 60)
    {
        var path = Path.Combine(queue, "done", id + ".json");
        Assert.True(await EventuallyAsync(() => Task.FromResult(File.Exists(path)), seconds),
            $"no done/{id}.json (pending/: {string.Join(", ", Directory.EnumerateFileSystemEntries(Path.Combine(queue, "pending")).Select(Path.GetFileName))}; " +
            $"rejected/: {string.Join(", ", Directory.EnumerateFileSystemEntries(Path.Combine(queue, "rejected")).Select(Path.GetFileName))})\n{d.Stderr}");
        return JsonNode.Parse(File.ReadAllText(path))!;
    }
}

/// <summary>The cluster file: <c>DSPY_ENABLE_SLURM=true</c> sends a <c>gpu</c> task to Slurm, in the partition
/// <c>DSPY_SLURM_PARTITION</c> names, on the test's real single-node Slurm (which has a <c>gpu</c> partition).</summary>
[Collection(SlurmCollection.Name)]
[Trait("Needs", "slurm")] // test.sh runs these in a test process of their own, beside the rest
public sealed class ClusterEnvFileTests(SlurmCluster cluster, ITestOutputHelper output)
{
    [Fact]
    public async Task The_cluster_env_file_starts_serve_and_sends_gpu_tasks_to_its_slurm_partition()
    {
        _ = cluster;
        var root = TestDaemon.NewRoot();
        try
        {
            var (env, queue) = EnvFileTests.EnvOf("cluster", root);
            var files = new EnvFileTests(output);
            await using var d = await files.StartAsync(root, env, "cluster");
            const string id = "on-slurm";
            await EnvFileTests.DropInPlaceAsync(queue, id, EnvFileTests.Envelope(id, "gpu", "echo $SLURM_JOB_PARTITION > partition.txt", Path.Combine(root, "work")));
            var done = await EnvFileTests.WaitDoneAsync(queue, id, d, seconds: 90);
            Assert.Equal("succeeded", (string?)done["state"]);
            Assert.Equal("gpu\n", File.ReadAllText(Path.Combine(root, "work", "partition.txt")));
            var task = await d.GetAsync($"api/v1/tasks/{id}");
            Assert.Matches("^[0-9]+$", (string?)task["attempt_list"]![0]!["slurm_job_id"] ?? "");
        }
        finally { try { Directory.Delete(root, true); } catch (IOException) { } }
    }
}
