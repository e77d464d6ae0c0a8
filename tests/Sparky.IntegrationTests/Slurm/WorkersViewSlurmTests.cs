using System.Text.Json.Nodes;
using Sparky.IntegrationTests.Support;
using Sparky.IntegrationTests.Workers;

namespace Sparky.IntegrationTests.Slurm;

/// <summary><c>GET /api/v1/workers</c> on the real single-node Slurm: a pilot allocation with its job, its state, its
/// node and the worker it brought up running a task; and a gpu_slurm task's own job.</summary>
[Collection(SlurmCollection.Name)]
[Trait("Needs", "slurm")] // test.sh runs these in a test process of their own, beside the rest
public sealed class WorkersViewSlurmTests(SlurmCluster cluster)
{
    [Fact]
    public async Task The_list_shows_a_pilot_with_its_job_and_worker_and_a_running_tasks_slurm_job()
    {
        await using var d = await TestDaemon.StartAsync(new()
        {
            ["pilot_classes"] = "cpu_short", ["pilot_slots"] = "1", ["pilot_max_workers"] = "1", ["pilot_idle_timeout"] = "30",
            ["slurm_poll_seconds"] = "0.3", ["slurm_command_timeout_seconds"] = "20", ["worker_heartbeat"] = "0.3",
            ["pilot_command"] = SparkyCli.CommandLine, // the test host is not sparky: pilots run the built executable
        });
        var before = DateTimeOffset.UtcNow;
        var onPilot = await d.SubmitShellAsync("while [ ! -e go ]; do sleep 0.05; done", timeout: 120);
        var onSlurm = (await d.SubmitAsync(new JsonObject
        {
            ["class"] = "gpu_slurm", ["name"] = "a job of its own",
            ["payload"] = new JsonObject { ["command"] = "while [ ! -e go ]; do sleep 0.05; done", ["cwd"] = d.WorkDir, ["timeout_seconds"] = 120 },
        }))[0];
        try
        {
            JsonObject list;
            try
            {
                list = await WorkersApiTests.WaitForAsync(d.Http, l =>
                    l["workers"]!.AsArray().Any(w => w!["tasks"]!.AsArray().Any(t => (string?)t!["id"] == onPilot))
                    && l["slurm_jobs"]!.AsArray().Any(j => (string?)j!["id"] == onSlurm && (string?)j["state"] == "RUNNING")
                    && l["pilots"]!.AsArray().Any(p => (string?)p!["state"] == "RUNNING"), "the pilot and the job ran", seconds: 120);
            }
            catch (TimeoutException e) { throw new TimeoutException(e.Message + "\n" + cluster.Logs()); }

            var pilot = Assert.Single(list["pilots"]!.AsArray())!;
            var pilotId = (string)pilot["id"]!;
            Assert.StartsWith(d.Daemon.Engine.PilotNamePrefix, pilotId);
            Assert.Matches("^[0-9]+$", (string)pilot["job_id"]!);
            Assert.False(string.IsNullOrEmpty((string?)pilot["node"]));
            Assert.Equal((true, false), ((bool)pilot["connected"]!, (bool)pilot["inherited"]!));
            Assert.InRange(DateTimeOffset.Parse((string)pilot["submitted_at"]!), before.AddSeconds(-1), DateTimeOffset.UtcNow);
            Assert.Equal([pilotId], pilot["workers"]!.AsArray().Select(w => (string?)w));

            // The pilot's worker is named by its pilot, and runs the task.
            var worker = Assert.Single(list["workers"]!.AsArray())!;
            Assert.Equal((pilotId, pilotId), ((string?)worker["name"], (string?)worker["pilot"]));
            Assert.Equal(onPilot, (string?)worker["tasks"]![0]!["id"]);

            var job = list["slurm_jobs"]!.AsArray().Single(j => (string?)j!["id"] == onSlurm)!;
            Assert.Equal(("gpu_slurm", "a job of its own", 1), ((string?)job["class"], (string?)job["name"], (int)job["attempt"]!));
            Assert.Matches("^[0-9]+$", (string)job["job_id"]!);
            Assert.NotEqual((string)pilot["job_id"]!, (string)job["job_id"]!);
            Assert.False(string.IsNullOrEmpty((string?)job["node"]));
            // The same job as the replaced orchestrator's status route names.
            var status = JsonNode.Parse(await d.Http.GetStringAsync($"slurm/status/{onSlurm}"))!;
            Assert.Equal((string?)status["job_id"], (string?)job["job_id"]);
        }
        finally
        {
            await File.WriteAllTextAsync(Path.Combine(d.WorkDir, "go"), "");
        }
        Assert.Equal("succeeded", (string?)(await d.WaitAsync(onPilot, 60))["state"]);
        Assert.Equal("succeeded", (string?)(await d.WaitAsync(onSlurm, 60))["state"]);
        // Ended: its job leaves the list.
        await WorkersApiTests.WaitForAsync(d.Http, l => l["slurm_jobs"]!.AsArray().Count == 0, "the job left the list", seconds: 30);
    }
}
