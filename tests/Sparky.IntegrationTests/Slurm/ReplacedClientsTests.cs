using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using Sparky.IntegrationTests.Support;

namespace Sparky.IntegrationTests.Slurm;

/// <summary>
/// The replaced system's own integration test (<c>tests/test_slurm_integration.py</c> in RPasquale/dspy-code, both
/// branches) and its smoke script (<c>scripts/test_system.sh</c>, written by <c>setup_complete_system.sh</c>), replayed
/// step by step against a real daemon and a real single-node Slurm: the same requests, read back the way they read
/// them. Written here from what those clients send and check; docs/compatibility.md lists them.
/// </summary>
[Collection(SlurmCollection.Name)]
[Trait("Needs", "slurm")] // test.sh runs these in a test process of their own, beside the rest
public sealed class ReplacedClientsTests(SlurmCluster cluster)
{
    /// <summary>A small stand-in for its deploy/slurm template: the same payload fields, each with its default.</summary>
    private const string Template = """
        #!/bin/bash
        #SBATCH --cpus-per-task=1
        # Task: {{task_id}} Method: {{payload.method|grpo}}
        echo "training {{payload.method|grpo}} {{payload.module|orchestrator}} {{payload.model|gpt2}} {{payload.dataset|none}}"
        """;

    private static async Task<(HttpStatusCode Status, string Raw)> PostRawAsync(HttpClient http, string path, string body)
    {
        using var resp = await http.PostAsync(path, new StringContent(body, Encoding.UTF8, "application/json"));
        return (resp.StatusCode, await resp.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Its_integration_test_and_smoke_script_pass_against_sparky()
    {
        _ = cluster;
        var root = TestDaemon.NewRoot();
        // Its fixture: ENV_QUEUE_DIR names a queue folder of its own, with pending/ and done/ in it.
        var queue = Path.Combine(root, "test_slurm_integration");
        var template = Path.Combine(root, "train_agent_methodologies.sbatch");
        File.WriteAllText(template, Template);
        await using var d = await TestDaemon.StartAsync(new()
        {
            ["queue_dir"] = queue, ["gpu_slurm_sbatch_template"] = template,
            ["slurm_poll_seconds"] = "0.3", ["slurm_command_timeout_seconds"] = "20",
        }, root);

        // test_slurm_job_submission: 200, ok, a job id of digits, "submitted".
        var (status, raw) = await PostRawAsync(d.Http, "queue/submit",
            """{"id": "test_slurm_001", "class": "gpu_slurm", "payload": {"method": "grpo", "module": "orchestrator", "model": "gpt2", "dataset": "test_dataset.jsonl"}}""");
        Assert.True(status == HttpStatusCode.OK, raw);
        var result = JsonNode.Parse(raw)!;
        Assert.True((bool)result["ok"]!);
        Assert.Equal("submitted", (string?)result["status"]);
        Assert.Matches("^[0-9]+$", (string)result["slurm_job_id"]!);

        // test_slurm_job_status_check: the status by task id names the same job.
        (status, raw) = await PostRawAsync(d.Http, "queue/submit", """{"id": "test_status_001", "class": "gpu_slurm", "payload": {"method": "grpo"}}""");
        Assert.Equal(HttpStatusCode.OK, status);
        var jobId = (string)JsonNode.Parse(raw)!["slurm_job_id"]!;
        var view = (await d.Http.GetFromJsonAsync<JsonNode>("slurm/status/test_status_001"))!;
        Assert.Equal(jobId, (string?)view["id"]);
        Assert.NotNull((string?)view["status"]);

        // test_queue_status_endpoint and test_metrics_endpoint.
        var queueStatus = (await d.Http.GetFromJsonAsync<JsonObject>("queue/status"))!;
        foreach (var key in new[] { "pending", "done", "submitted", "processed", "completed" }) Assert.True(queueStatus.ContainsKey(key), key);
        var metrics = await d.Http.GetStringAsync("metrics");
        foreach (var name in new[] { "env_queue_depth", "orchestrator_concurrency_limit", "orchestrator_inflight_tasks" }) Assert.Contains(name, metrics);

        // test_error_handling: bad JSON is 400; a gpu_slurm envelope with nothing but its class is 200 (a fresh id).
        (status, _) = await PostRawAsync(d.Http, "queue/submit", "invalid json");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        (status, raw) = await PostRawAsync(d.Http, "queue/submit", """{"class": "gpu_slurm"}""");
        Assert.True(status == HttpStatusCode.OK, raw);
        Assert.False(string.IsNullOrEmpty((string?)JsonNode.Parse(raw)!["id"]));

        // test_concurrent_job_submission: 10 at once, each 200 with its job.
        var concurrent = await Task.WhenAll(Enumerable.Range(0, 10).Select(i => PostRawAsync(d.Http, "queue/submit",
            $$$"""{"id": "concurrent_test_{{{i}}}", "class": "gpu_slurm", "payload": {"method": "grpo", "test_id": {{{i}}}}}""")));
        Assert.All(concurrent, c => Assert.True(c.Status == HttpStatusCode.OK, c.Raw));
        Assert.All(concurrent, c => Assert.Matches("^[0-9]+$", (string)JsonNode.Parse(c.Raw)!["slurm_job_id"]!));

        // test_file_queue_processing: written in place by Python's json.dump; within its 1 s sleep (a bound of 10 here,
        // for a loaded CI machine) it has left pending/ and done/test_file_001.json is there.
        var pendingFile = Path.Combine(queue, "pending", "test_file_001.json");
        var sw = Stopwatch.StartNew();
        await RunPythonAsync($$$"""
            import json
            with open({{{PyString(pendingFile)}}}, "w") as f:
                json.dump({"id": "test_file_001", "class": "cpu_short", "payload": {"test": "data"}}, f)
            """);
        var doneFile = Path.Combine(queue, "done", "test_file_001.json");
        while ((File.Exists(pendingFile) || !File.Exists(doneFile)) && sw.Elapsed < TimeSpan.FromSeconds(10)) await Task.Delay(20);
        Assert.False(File.Exists(pendingFile), "the file is still in pending/");
        Assert.True(File.Exists(doneFile), "no done/test_file_001.json");
        var done = JsonNode.Parse(File.ReadAllText(doneFile))!;
        // No cpu_short_handler is set: it ended as the issue says, with the reason and both settings named.
        Assert.Equal(("test_file_001", "failed", "no_handler"), ((string?)done["id"], (string?)done["state"], (string?)done["reason"]));
        Assert.Contains("cpu_short_handler", done.ToJsonString());

        // scripts/test_system.sh: curl the two bodies and grep the raw answer for "ok":true (compact JSON).
        (_, raw) = await PostRawAsync(d.Http, "queue/submit", """{"id":"test_001","class":"cpu_short","payload":{"test":"data"}}""");
        Assert.Contains("\"ok\":true", raw);
        (_, raw) = await PostRawAsync(d.Http, "queue/submit", """{"id":"slurm_001","class":"gpu_slurm","payload":{"method":"grpo"}}""");
        Assert.Contains("\"ok\":true", raw);
        // Run again, as a script is: the same answers, nothing submitted twice.
        (status, raw) = await PostRawAsync(d.Http, "queue/submit", """{"id":"slurm_001","class":"gpu_slurm","payload":{"method":"grpo"}}""");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Contains("\"ok\":true", raw);
        Assert.Equal(16, (long)(await d.Http.GetFromJsonAsync<JsonNode>("queue/status"))!["submitted"]!);
    }

    private static string PyString(string s) => "'" + s.Replace("\\", "\\\\").Replace("'", "\\'") + "'";

    private static async Task RunPythonAsync(string script)
    {
        var psi = new ProcessStartInfo("python3") { RedirectStandardInput = true, RedirectStandardError = true };
        using var p = Process.Start(psi)!;
        await p.StandardInput.WriteAsync(script.Replace("\r", ""));
        p.StandardInput.Close();
        var err = await p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync();
        Assert.True(p.ExitCode == 0, err);
    }
}
