using System.Text.Json.Nodes;
using Sparky.IntegrationTests.Support;

namespace Sparky.IntegrationTests.Slurm;

/// <summary>Pilot mode on the real single-node Slurm: Sparky submits worker jobs while work is queued, feeds them over
/// ZeroMQ, lets idle ones end, and drains one before its walltime.</summary>
[Collection(SlurmCollection.Name)]
[Trait("Needs", "slurm")] // test.sh runs these in a test process of their own, beside the rest
public sealed class PilotTests(SlurmCluster cluster)
{
    private static Task<TestDaemon> StartAsync(Dictionary<string, string> extra)
    {
        var settings = new Dictionary<string, string>
        {
            ["pilot_classes"] = "cpu_short",
            ["pilot_slots"] = "1",
            ["slurm_poll_seconds"] = "0.3",
            ["slurm_command_timeout_seconds"] = "20",
            ["worker_heartbeat"] = "0.3",
            // The test host is not sparky: pilots run the built executable.
            ["pilot_command"] = SparkyCli.CommandLine,
        };
        foreach (var (k, v) in extra) settings[k] = v;
        return TestDaemon.StartAsync(settings);
    }

    /// <summary>Job ids of this daemon's pilot jobs still in Slurm's queue.</summary>
    private async Task<List<string>> QueuedPilotsAsync(TestDaemon d)
    {
        var (code, stdout, stderr) = await cluster.RunAsync("squeue", "--noheader", "--format=%i %j");
        Assert.True(code == 0, stderr);
        return stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Trim().Split(' '))
            .Where(f => f.Length == 2 && f[1].StartsWith(d.Daemon.Engine.PilotNamePrefix, StringComparison.Ordinal)).Select(f => f[0]).ToList();
    }

    [Fact]
    public async Task Pilots_start_when_work_is_queued_run_it_over_zeromq_and_end_when_idle()
    {
        await using var d = await StartAsync(new() { ["pilot_max_workers"] = "2", ["pilot_idle_timeout"] = "3" });
        Assert.Empty(await QueuedPilotsAsync(d)); // nothing queued, no pilot
        var marks = Path.Combine(d.WorkDir, "marks");
        var ids = new List<string>();
        for (int i = 0; i < 30; i++) ids.Add(await d.SubmitShellAsync($"echo \"$SPARKY_TASK_ID $SPARKY_WORKER $SLURM_JOB_ID\" >> {marks}; sleep 0.2"));

        int most = 0;
        var pending = new HashSet<string>(ids);
        var deadline = DateTime.UtcNow.AddSeconds(120);
        while (pending.Count > 0)
        {
            Assert.True(DateTime.UtcNow < deadline, $"{pending.Count} task(s) unfinished\n{cluster.Logs()}");
            most = Math.Max(most, (await QueuedPilotsAsync(d)).Count);
            foreach (var id in pending.ToList())
                if ((string?)(await d.GetTaskAsync(id))["state"] is "succeeded" or "failed" or "cancelled") pending.Remove(id);
            await Task.Delay(200);
        }
        Assert.InRange(most, 1, 2); // pilot_max_workers
        var pilots = new HashSet<string>();
        foreach (var id in ids)
        {
            var t = await d.GetTaskAsync(id);
            Assert.Equal("succeeded", (string?)t["state"]);
            Assert.Equal(1, (int?)t["attempts"]);
            Assert.StartsWith("pilot-", (string)t["host"]!);
            pilots.Add((string)t["host"]!);
        }
        // Each ran once, inside a Slurm job (the pilot's), on the worker the daemon recorded.
        var lines = (await File.ReadAllLinesAsync(marks)).Select(l => l.Split(' ')).ToList();
        Assert.Equal(ids.Order(), lines.Select(l => l[0]).Order());
        Assert.All(lines, l => Assert.Matches("^[0-9]+$", l[2]));
        Assert.Subset(pilots, lines.Select(l => l[1]).ToHashSet());

        // Idle pilots end their own jobs: the queue empties and the daemon counts no worker.
        for (var until = DateTime.UtcNow.AddSeconds(60); (await QueuedPilotsAsync(d)).Count > 0;)
        {
            Assert.True(DateTime.UtcNow < until, "idle pilots did not end\n" + cluster.Logs());
            await Task.Delay(300);
        }
        // A pilot's bye reaches the engine's loop after (or while) its job leaves the queue: polled, within the worker timeout.
        for (var until = DateTime.UtcNow.AddSeconds(15); !(await d.Http.GetStringAsync("metrics")).Contains("sparky_workers_connected 0");)
        {
            Assert.True(DateTime.UtcNow < until, "the daemon still counts a worker 15 s after the pilots' jobs left the queue");
            await Task.Delay(200);
        }
        foreach (var jobId in lines.Select(l => l[2]).Distinct())
        {
            var job = await cluster.ShowJobAsync(jobId);
            Assert.Equal("COMPLETED", job!["JobState"]);
        }
        // The daemon learns that the jobs ended from its own next squeue, up to a poll interval after ours.
        for (var until = DateTime.UtcNow.AddSeconds(15); d.Daemon.Engine.PilotJobs > 0;)
        {
            Assert.True(DateTime.UtcNow < until, $"the daemon still counts {d.Daemon.Engine.PilotJobs} pilot job(s) after Slurm ended them");
            await Task.Delay(200);
        }
    }

    [Fact]
    public async Task A_pilot_near_its_walltime_drains_finishes_its_task_and_a_new_pilot_takes_the_rest()
    {
        // The pilot stops taking tasks 10 s into its 20 s; a task it runs then still ends well inside the walltime. Idle
        // for 10 s it would leave: far more than the test takes between two tasks on a loaded machine.
        await using var d = await StartAsync(new()
        {
            ["pilot_max_workers"] = "1", ["pilot_idle_timeout"] = "10", ["pilot_walltime"] = "20", ["pilot_drain"] = "10",
        });
        var marks = Path.Combine(d.WorkDir, "marks");
        var first = await d.SubmitShellAsync($"echo \"first $SPARKY_WORKER\" >> {marks}; sleep 0.5");
        var t1 = await d.WaitAsync(first, 90);
        Assert.Equal("succeeded", (string?)t1["state"]);
        var pilot1 = (string)t1["host"]!;
        // Starts before the drain (about 10 s into the pilot's life) and runs until the test has seen the pilot draining
        // (a fixed sleep could end before the drain on one machine, and run into the walltime on a loaded one).
        var go = Path.Combine(d.WorkDir, "go");
        var longTask = await d.SubmitShellAsync($"echo \"long $SPARKY_WORKER\" >> {marks}; while [ ! -e {go} ]; do sleep 0.1; done; echo \"long done\" >> {marks}");
        for (var until = DateTime.UtcNow.AddSeconds(30); (string?)(await d.GetTaskAsync(longTask))["state"] != "running";)
        {
            Assert.True(DateTime.UtcNow < until, "the long task never started");
            await Task.Delay(50);
        }
        var later = await d.SubmitShellAsync($"echo \"later $SPARKY_WORKER\" >> {marks}");
        await Workers.WorkersApiTests.WaitForAsync(d.Http, list => Workers.WorkersApiTests.Worker(list, pilot1)?["draining"]?.GetValue<bool>() == true,
            "the pilot drained", seconds: 60);
        File.WriteAllText(go, "");

        var l = await d.WaitAsync(longTask, 90);
        Assert.Equal("succeeded", (string?)l["state"]);
        Assert.Equal(1, (int?)l["attempts"]); // not cut off, not run again
        Assert.Equal(pilot1, (string?)l["host"]);
        var t = await d.WaitAsync(later, 90);
        Assert.Equal("succeeded", (string?)t["state"]);
        Assert.NotEqual(pilot1, (string?)t["host"]); // the draining pilot took nothing new

        // The drained pilot ended its job itself, before Slurm's limit.
        var log = await File.ReadAllTextAsync(Path.Combine(d.DataDir, "logs", "pilots", pilot1 + ".err"));
        for (var until = DateTime.UtcNow.AddSeconds(30); !log.Contains("leaves (drained");)
        {
            Assert.True(DateTime.UtcNow < until, "the pilot did not leave after draining:\n" + log);
            await Task.Delay(300);
            log = await File.ReadAllTextAsync(Path.Combine(d.DataDir, "logs", "pilots", pilot1 + ".err"));
        }
        Assert.Contains("draining", log);
        Assert.DoesNotContain("walltime reached", log);
    }
}
