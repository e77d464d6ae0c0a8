using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Sparky.IntegrationTests.Support;

namespace Sparky.IntegrationTests.Slurm;

/// <summary>Sparky's Slurm executor against a real single-node Slurm (slurmctld + slurmd + munge on loopback).</summary>
[Collection(SlurmCollection.Name)]
[Trait("Needs", "slurm")] // test.sh runs these in a test process of their own, beside the rest
public sealed class SlurmExecutorTests(SlurmCluster cluster)
{
    private static Task<TestDaemon> StartAsync(Dictionary<string, string>? extra = null)
    {
        var settings = new Dictionary<string, string> { ["slurm_poll_seconds"] = "0.3", ["gpu_slurm_slots"] = "16", ["slurm_command_timeout_seconds"] = "20" };
        foreach (var (k, v) in extra ?? []) settings[k] = v;
        return TestDaemon.StartAsync(settings);
    }

    private static JsonObject SlurmTask(TestDaemon d, string shell, JsonObject? extra = null)
    {
        var payload = new JsonObject { ["command"] = shell, ["cwd"] = d.WorkDir };
        foreach (var (k, v) in extra ?? []) payload[k] = v?.DeepClone();
        return new JsonObject { ["class"] = "gpu_slurm", ["payload"] = payload };
    }

    private async Task<string> JobIdOfAsync(TestDaemon d, string id, double seconds = 30)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (DateTime.UtcNow < deadline)
        {
            var t = await d.GetTaskAsync(id);
            if ((string?)t["slurm"]?["job_id"] is { } job) return job;
            await Task.Delay(100);
        }
        throw new TimeoutException($"task {id} got no Slurm job in {seconds}s\n{cluster.Logs()}");
    }

    [Fact]
    public async Task A_task_runs_as_a_slurm_job_with_its_exit_code_node_env_and_logs()
    {
        await using var d = await StartAsync();
        var ok = (await d.SubmitAsync(SlurmTask(d, "echo \"hello $GREETING from $SLURM_JOB_ID\"",
            new JsonObject { ["env"] = new JsonObject { ["GREETING"] = "there" } })))[0];
        var bad = (await d.SubmitAsync(SlurmTask(d, "echo oops >&2; exit 3")))[0];

        var t = await d.WaitAsync(ok, 60);
        Assert.Equal("succeeded", (string?)t["state"]);
        Assert.Equal(0, (int?)t["exit_code"]);
        var attempt = t["attempt_list"]![0]!;
        var jobId = (string)attempt["slurm_job_id"]!;
        Assert.Matches("^[0-9]+$", jobId);
        Assert.Equal(Environment.MachineName, (string?)attempt["host"]);
        // Slurm's own times are kept beside Sparky's (submitted at started_at, ran from slurm_started_at).
        var slurmStart = DateTimeOffset.Parse((string)attempt["slurm_started_at"]!);
        var slurmEnd = DateTimeOffset.Parse((string)attempt["slurm_ended_at"]!);
        Assert.InRange(slurmEnd - slurmStart, TimeSpan.Zero, TimeSpan.FromSeconds(30));
        Assert.InRange(slurmStart, DateTimeOffset.Parse((string)attempt["started_at"]!).AddSeconds(-2), DateTimeOffset.Parse((string)attempt["ended_at"]!).AddSeconds(1));
        Assert.Equal($"hello there from {jobId}\n", await d.Http.GetStringAsync($"api/v1/tasks/{ok}/logs"));
        var job = await cluster.ShowJobAsync(jobId);
        Assert.Equal($"sparky:{ok}:1", job!["Comment"]);

        var status = JsonNode.Parse(await d.Http.GetStringAsync($"slurm/status/{ok}"))!;
        Assert.Equal(jobId, (string?)status["job_id"]);
        Assert.Equal("COMPLETED", (string?)status["state"]);

        var f = await d.WaitAsync(bad, 60);
        Assert.Equal("failed", (string?)f["state"]);
        Assert.Equal("exit_code", (string?)f["reason"]);
        Assert.Equal(3, (int?)f["exit_code"]);
        Assert.Equal("oops\n", await d.Http.GetStringAsync($"api/v1/tasks/{bad}/logs?stream=stderr"));

        // sparky ls shows where it ran: the Slurm job id and its state.
        var ls = await SparkyCli.RunAsync(["ls", "--server", d.Daemon.Url]);
        Assert.Equal(0, ls.ExitCode);
        Assert.Contains($"slurm {jobId} COMPLETED", ls.Stdout);

        var metrics = await d.Http.GetStringAsync("metrics");
        Assert.Contains("sparky_slurm_jobs_submitted_total 2", metrics);
        Assert.Contains("sparky_slurm_jobs_completed_total{outcome=\"succeeded\"} 1", metrics);
        Assert.Contains("sparky_slurm_jobs_completed_total{outcome=\"failed\"} 1", metrics);
    }

    [Fact]
    public async Task Hostile_names_env_values_and_arguments_reach_the_job_intact_and_run_nothing()
    {
        await using var d = await StartAsync();
        var hostile = "a\n#SBATCH --partition=evil\n$(touch PWNED) `touch PWNED2` '; touch PWNED3; '";
        var body = new JsonObject
        {
            ["class"] = "gpu_slurm",
            ["name"] = "#SBATCH --wrap='touch PWNED4' $(touch PWNED4) `touch PWNED4`",
            ["payload"] = new JsonObject
            {
                ["command"] = new JsonArray("/bin/sh", "-c", "printf '%s' \"$HOSTILE\" > env.txt; printf '%s' \"$1\" > arg.txt", "sh", hostile),
                ["cwd"] = d.WorkDir,
                ["env"] = new JsonObject { ["HOSTILE"] = hostile },
            },
        };
        var id = (await d.SubmitAsync(body))[0];
        Assert.Equal("succeeded", (string?)(await d.WaitAsync(id, 60))["state"]);
        Assert.Equal(hostile, File.ReadAllText(Path.Combine(d.WorkDir, "env.txt")));
        Assert.Equal(hostile, File.ReadAllText(Path.Combine(d.WorkDir, "arg.txt")));
        foreach (var f in new[] { "PWNED", "PWNED2", "PWNED3", "PWNED4" })
            Assert.False(File.Exists(Path.Combine(d.WorkDir, f)) || File.Exists(Path.Combine(cluster.Dir, f)), $"{f} was created");
        var job = await cluster.ShowJobAsync((string)(await d.GetTaskAsync(id))["attempt_list"]![0]!["slurm_job_id"]!);
        Assert.Equal("debug", job!["Partition"]);
    }

    [Fact]
    public async Task A_job_past_its_time_limit_is_reported_as_timed_out()
    {
        // Slurm counts limits in whole minutes and checks them every 30 s: this takes 60-100 s.
        await using var d = await StartAsync();
        var id = (await d.SubmitAsync(SlurmTask(d, "sleep 300", new JsonObject { ["timeout_seconds"] = 5 })))[0];
        var jobId = await JobIdOfAsync(d, id);
        Assert.Equal("00:01:00", (await cluster.ShowJobAsync(jobId))!["TimeLimit"]);
        var t = await d.WaitAsync(id, 180);
        Assert.Equal("failed", (string?)t["state"]);
        Assert.Equal("timeout", (string?)t["reason"]);
        Assert.Equal("TIMEOUT", (await cluster.ShowJobAsync(jobId))!["JobState"]);
        // The replaced orchestrator's view says so too.
        var view = (await d.Http.GetFromJsonAsync<JsonNode>($"slurm/status/{id}"))!;
        Assert.Equal(("timeout", jobId), ((string?)view["status"], (string?)view["id"]));
    }

    [Fact]
    public async Task A_dependant_is_submitted_with_afterok_while_its_dependency_runs_and_stopped_if_it_fails()
    {
        await using var d = await StartAsync();
        // The dependencies run until the test has seen their dependants in Slurm: with a fixed sleep (3 s), four sbatches
        // in turn on a loaded machine could outlast it, and a dependant be submitted after, or never (bad-a failed first).
        const string Held = "while [ ! -e go ]; do sleep 0.2; done";
        var body = new JsonArray
        {
            new JsonObject { ["id"] = "chain-a", ["class"] = "gpu_slurm", ["payload"] = new JsonObject { ["command"] = $"{Held}; echo a > a.txt", ["cwd"] = d.WorkDir } },
            new JsonObject { ["id"] = "chain-b", ["class"] = "gpu_slurm", ["after"] = new JsonArray("chain-a"),
                ["payload"] = new JsonObject { ["command"] = "cat a.txt", ["cwd"] = d.WorkDir } },
            new JsonObject { ["id"] = "bad-a", ["class"] = "gpu_slurm", ["payload"] = new JsonObject { ["command"] = $"{Held}; exit 1", ["cwd"] = d.WorkDir } },
            new JsonObject { ["id"] = "bad-b", ["class"] = "gpu_slurm", ["after"] = new JsonArray("bad-a"),
                ["payload"] = new JsonObject { ["command"] = "touch must-not-run", ["cwd"] = d.WorkDir } },
        };
        await d.SubmitAsync(body);
        var aJob = await JobIdOfAsync(d, "chain-a");
        var bJob = await JobIdOfAsync(d, "chain-b");
        // Slurm holds b for a: submitted before a ended, with the dependency on a's job.
        var b = await cluster.ShowJobAsync(bJob);
        Assert.StartsWith($"afterok:{aJob}", b!["Dependency"]);
        var badB = await cluster.ShowJobAsync(await JobIdOfAsync(d, "bad-b"));
        Assert.StartsWith("afterok:", badB!["Dependency"]);
        File.WriteAllText(Path.Combine(d.WorkDir, "go"), "");

        var done = await d.WaitAsync("chain-b", 60);
        Assert.Equal("succeeded", (string?)done["state"]);
        Assert.Equal("a\n", await d.Http.GetStringAsync("api/v1/tasks/chain-b/logs"));

        var stopped = await d.WaitAsync("bad-b", 60);
        Assert.Equal(("failed", "dependency_failed"), ((string?)stopped["state"], (string?)stopped["reason"]));
        Assert.Equal("CANCELLED", (await cluster.ShowJobAsync((string)stopped["attempt_list"]![0]!["slurm_job_id"]!))!["JobState"]);
        Assert.False(File.Exists(Path.Combine(d.WorkDir, "must-not-run")));
    }

    [Fact]
    public async Task An_array_goes_to_slurm_as_one_job_array_with_each_element_in_its_own_task()
    {
        await using var d = await StartAsync();
        var body = SlurmTask(d, "echo \"element $SPARKY_ARRAY_INDEX of $SPARKY_TASK_ID on $SLURM_ARRAY_TASK_ID\"");
        body["array"] = "0-3";
        var ids = await d.SubmitAsync(body);
        Assert.Equal(4, ids.Count);
        var jobs = new List<string>();
        foreach (var id in ids)
        {
            var t = await d.WaitAsync(id, 90);
            Assert.Equal("succeeded", (string?)t["state"]);
            int index = (int)t["array_index"]!;
            jobs.Add((string)t["attempt_list"]![0]!["slurm_job_id"]!);
            Assert.Equal($"element {index} of {id} on {index}\n", await d.Http.GetStringAsync($"api/v1/tasks/{id}/logs"));
        }
        // One sbatch: every element is <array job>_<index> of the same array job.
        var bases = jobs.Select(j => j.Split('_')[0]).Distinct().ToList();
        Assert.Single(bases);
        Assert.Equal(["0", "1", "2", "3"], jobs.Select(j => j.Split('_')[1]).Order());
        Assert.Contains("sparky_slurm_jobs_submitted_total 4", await d.Http.GetStringAsync("metrics"));
    }

    [Fact]
    public async Task A_job_slurm_forgot_is_unknown_then_lost_and_retried_never_succeeded()
    {
        await using var d = await StartAsync();
        var id = (await d.SubmitAsync(SlurmTask(d, "if [ -e first ]; then echo second; else touch first; sleep 30; fi",
            new JsonObject { ["retries"] = 1 })))[0];
        var jobId = await JobIdOfAsync(d, id);
        await cluster.WaitForJobAsync(jobId, 30, "RUNNING");
        // The controller loses every record: stop it, wipe its saved state, start it afresh.
        await cluster.StopControllerAsync();
        foreach (var f in Directory.EnumerateFileSystemEntries(Path.Combine(cluster.Dir, "state")))
        {
            if (Directory.Exists(f)) Directory.Delete(f, true); else File.Delete(f);
        }
        await cluster.StartControllerAsync();
        var t = await d.WaitAsync(id, 120);
        var attempts = (JsonArray)t["attempt_list"]!;
        Assert.Equal("lost", (string?)attempts[0]!["reason"]);
        Assert.Null((int?)attempts[0]!["exit_code"]);
        Assert.Equal("succeeded", (string?)t["state"]);
        Assert.Equal(2, attempts.Count);
        Assert.NotEqual(jobId, (string?)attempts[1]!["slurm_job_id"]);
    }

    [Fact]
    public async Task Cancel_runs_scancel_and_the_task_ends_cancelled()
    {
        await using var d = await StartAsync();
        var id = (await d.SubmitAsync(SlurmTask(d, "sleep 60")))[0];
        var jobId = await JobIdOfAsync(d, id);
        await cluster.WaitForJobAsync(jobId, 30, "RUNNING");
        var r = await d.Http.DeleteAsync($"api/v1/tasks/{id}");
        Assert.True(r.IsSuccessStatusCode);
        var t = await d.WaitAsync(id, 30);
        Assert.Equal("cancelled", (string?)t["state"]);
        Assert.Equal("CANCELLED", (await cluster.ShowJobAsync(jobId))!["JobState"]);
    }

    [Fact]
    public async Task A_job_killed_for_memory_is_reported_as_out_of_memory()
    {
        await using var d = await StartAsync();
        var id = (await d.SubmitAsync(SlurmTask(d, "python3 -c 'x = bytearray(300 * 1024 * 1024); import time; time.sleep(10)'",
            new JsonObject { ["resources"] = new JsonObject { ["memory_mb"] = 20 } })))[0];
        var t = await d.WaitAsync(id, 60);
        Assert.Equal("failed", (string?)t["state"]);
        Assert.Equal("out_of_memory", (string?)t["reason"]);
    }

    [Fact]
    public async Task With_the_controller_stopped_tasks_keep_their_true_outcome_and_a_submission_waits_for_it()
    {
        await using var d = await StartAsync();
        // The jobs run until the test lets them end, while the controller is down: a loaded machine can take longer to
        // stop it than any fixed sleep, and a job that ended before would be followed to its end with the controller up.
        var go = Path.Combine(d.WorkDir, "go");
        var running = (await d.SubmitAsync(SlurmTask(d, $"while [ ! -e {go} ]; do sleep 0.2; done; exit 0")))[0];
        var failing = (await d.SubmitAsync(SlurmTask(d, $"while [ ! -e {go} ]; do sleep 0.2; done; exit 5")))[0];
        await cluster.WaitForJobAsync(await JobIdOfAsync(d, running), 60, "RUNNING");
        await JobIdOfAsync(d, failing);

        await cluster.StopControllerAsync();
        // Submitted while Slurm is down: sbatch fails and is retried with backoff.
        var late = (await d.SubmitAsync(SlurmTask(d, "echo late")))[0];
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (!System.Text.RegularExpressions.Regex.IsMatch(await d.Http.GetStringAsync("metrics"), "sparky_slurm_poll_errors_total [1-9]"))
        {
            Assert.True(DateTime.UtcNow < deadline, "no poll error was counted while the controller was down");
            await Task.Delay(200);
        }
        Assert.Equal("running", (string?)(await d.GetTaskAsync(running))["state"]);
        File.WriteAllText(go, "");
        await cluster.StartControllerAsync();

        // Polls back off up to 30 s while the controller is down, and each failed squeue can take the command timeout
        // (20 s) on a loaded machine: the ends are learned within a few backed-off polls.
        Assert.Equal("succeeded", (string?)(await d.WaitAsync(running, 180))["state"]);
        var f = await d.WaitAsync(failing, 180);
        Assert.Equal(("failed", 5), ((string?)f["state"], (int?)f["exit_code"]));
        Assert.Equal("succeeded", (string?)(await d.WaitAsync(late, 180))["state"]);
        // Never two Slurm jobs for one attempt.
        var (_, queue, _) = await cluster.RunAsync("squeue", "-h", "-a", "--states=all", "-o", "%k");
        Assert.Single(queue.Split('\n'), l => l.Trim() == $"sparky:{late}:1");
    }

    [Fact]
    public async Task A_restarted_daemon_follows_its_running_jobs_instead_of_submitting_them_again()
    {
        var root = TestDaemon.NewRoot();
        string id, jobId;
        var settings = new Dictionary<string, string> { ["slurm_poll_seconds"] = "0.3", ["gpu_slurm_slots"] = "16" };
        await using (var d = await TestDaemon.StartAsync(settings, root))
        {
            id = (await d.SubmitAsync(SlurmTask(d, "sleep 4; echo done")))[0];
            jobId = await JobIdOfAsync(d, id);
        }
        await using (var d = await TestDaemon.StartAsync(settings, root))
        {
            var t = await d.WaitAsync(id, 60);
            Assert.Equal("succeeded", (string?)t["state"]);
            var attempts = (JsonArray)t["attempt_list"]!;
            Assert.Equal(jobId, (string?)Assert.Single(attempts)!["slurm_job_id"]);
            Assert.Equal("done\n", await d.Http.GetStringAsync($"api/v1/tasks/{id}/logs"));
        }
        Directory.Delete(root, true);
    }

    /// <summary>SPEC 7: an sbatch that times out is checked by --comment before any retry. The hard case: Slurm took
    /// the job and it has already ended when the retry looks, so only the attempt in the comment tells it from an
    /// earlier attempt's. A wrapper ahead of Slurm's sbatch on the daemon's PATH submits, waits until the job has
    /// ended, and answers only after the daemon's 3 s limit.</summary>
    [Fact]
    public async Task A_job_that_ended_before_its_timed_out_sbatch_answered_is_adopted_not_run_again()
    {
        var root = TestDaemon.NewRoot();
        try
        {
            var bin = Directory.CreateDirectory(Path.Combine(root, "bin")).FullName;
            var ended = Path.Combine(root, "ended-before-the-answer");
            var runs = Path.Combine(root, "runs");
            var wrapper = Path.Combine(bin, "sbatch");
            File.WriteAllText(wrapper, "#!/bin/sh\n" +
                $"out=$('{ExternalTool.Find("sbatch", "slurm-client")}' \"$@\") || exit $?\n" +
                "id=${out%%;*}\n" +
                "i=0\n" +
                "until scontrol show job \"$id\" 2>/dev/null | grep -q 'JobState=COMPLETED'; do\n" +
                "  i=$((i+1)); [ $i -gt 300 ] && break; sleep 0.1\n" +
                "done\n" +
                $"scontrol show job \"$id\" | grep -q 'JobState=COMPLETED' && touch '{ended}'\n" +
                "sleep 6\n" +
                "echo \"$out\"\n");
            File.SetUnixFileMode(wrapper, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            var env = new Dictionary<string, string> { ["PATH"] = bin + ":" + Environment.GetEnvironmentVariable("PATH") };
            await using var d = await DaemonProcess.StartAsync(Path.Combine(root, "data"), SparkyCli.FreePort(), 0, env,
                "--slurm-poll-seconds", "0.3", "--gpu-slurm-slots", "4", "--slurm-command-timeout-seconds", "3");

            var body = new JsonObject { ["class"] = "gpu_slurm", ["payload"] = new JsonObject { ["command"] = $"echo run >> '{runs}'", ["cwd"] = root } };
            using var resp = await d.Http.PostAsync("api/v1/tasks", new StringContent(body.ToJsonString(), System.Text.Encoding.UTF8, "application/json"));
            Assert.True(resp.IsSuccessStatusCode, await resp.Content.ReadAsStringAsync());
            var id = (string)JsonNode.Parse(await resp.Content.ReadAsStringAsync())!["ids"]![0]!;
            var t = await d.TaskUntilAsync(id, t => (string?)t["state"] is "succeeded" or "failed" or "cancelled", 120);

            Assert.True(File.Exists(ended), "the job had not ended before sbatch answered: the case was not made");
            Assert.True((string?)t["state"] == "succeeded", t.ToJsonString() + d.Stderr);
            Assert.Equal("run\n", File.ReadAllText(runs));
            var (_, queue, _) = await cluster.RunAsync("squeue", "-h", "-a", "--states=all", "-o", "%k");
            Assert.Single(queue.Split('\n'), l => l.Trim() == $"sparky:{id}:1");
        }
        finally
        {
            Directory.Delete(root, true);
        }
    }
}
