using System.Security.Cryptography;
using System.Text.Json.Nodes;
using Sparky.IntegrationTests.Support;
using Xunit.Abstractions;
using static Sparky.IntegrationTests.BadInput.BadInputSupport;

namespace Sparky.IntegrationTests.Outputs;

/// <summary>A Slurm job's result marker and declared outputs, against a real single-node Slurm: the job writes on the
/// file system the daemon reads (as its logs are), so its outputs are hashed by the daemon as a local task's are.</summary>
[Collection(SlurmCollection.Name)]
[Trait("Needs", "slurm")] // test.sh runs these in a test process of their own, beside the rest
public sealed class SlurmOutputsTests(SlurmCluster cluster, ITestOutputHelper output)
{
    [Fact]
    public async Task A_slurm_jobs_result_and_outputs_are_recorded_and_its_done_file_carries_them()
    {
        await using var d = await TestDaemon.StartAsync(new Dictionary<string, string> { ["slurm_poll_seconds"] = "0.3", ["slurm_command_timeout_seconds"] = "20" });
        var envelope = new JsonObject
        {
            ["id"] = "on-slurm",
            ["class"] = "gpu_slurm",
            ["payload"] = new JsonObject
            {
                ["command"] = "mkdir -p res && echo \"$SLURM_JOB_ID\" > res/job.txt; echo '__DSPY_RESULT__:{\"job\": true}'; echo epilogue",
                ["cwd"] = d.WorkDir,
                ["artifacts"] = new JsonObject { ["outputs"] = new JsonArray(new JsonObject { ["path"] = "res/job.txt", ["type"] = "text" }) },
            },
        };
        await ArtifactsTests.SubmitCompatibleAsync(d.Http, envelope);
        var done = Path.Combine(d.DataDir, "queue", "done", "on-slurm.json");
        Assert.True(await EventuallyAsync(() => Task.FromResult(File.Exists(done)), seconds: 90), $"done/on-slurm.json never appeared\n{cluster.Logs()}");
        var t = await d.GetTaskAsync("on-slurm");
        output.WriteLine(t["artifacts"]!.ToJsonString());
        Assert.Equal("succeeded", (string?)t["state"]);
        Assert.NotNull(t["slurm"]);
        Assert.Equal("""{"job":true}""", t["result"]?.ToJsonString());
        var file = Path.Combine(d.WorkDir, "res", "job.txt");
        var expected = "sha256:" + Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(file)));
        foreach (var artifacts in new[] { t["artifacts"]!, JsonNode.Parse(File.ReadAllText(done))!["artifacts"]! })
        {
            Assert.Equal("recorded", (string?)artifacts["state"]);
            Assert.Equal(expected, (string?)artifacts["outputs"]![0]!["checksum"]);
            Assert.Equal(new FileInfo(file).Length, (long)artifacts["outputs"]![0]!["size_bytes"]!);
        }
    }
}
