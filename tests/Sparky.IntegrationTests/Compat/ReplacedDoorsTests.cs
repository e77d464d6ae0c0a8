using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using Sparky.IntegrationTests.Support;

namespace Sparky.IntegrationTests.Compat;

/// <summary>
/// The replaced orchestrator's doors as its clients use them (issue 14): a working_dir that does not exist yet, a
/// script run twice, <c>/health</c>, and its metric names. Real daemon, real processes, real SQLite file.
/// </summary>
public sealed class ReplacedDoorsTests
{
    private static async Task<(HttpStatusCode Status, JsonNode? Body)> QueueSubmitAsync(TestDaemon d, JsonNode envelope)
    {
        using var resp = await d.Http.PostAsync("queue/submit", new StringContent(envelope.ToJsonString(), Encoding.UTF8, "application/json"));
        var text = await resp.Content.ReadAsStringAsync();
        return (resp.StatusCode, text.Length == 0 ? null : JsonNode.Parse(text));
    }

    [Fact]
    public async Task A_working_dir_that_does_not_exist_yet_is_created_and_one_that_cannot_be_fails_the_attempt_saying_why()
    {
        await using var d = await TestDaemon.StartAsync();
        var dir = Path.Combine(d.Root, "runs", "gepa", "epoch-1");
        var made = await QueueSubmitAsync(d, new JsonObject
        {
            ["id"] = "makes-its-dir",
            ["execution"] = new JsonObject { ["command"] = new JsonArray("sh", "-c", "pwd > here.txt"), ["working_dir"] = dir },
        });
        Assert.Equal(HttpStatusCode.OK, made.Status);
        Assert.Equal("succeeded", (string?)(await d.WaitAsync("makes-its-dir"))["state"]);
        Assert.Equal(dir, File.ReadAllText(Path.Combine(dir, "here.txt")).Trim());

        // A regular file where a parent directory should be: it cannot be made.
        File.WriteAllText(Path.Combine(d.Root, "a-file"), "");
        var blocked = Path.Combine(d.Root, "a-file", "out");
        await QueueSubmitAsync(d, new JsonObject
        {
            ["id"] = "cannot-make-its-dir",
            ["execution"] = new JsonObject { ["command"] = new JsonArray("true"), ["working_dir"] = blocked },
        });
        var failed = await d.WaitAsync("cannot-make-its-dir");
        Assert.Equal("failed", (string?)failed["state"]);
        var stderr = await d.Http.GetStringAsync("api/v1/tasks/cannot-make-its-dir/logs?stream=stderr");
        Assert.Contains($"cannot create working directory {blocked}", stderr);
    }

    [Fact]
    public async Task The_same_envelope_under_the_same_id_again_answers_the_existing_task_and_runs_it_once()
    {
        await using var d = await TestDaemon.StartAsync();
        var marks = Path.Combine(d.WorkDir, "runs.txt");
        JsonObject Envelope(string word) => new()
        {
            ["id"] = "rerun-me",
            ["class"] = "cpu_short",
            ["payload"] = new JsonObject { ["command"] = $"echo {word} >> {marks}", ["cwd"] = d.WorkDir, ["tenant"] = "lab" },
        };

        var first = await QueueSubmitAsync(d, Envelope("ran"));
        Assert.Equal(HttpStatusCode.OK, first.Status);
        Assert.Null(first.Body!["existing"]);
        await d.WaitAsync("rerun-me");
        // The client's script runs again: the same answer, nothing queued again.
        var again = await QueueSubmitAsync(d, Envelope("ran"));
        Assert.Equal(HttpStatusCode.OK, again.Status);
        Assert.True((bool)again.Body!["ok"]!);
        Assert.Equal("rerun-me", (string?)again.Body["id"]);
        Assert.True((bool)again.Body["existing"]!);
        // Another task under the taken id: 409, naming the field that differs.
        var other = await QueueSubmitAsync(d, Envelope("other"));
        Assert.Equal(HttpStatusCode.Conflict, other.Status);
        Assert.Contains("payload.command", (string?)other.Body!["detail"]);

        // The native door: 201 the first time, 200 with the task again, 409 for another envelope.
        var native = new JsonObject { ["id"] = "native-again", ["payload"] = new JsonObject { ["command"] = $"echo native >> {marks}" } };
        using (var r = await d.Http.PostAsync("api/v1/tasks", JsonContent.Create(native))) Assert.Equal(HttpStatusCode.Created, r.StatusCode);
        using (var r = await d.Http.PostAsync("api/v1/tasks", JsonContent.Create(native)))
        {
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
            Assert.Equal("native-again", (string?)(await r.Content.ReadFromJsonAsync<JsonNode>())!["id"]);
        }
        native["name"] = "renamed";
        using (var r = await d.Http.PostAsync("api/v1/tasks", JsonContent.Create(native))) Assert.Equal(HttpStatusCode.Conflict, r.StatusCode);
        await d.WaitAsync("native-again");

        Assert.Equal(["ran", "native"], File.ReadAllLines(marks));
        var status = (await d.Http.GetFromJsonAsync<JsonNode>("queue/status"))!;
        Assert.Equal(2, (long)status["submitted"]!);
    }

    [Fact]
    public async Task Health_answers_as_healthz_and_the_metrics_carry_the_replaced_names_as_sums_over_classes()
    {
        await using var d = await TestDaemon.StartAsync(new() { ["cpu_short_slots"] = "1", ["cpu_short_min_slots"] = "1", ["cpu_short_limiter"] = "fixed" });
        using (var health = await d.Http.GetAsync("health"))
        {
            Assert.Equal(HttpStatusCode.OK, health.StatusCode);
            Assert.Equal(await d.Http.GetStringAsync("healthz"), await health.Content.ReadAsStringAsync());
        }

        var gate = Path.Combine(d.WorkDir, "go");
        var ids = new List<string>();
        for (int i = 0; i < 3; i++) ids.Add(await d.SubmitShellAsync($"while [ ! -e {gate} ]; do sleep 0.02; done"));
        var metrics = "";
        for (var deadline = DateTime.UtcNow.AddSeconds(20); DateTime.UtcNow < deadline; await Task.Delay(20))
        {
            metrics = await d.Http.GetStringAsync("metrics");
            if (metrics.Contains("\norchestrator_inflight_tasks 1\n")) break;
        }
        Assert.Contains("\norchestrator_inflight_tasks 1\n", metrics);
        Assert.Contains("\nenv_queue_depth 2\n", metrics);
        // The sum of every class's limit, whatever they are: read back from Sparky's own series.
        long limits = metrics.Split('\n').Where(l => l.StartsWith("sparky_concurrency_limit{", StringComparison.Ordinal))
            .Sum(l => long.Parse(l[(l.LastIndexOf(' ') + 1)..]));
        Assert.Contains($"\norchestrator_concurrency_limit {limits}\n", metrics);
        Assert.True(limits >= 4, metrics); // four classes, each at least 1

        File.WriteAllText(gate, "");
        foreach (var id in ids) await d.WaitAsync(id);
        metrics = await d.Http.GetStringAsync("metrics");
        Assert.Contains("\norchestrator_inflight_tasks 0\n", metrics);
        Assert.Contains("\nenv_queue_depth 0\n", metrics);
    }

    /// <summary>Its GEPA pipeline's task (dspy_agent/training/gepa_pipeline.py, branch test), as JSON: the runner form inside
    /// payload, a working_dir that does not exist yet, two declared outputs, the tenant, and a CLI that prints its
    /// result marker before its last log lines.</summary>
    [Fact]
    public async Task Its_gepa_payload_runs_in_its_new_working_dir_and_records_its_result_and_outputs()
    {
        await using var d = await TestDaemon.StartAsync();
        var wd = Path.Combine(d.Root, "dspy_tasks", "gepa", "gepa-codeagent-1a2b3c4d");
        var script = "mkdir -p outputs logs; echo '{\"score\": 0.75}' > outputs/gepa_result.json; echo '{\"step\": 1}' > logs/progress.jsonl; " +
                     "echo starting; echo '  __DSPY_RESULT__:{\"module\": \"codeagent\", \"success\": true}  '; echo 'done, bye'";
        var envelope = new JsonObject
        {
            ["id"] = "gepa-codeagent-1a2b3c4d",
            ["class"] = "cpu_long",
            ["payload"] = new JsonObject
            {
                ["execution"] = new JsonObject
                {
                    ["command"] = new JsonArray("sh", "-c", script),
                    ["env"] = new JsonObject { ["PYTHONPATH"] = d.Root },
                    ["timeout_seconds"] = 1800,
                    ["working_dir"] = wd,
                },
                ["artifacts"] = new JsonObject
                {
                    ["outputs"] = new JsonArray(
                        new JsonObject { ["path"] = Path.Combine(wd, "outputs", "gepa_result.json"), ["type"] = "json", ["name"] = "codeagent_result" },
                        new JsonObject { ["path"] = Path.Combine(wd, "logs", "progress.jsonl"), ["type"] = "jsonl", ["name"] = "codeagent_progress" }),
                },
                ["tenant"] = "gepa",
            },
        };
        var (status, ack) = await QueueSubmitAsync(d, envelope);
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("gepa-codeagent-1a2b3c4d", (string?)ack!["id"]);
        var t = await d.WaitAsync("gepa-codeagent-1a2b3c4d");
        Assert.Equal("succeeded", (string?)t["state"]);
        Assert.Equal("codeagent", (string?)t["result"]!["module"]);
        var doneFile = Path.Combine(d.DataDir, "queue", "done", "gepa-codeagent-1a2b3c4d.json");
        for (var deadline = DateTime.UtcNow.AddSeconds(20); !File.Exists(doneFile) && DateTime.UtcNow < deadline;) await Task.Delay(20);
        var raw = File.ReadAllText(doneFile);
        // Written for people and scripts too: quotes and '+' as themselves, not \u escapes (still JSON).
        Assert.DoesNotContain("\\u0022", raw);
        Assert.DoesNotContain("\\u002B", raw);
        var done = JsonNode.Parse(raw)!;
        Assert.Equal("gepa", (string?)done["payload"]!["tenant"]);
        Assert.True((bool)done["result"]!["success"]!);
        var outputs = done["artifacts"]!["outputs"]!.AsArray();
        Assert.Equal(["codeagent_result", "codeagent_progress"], outputs.Select(o => (string?)o!["name"]));
        var expected = "sha256:" + Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(Path.Combine(wd, "outputs", "gepa_result.json"))));
        Assert.Equal(expected, (string?)outputs[0]!["checksum"]);
        Assert.Equal(new FileInfo(Path.Combine(wd, "outputs", "gepa_result.json")).Length, (long)outputs[0]!["size"]!);
    }
}
