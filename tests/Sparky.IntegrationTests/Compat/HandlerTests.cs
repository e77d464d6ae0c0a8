using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Sparky.IntegrationTests.Support;
using Sparky.IntegrationTests.Zmq;
using static Sparky.IntegrationTests.Api.TaskLifecycleTests;

namespace Sparky.IntegrationTests.Compat;

/// <summary>
/// What the replaced system's clients send that is not a command, on a real daemon: the runner's form nested in
/// <c>payload</c> (its training pipeline, its gRPC server), and payloads that name work (<c>{"test": "data"}</c>, its
/// dashboard's bare string) run by a class handler, through <c>/queue/submit</c> and the drop directory; without a
/// handler they end failed (<c>no_handler</c>) there, and the native doors refuse them.
/// </summary>
public sealed class HandlerTests
{
    /// <summary>A handler as a user would write one: reads the payload on stdin and from $SPARKY_PAYLOAD_FILE, and
    /// answers with a field of it in the replaced runner's result line (and what it saw of the file).</summary>
    private const string HandlerPy = """
        import json, os, stat, sys
        stdin = sys.stdin.read()
        path = os.environ["SPARKY_PAYLOAD_FILE"]
        with open(path) as f:
            text = f.read()
        payload = json.loads(text)
        got = payload.get("test") if isinstance(payload, dict) else payload
        print("working on", os.environ["SPARKY_TASK_ID"])
        print("__DSPY_RESULT__:" + json.dumps({"got": got, "same": stdin == text, "mode": oct(stat.S_IMODE(os.stat(path).st_mode)), "file": path}))
        """;

    private static async Task<(TestDaemon Daemon, string Root)> StartWithHandlerAsync(Dictionary<string, string>? extra = null)
    {
        var root = TestDaemon.NewRoot();
        var script = Path.Combine(root, "handler.py");
        File.WriteAllText(script, HandlerPy);
        var settings = new Dictionary<string, string> { ["cpu_short_handler"] = $"python3 -u '{script}'" };
        foreach (var (k, v) in extra ?? []) settings[k] = v;
        return (await TestDaemon.StartAsync(settings, root), root);
    }

    private static async Task<JsonNode> PostAsync(TestDaemon d, string path, string json, HttpStatusCode expected = HttpStatusCode.OK)
    {
        using var resp = await d.Http.PostAsync(path, new StringContent(json, Encoding.UTF8, "application/json"));
        var text = await resp.Content.ReadAsStringAsync();
        Assert.True(expected == resp.StatusCode, $"{(int)resp.StatusCode}: {text}");
        return JsonNode.Parse(text)!;
    }

    private static void Drop(TestDaemon d, string name, string json)
    {
        var pending = Path.Combine(d.DataDir, "queue", "pending");
        var tmp = Path.Combine(pending, "." + name + ".tmp");
        File.WriteAllText(tmp, json);
        File.Move(tmp, Path.Combine(pending, name));
    }

    private static async Task<JsonNode> DoneRecordAsync(TestDaemon d, string id)
    {
        var done = Path.Combine(d.DataDir, "queue", "done", id + ".json");
        await WaitForAsync(() => File.Exists(done));
        return JsonNode.Parse(File.ReadAllText(done))!;
    }

    [Fact]
    public async Task A_handler_runs_the_payloads_the_replaced_systems_clients_send_through_both_its_doors()
    {
        var (d, root) = await StartWithHandlerAsync();
        try
        {
            await using var daemon = d;
            // Its integration test's task, through /queue/submit; its dashboard's bare string; and the same task dropped.
            var ack = await PostAsync(d, "queue/submit", """{"id":"test_submit_001","class":"cpu_short","payload":{"test":"data"}}""");
            Assert.Equal(true, (bool?)ack["ok"]);
            Assert.Equal("test_submit_001", (string?)ack["id"]);
            await PostAsync(d, "queue/submit", """{"id":"unit-task-1","class":"cpu_short","payload":"demo"}""");
            Drop(d, "test_file_001.json", """{"id":"test_file_001","class":"cpu_short","payload":{"test":"data"}}""");

            foreach (var (id, got) in new[] { ("test_submit_001", "data"), ("unit-task-1", "demo"), ("test_file_001", "data") })
            {
                var t = await d.WaitAsync(id);
                Assert.True((string?)t["state"] == "succeeded", t.ToJsonString());
                var result = t["result"]!;
                Assert.Equal(got, (string?)result["got"]);
                Assert.True((bool)result["same"]!, "stdin and $SPARKY_PAYLOAD_FILE hold the same payload");
                Assert.Equal("0o600", (string?)result["mode"]);
                // The daemon's file, gone with the attempt.
                Assert.StartsWith(Path.Combine(d.DataDir, "run"), (string)result["file"]!);
                Assert.False(File.Exists((string)result["file"]!), "the payload file is removed when the task ends");
                var done = await DoneRecordAsync(d, id);
                Assert.Equal("succeeded", (string?)done["state"]);
                Assert.Equal(got, (string?)done["result"]!["got"]);
                Assert.Equal(0, (int?)done["exit_code"]);
                Assert.Equal(id == "unit-task-1" ? "\"demo\"" : """{"test":"data"}""", done["payload"]!.ToJsonString());
                Assert.Contains($"working on {id}", await d.Http.GetStringAsync($"api/v1/tasks/{id}/logs"));
                // The task shows what its handler was given, in place of a command.
                Assert.Null(t["command"]);
                Assert.Equal(done["payload"]!.ToJsonString(), t["payload"]!.ToJsonString());
            }
            Assert.Empty(Directory.GetFiles(Path.Combine(d.DataDir, "run"), "*.payload.json"));

            // With a handler, the native API takes such a payload too.
            var native = (await d.SubmitAsync(JsonNode.Parse("""{"payload":{"test":"native"}}""")!))[0];
            Assert.Equal("native", (string?)(await d.WaitAsync(native))["result"]!["got"]);
        }
        finally { Directory.Delete(root, recursive: true); }
    }

    [Fact]
    public async Task Without_a_handler_the_replaced_systems_doors_end_it_failed_no_handler_and_the_native_doors_refuse_it()
    {
        await using var d = await TestDaemon.StartAsync();
        await PostAsync(d, "queue/submit", """{"id":"nh-submit","class":"cpu_short","payload":{"test":"data"}}""");
        Drop(d, "nh-drop.json", """{"id":"nh-drop","class":"cpu_long","payload":"demo"}""");
        foreach (var (id, cls) in new[] { ("nh-submit", "cpu_short"), ("nh-drop", "cpu_long") })
        {
            var t = await d.WaitAsync(id);
            Assert.Equal("failed", (string?)t["state"]);
            Assert.Equal("no_handler", (string?)t["reason"]);
            Assert.Null((int?)t["exit_code"]);
            Assert.Contains($"{cls}_handler", (string?)t["error"]);
            var done = await DoneRecordAsync(d, id);
            Assert.Equal("failed", (string?)done["state"]);
            Assert.Equal("no_handler", (string?)done["reason"]);
            Assert.Contains($"{cls}_handler", (string?)done["error"]);
            Assert.Contains($"{cls}_sbatch_template", (string?)done["error"]);
            Assert.Contains($"{cls}_handler", await d.Http.GetStringAsync($"api/v1/tasks/{id}/logs?stream=stderr"));
        }
        Assert.Equal(1, (int?)(await d.GetTaskAsync("nh-drop"))["attempts"]);

        // The native doors refuse it at submit, saying the same; nothing is stored.
        var problem = await PostAsync(d, "api/v1/tasks", """{"id":"nh-native","payload":{"test":"data"}}""", HttpStatusCode.BadRequest);
        Assert.Contains("cpu_short_handler", (string?)problem["detail"]);
        Assert.Contains("cpu_short_sbatch_template", (string?)problem["detail"]);
        using var zmq = new ZmqTestClient(d.Daemon.ZmqEndpoint);
        var (status, detail) = zmq.Error("submit", JsonNode.Parse("""{"id":"nh-zmq","class":"gpu_slurm","payload":{"method":"grpo"}}"""));
        Assert.Equal(400, status);
        Assert.Contains("gpu_slurm_handler", detail);
        Assert.Contains("gpu_slurm_sbatch_template", detail);
        foreach (var id in new[] { "nh-native", "nh-zmq" })
            using (var r = await d.Http.GetAsync($"api/v1/tasks/{id}")) Assert.Equal(HttpStatusCode.NotFound, r.StatusCode);
    }

    [Fact]
    public async Task The_runners_form_nested_in_payload_runs_as_the_same_task_through_both_doors()
    {
        await using var d = await TestDaemon.StartAsync();
        // As the replaced system's training pipeline built it: execution and artifacts inside payload, beside the tenant.
        string Envelope(string id) => new JsonObject
        {
            ["id"] = id,
            ["class"] = "cpu_short",
            ["payload"] = new JsonObject
            {
                ["execution"] = new JsonObject
                {
                    ["command"] = new JsonArray("/bin/sh", "-c", "echo \"$GREETING from $PWD\"; echo '__DSPY_RESULT__:{\"score\": 0.5}'"),
                    ["env"] = new JsonObject { ["GREETING"] = "hello" },
                    ["timeout_seconds"] = 60,
                    ["working_dir"] = d.WorkDir,
                },
                ["artifacts"] = new JsonObject { ["outputs"] = new JsonArray(new JsonObject { ["path"] = "result.json", ["type"] = "json" }) },
                ["tenant"] = "acme",
            },
        }.ToJsonString();
        await PostAsync(d, "queue/submit", Envelope("gepa-submit"));
        Drop(d, "gepa-drop.json", Envelope("gepa-drop"));
        foreach (var id in new[] { "gepa-submit", "gepa-drop" })
        {
            var t = await d.WaitAsync(id);
            Assert.True((string?)t["state"] == "succeeded", t.ToJsonString());
            Assert.Equal(0.5, (double)t["result"]!["score"]!);
            Assert.Equal($"hello from {d.WorkDir}\n", (await d.Http.GetStringAsync($"api/v1/tasks/{id}/logs")).Split('\n')[0] + "\n");
            Assert.Equal(60, (double?)t["timeout_seconds"]);
            var done = await DoneRecordAsync(d, id);
            Assert.Equal("acme", (string?)done["payload"]!["tenant"]);
        }
        // The native API reads it the same way.
        var native = (await d.SubmitAsync(JsonNode.Parse(Envelope("gepa-native"))!))[0];
        Assert.Equal("succeeded", (string?)(await d.WaitAsync(native))["state"]);
    }

    [Fact]
    public async Task The_shipped_example_handler_answers_the_payloads_the_replaced_systems_clients_send()
    {
        var handler = Path.Combine(SlurmCluster.RepoRoot(), "examples", "handlers", "dspy_handler.py");
        await using var d = await TestDaemon.StartAsync(new() { ["cpu_short_handler"] = $"python3 '{handler}'" });
        await PostAsync(d, "queue/submit", """{"id":"ex-test","payload":{"test":"data"}}""");
        await PostAsync(d, "queue/submit", """{"id":"ex-demo","payload":"demo"}""");
        await PostAsync(d, "queue/submit", """{"id":"ex-train","payload":{"method":"grpo","module":"orchestrator","model":"gpt2"}}""");
        Assert.Equal("data", (string?)(await d.WaitAsync("ex-test"))["result"]!["ack"]!["test"]);
        Assert.Equal("demo", (string?)(await d.WaitAsync("ex-demo"))["result"]!["ack"]);
        var train = await d.WaitAsync("ex-train");
        Assert.Equal(("gpt2", "grpo", "ex-train"), ((string?)train["result"]!["trained"], (string?)train["result"]!["method"], (string?)train["result"]!["task_id"]));
        Assert.StartsWith("would-train --method grpo --module orchestrator --model gpt2", await d.Http.GetStringAsync("api/v1/tasks/ex-train/logs"));
    }
}
