using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Sparky.IntegrationTests.Support;
using static Sparky.IntegrationTests.Api.TaskLifecycleTests;

namespace Sparky.IntegrationTests.Slurm;

/// <summary>
/// The replaced orchestrator's Slurm door on a real single-node Slurm: a gpu_slurm submit through <c>/queue/submit</c>
/// answers with the job id once sbatch took it, <c>/slurm/status/{id}</c> answers with its fields from then on, and a
/// payload that names work (<c>{"method": "grpo", ...}</c>) fills <c>gpu_slurm_sbatch_template</c>, every value checked.
/// </summary>
[Collection(SlurmCollection.Name)]
[Trait("Needs", "slurm")] // test.sh runs these in a test process of their own, beside the rest
public sealed class SlurmCompatTests(SlurmCluster cluster)
{
    /// <summary>Modelled on the replaced system's deploy/slurm templates: its own directives (one Sparky must override),
    /// placeholders with defaults, the payload file, and the runner's result line.</summary>
    private const string Template = """
        #!/bin/bash
        #SBATCH -J {{payload.method|grpo}}_training
        #SBATCH --output=/tmp/not-sparkys-%j.out
        #SBATCH --cpus-per-task=1
        # Task: {{task_id}} Method: {{payload.method}}

        set -euo pipefail
        echo "[slurm] method={{payload.method}} module={{payload.module|orchestrator}} model={{payload.model}} dataset={{payload.dataset|none}} task={{task_id}} job=$SLURM_JOB_ID"
        cp "$SPARKY_PAYLOAD_FILE" "{{payload.out_dir}}/payload-copy.json"
        echo '__DSPY_RESULT__:{"trained": "{{payload.model}}", "method": "{{payload.method}}"}'
        """;

    private static async Task<(TestDaemon Daemon, string Root)> StartAsync(Dictionary<string, string>? extra = null)
    {
        var root = TestDaemon.NewRoot();
        var template = Path.Combine(root, "train_agent_methodologies.sbatch");
        File.WriteAllText(template, Template);
        var settings = new Dictionary<string, string>
        {
            ["slurm_poll_seconds"] = "0.3", ["gpu_slurm_slots"] = "16", ["slurm_command_timeout_seconds"] = "20",
            ["gpu_slurm_sbatch_template"] = template,
        };
        foreach (var (k, v) in extra ?? []) settings[k] = v;
        return (await TestDaemon.StartAsync(settings, root), root);
    }

    private static async Task<(HttpStatusCode Status, JsonNode Body)> PostAsync(TestDaemon d, string path, JsonNode body)
    {
        using var resp = await d.Http.PostAsync(path, new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json"));
        return (resp.StatusCode, JsonNode.Parse(await resp.Content.ReadAsStringAsync())!);
    }

    private static async Task<JsonNode> SlurmStatusAsync(TestDaemon d, string id)
    {
        using var resp = await d.Http.GetAsync($"slurm/status/{id}");
        var text = await resp.Content.ReadAsStringAsync();
        Assert.True(resp.StatusCode == HttpStatusCode.OK, $"{(int)resp.StatusCode}: {text}");
        return JsonNode.Parse(text)!;
    }

    [Fact]
    public async Task A_training_payload_fills_the_template_and_answers_as_the_replaced_orchestrator_did()
    {
        var (d, root) = await StartAsync();
        try
        {
            await using var daemon = d;
            // Its integration test's task, as it sent it.
            var task = new JsonObject
            {
                ["id"] = "test_slurm_001", ["class"] = "gpu_slurm",
                ["payload"] = new JsonObject { ["method"] = "grpo", ["model"] = "gpt2", ["dataset"] = "test_dataset.jsonl", ["out_dir"] = d.WorkDir },
            };
            var (status, ack) = await PostAsync(d, "queue/submit", task);
            Assert.True(status == HttpStatusCode.OK, ack.ToJsonString());
            Assert.Equal(true, (bool?)ack["ok"]);
            Assert.Equal("test_slurm_001", (string?)ack["id"]);
            Assert.Equal("submitted", (string?)ack["status"]);
            var jobId = (string)ack["slurm_job_id"]!;
            Assert.Matches("^[0-9]+$", jobId);

            // Right after: its Slurm view, in the old orchestrator's fields (the job id as "id", a string) and Sparky's.
            var view = await SlurmStatusAsync(d, "test_slurm_001");
            Assert.Equal(jobId, (string?)view["id"]);
            Assert.Equal(jobId, (string?)view["job_id"]);
            Assert.Equal("test_slurm_001", (string?)view["task_id"]);
            Assert.Contains((string?)view["status"], new[] { "pending", "running", "completed" });
            Assert.True(DateTimeOffset.TryParse((string?)view["submit_time"], out _));
            Assert.Equal("grpo", (string?)view["payload"]!["method"]);

            var t = await d.WaitAsync("test_slurm_001", 90);
            Assert.True((string?)t["state"] == "succeeded", t.ToJsonString() + await d.Http.GetStringAsync("api/v1/tasks/test_slurm_001/logs?stream=stderr"));
            Assert.Equal("gpt2", (string?)t["result"]!["trained"]);
            Assert.Equal("grpo", (string?)t["result"]!["method"]);
            var log = await d.Http.GetStringAsync("api/v1/tasks/test_slurm_001/logs");
            Assert.Contains($"[slurm] method=grpo module=orchestrator model=gpt2 dataset=test_dataset.jsonl task=test_slurm_001 job={jobId}\n", log);
            // The payload file the daemon wrote reached the job, and is gone with the task.
            Assert.Equal(task["payload"]!.ToJsonString(), File.ReadAllText(Path.Combine(d.WorkDir, "payload-copy.json")));
            Assert.Empty(Directory.GetFiles(Path.Combine(d.DataDir, "run"), "*.payload.json"));
            // Sparky's own directives won over the template's (its name, its log files, its comment).
            var job = await cluster.ShowJobAsync(jobId);
            Assert.Equal("test_slurm_001", job!["JobName"]);
            Assert.Equal("sparky:test_slurm_001:1", job["Comment"]);
            Assert.StartsWith(Path.Combine(d.DataDir, "logs"), job["StdOut"]);

            var end = await SlurmStatusAsync(d, "test_slurm_001");
            Assert.Equal(("completed", jobId, 0), ((string?)end["status"], (string?)end["id"], (int?)end["exit_code"]));
            Assert.True(DateTimeOffset.TryParse((string?)end["end_time"], out _));
            var done = JsonNode.Parse(File.ReadAllText(Path.Combine(d.DataDir, "queue", "done", "test_slurm_001.json")))!;
            Assert.Equal("gpt2", (string?)done["result"]!["trained"]);
        }
        finally { Directory.Delete(root, recursive: true); }
    }

    [Fact]
    public async Task A_hostile_value_is_refused_at_submit_naming_its_field_and_nothing_reaches_slurm()
    {
        var (d, root) = await StartAsync();
        try
        {
            await using var daemon = d;
            JsonObject Task(string id, JsonNode model) => new()
            {
                ["id"] = id, ["class"] = "gpu_slurm",
                ["payload"] = new JsonObject { ["method"] = "grpo", ["model"] = model, ["out_dir"] = d.WorkDir },
            };
            var (status, problem) = await PostAsync(d, "queue/submit", Task("hostile-1", "x; rm -rf /"));
            Assert.Equal(HttpStatusCode.BadRequest, status);
            Assert.Contains("payload.model", (string?)problem["detail"]);
            Assert.Contains("';'", (string?)problem["detail"]);
            Assert.Contains("gpu_slurm_sbatch_template", (string?)problem["detail"]);
            (status, problem) = await PostAsync(d, "queue/submit", Task("hostile-2", "gpt2\n#SBATCH --partition=evil"));
            Assert.Equal(HttpStatusCode.BadRequest, status);
            Assert.Contains("payload.model", (string?)problem["detail"]);
            Assert.Contains("a newline", (string?)problem["detail"]);
            (status, problem) = await PostAsync(d, "api/v1/tasks", Task("hostile-3", "$(touch PWNED)"));
            Assert.Equal(HttpStatusCode.BadRequest, status);
            Assert.Contains("payload.model", (string?)problem["detail"]);

            // Dropped: rejected beside a reason that names the field.
            var pending = Path.Combine(d.DataDir, "queue", "pending");
            File.WriteAllText(Path.Combine(pending, ".hostile-4.tmp"), Task("hostile-4", "a`id`b").ToJsonString());
            File.Move(Path.Combine(pending, ".hostile-4.tmp"), Path.Combine(pending, "hostile-4.json"));
            var reason = Path.Combine(d.DataDir, "queue", "rejected", "hostile-4.json.reason");
            await WaitForAsync(() => File.Exists(reason));
            Assert.Contains("payload.model", File.ReadAllText(reason));

            foreach (var id in new[] { "hostile-1", "hostile-2", "hostile-3", "hostile-4" })
                using (var r = await d.Http.GetAsync($"api/v1/tasks/{id}")) Assert.Equal(HttpStatusCode.NotFound, r.StatusCode);
            var (_, queue, _) = await cluster.RunAsync("squeue", "-h", "-a", "--states=all", "-o", "%k");
            Assert.DoesNotContain("sparky:hostile", queue);
            Assert.Empty(Directory.GetFiles(d.WorkDir, "PWNED*"));
        }
        finally { Directory.Delete(root, recursive: true); }
    }

    [Fact]
    public async Task Past_the_submit_wait_a_gpu_slurm_task_is_queued_and_its_slurm_view_says_pending()
    {
        // One slot: the second task waits behind the first, so no sbatch answers within the wait.
        var (d, root) = await StartAsync(new() { ["gpu_slurm_slots"] = "1", ["slurm_submit_wait"] = "1" });
        try
        {
            await using var daemon = d;
            JsonObject Shell(string id, string command) => new()
            {
                ["id"] = id, ["class"] = "gpu_slurm", ["payload"] = new JsonObject { ["command"] = command, ["cwd"] = d.WorkDir },
            };
            // The first holds the slot until the test has seen the second wait (4 s could pass on a loaded machine).
            var go = Path.Combine(d.WorkDir, "go");
            var (_, first) = await PostAsync(d, "queue/submit", Shell("first", $"while [ ! -e {go} ]; do sleep 0.2; done"));
            Assert.Equal("submitted", (string?)first["status"]);
            Assert.Matches("^[0-9]+$", (string?)first["slurm_job_id"]);
            var (status, second) = await PostAsync(d, "queue/submit", Shell("second", "echo second"));
            Assert.Equal(HttpStatusCode.OK, status);
            Assert.Equal(("second", "queued"), ((string?)second["id"], (string?)second["status"]));
            Assert.Null(second["slurm_job_id"]);

            var view = await SlurmStatusAsync(d, "second");
            Assert.Equal(("pending", "second"), ((string?)view["status"], (string?)view["task_id"]));
            Assert.Null((string?)view["id"]);
            File.WriteAllText(go, "");
            Assert.Equal("succeeded", (string?)(await d.WaitAsync("second", 90))["state"]);
            var ended = await SlurmStatusAsync(d, "second");
            Assert.Equal("completed", (string?)ended["status"]);
            Assert.Matches("^[0-9]+$", (string?)ended["id"]);

            // A task of a class that does not run on Slurm has no Slurm view.
            var local = await d.SubmitShellAsync("true");
            using var resp = await d.Http.GetAsync($"slurm/status/{local}");
            Assert.Equal(HttpStatusCode.NotFound, resp.StatusCode);
        }
        finally { Directory.Delete(root, recursive: true); }
    }

    [Fact]
    public async Task A_handler_on_slurm_reads_the_payload_on_stdin()
    {
        var root = TestDaemon.NewRoot();
        try
        {
            await using var d = await TestDaemon.StartAsync(new()
            {
                ["slurm_poll_seconds"] = "0.3", ["gpu_slurm_slots"] = "4",
                ["gpu_slurm_handler"] = "sh -c 'cat; echo; cat \"$SPARKY_PAYLOAD_FILE\"'",
            }, root);
            var (status, ack) = await PostAsync(d, "queue/submit", JsonNode.Parse("""{"id":"slurm-handler","class":"gpu_slurm","payload":{"method":"ddp","nodes":1}}""")!);
            Assert.Equal(HttpStatusCode.OK, status);
            Assert.Equal("submitted", (string?)ack["status"]);
            Assert.Equal("succeeded", (string?)(await d.WaitAsync("slurm-handler", 90))["state"]);
            Assert.Equal("{\"method\":\"ddp\",\"nodes\":1}\n{\"method\":\"ddp\",\"nodes\":1}", await d.Http.GetStringAsync("api/v1/tasks/slurm-handler/logs"));
        }
        finally { Directory.Delete(root, recursive: true); }
    }

    [Fact]
    public async Task A_gpu_slurm_payload_without_a_template_or_handler_is_answered_failed_no_handler_at_once()
    {
        await using var d = await TestDaemon.StartAsync(new() { ["slurm_poll_seconds"] = "0.3" });
        var started = DateTime.UtcNow;
        var (status, ack) = await PostAsync(d, "queue/submit", JsonNode.Parse("""{"id":"no-template","class":"gpu_slurm","payload":{"method":"grpo"}}""")!);
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(("failed", "no_handler"), ((string?)ack["status"], (string?)ack["reason"]));
        Assert.Contains("gpu_slurm_sbatch_template", (string?)ack["error"]);
        Assert.Null(ack["slurm_job_id"]);
        Assert.True(DateTime.UtcNow - started < TimeSpan.FromSeconds(8), "answered when it ended, not at the end of the wait");
        var view = await SlurmStatusAsync(d, "no-template");
        Assert.Equal(("failed", "no_handler"), ((string?)view["status"], (string?)view["error"]));
    }
}
