using Sparky.IntegrationTests.Support;
using Xunit.Abstractions;

namespace Sparky.IntegrationTests.Slurm;

/// <summary>The test cluster itself works: a job runs to COMPLETED, and the controller can be stopped and started under a running job.</summary>
[Collection(SlurmCollection.Name)]
[Trait("Needs", "slurm")] // test.sh runs these in a test process of their own, beside the rest
public sealed class ClusterSmokeTests(SlurmCluster cluster, ITestOutputHelper output)
{
    private async Task<string> SubmitAsync(params string[] args)
    {
        var (code, stdout, stderr) = await cluster.RunAsync("sbatch", ["--parsable", .. args]);
        Assert.True(code == 0, $"sbatch {string.Join(' ', args)} exited {code}: {stderr}\n{cluster.Logs()}");
        var id = stdout.Trim().Split(';')[0];   // --parsable: "id" or "id;cluster"
        Assert.Matches("^[0-9]+$", id);
        return id;
    }

    [Fact]
    public async Task A_job_runs_to_completed_with_exit_code_0()
    {
        output.WriteLine($"cluster started in {cluster.StartSeconds:F1} s, SLURM_CONF={cluster.Conf}");
        Assert.Equal(cluster.Conf, Environment.GetEnvironmentVariable("SLURM_CONF"));

        var id = await SubmitAsync("--job-name=smoke", "--wrap", "echo hi");
        var job = await cluster.WaitForJobAsync(id, 30, "COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY");
        Assert.Equal("COMPLETED", job["JobState"]);
        Assert.Equal("0:0", job["ExitCode"]);
        Assert.Equal("hi\n", await File.ReadAllTextAsync(job["StdOut"]));
    }

    [Fact]
    public async Task The_controller_stops_and_starts_again_and_still_knows_a_running_job()
    {
        var id = await SubmitAsync("--job-name=smoke-restart", "--wrap", "sleep 4");
        await cluster.WaitForJobAsync(id, 30, "RUNNING");

        await cluster.StopControllerAsync();
        var (code, stdout, _) = await cluster.RunAsync("scontrol", "ping");
        Assert.NotEqual(0, code);
        Assert.Contains("DOWN", stdout);

        await cluster.StartControllerAsync();
        (code, stdout, _) = await cluster.RunAsync("scontrol", "ping");
        Assert.Equal(0, code);
        Assert.Contains("UP", stdout);

        var job = await cluster.ShowJobAsync(id);
        Assert.NotNull(job);
        Assert.Contains(job["JobState"], new[] { "RUNNING", "COMPLETING", "COMPLETED" });
        job = await cluster.WaitForJobAsync(id, 60, "COMPLETED", "FAILED", "CANCELLED", "NODE_FAIL");
        Assert.Equal("COMPLETED", job["JobState"]);

        // and it takes new work
        var next = await SubmitAsync("--job-name=smoke-after", "--wrap", "true");
        Assert.Equal("COMPLETED", (await cluster.WaitForJobAsync(next, 30, "COMPLETED", "FAILED", "CANCELLED"))["JobState"]);
    }
}
