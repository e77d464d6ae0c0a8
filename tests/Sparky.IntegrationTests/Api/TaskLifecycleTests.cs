using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using Sparky.IntegrationTests.Support;

namespace Sparky.IntegrationTests.Api;

/// <summary>The task life cycle against a real daemon, real SQLite and real processes.</summary>
public sealed class TaskLifecycleTests
{
    [Fact]
    public async Task A_task_runs_in_its_cwd_with_its_env_and_keeps_its_exit_code()
    {
        await using var d = await TestDaemon.StartAsync();
        var ids = await d.SubmitAsync(new JsonObject
        {
            ["payload"] = new JsonObject
            {
                ["command"] = new JsonArray("/bin/sh", "-c", "pwd; echo \"$GREETING\"; echo \"gpu=[$CUDA_VISIBLE_DEVICES] id=$SPARKY_TASK_ID\"; exit 7"),
                ["cwd"] = d.WorkDir,
                ["env"] = new JsonObject { ["GREETING"] = "hello there" },
            },
        });
        var t = await d.WaitAsync(ids[0]);
        Assert.Equal("failed", (string?)t["state"]);
        Assert.Equal("exit_code", (string?)t["reason"]);
        Assert.Equal(7, (int?)t["exit_code"]);
        var log = await d.Http.GetStringAsync($"api/v1/tasks/{ids[0]}/logs");
        Assert.Equal($"{d.WorkDir}\nhello there\ngpu=[] id={ids[0]}\n", log);
    }

    [Fact]
    public async Task A_failing_task_is_retried_with_backoff_and_every_attempt_is_kept()
    {
        await using var d = await TestDaemon.StartAsync();
        var id = await d.SubmitShellAsync("if [ -e seen ]; then echo ok; else touch seen; exit 3; fi", retries: 2);
        var t = await d.WaitAsync(id);
        Assert.Equal("succeeded", (string?)t["state"]);
        Assert.Equal(0, (int?)t["exit_code"]);
        var attempts = (JsonArray)t["attempt_list"]!;
        Assert.Equal(2, attempts.Count);
        Assert.Equal(3, (int?)attempts[0]!["exit_code"]);
        Assert.Equal("failed", (string?)attempts[0]!["outcome"]);
        Assert.Equal(0, (int?)attempts[1]!["exit_code"]);
        Assert.True(DateTimeOffset.Parse((string)attempts[1]!["started_at"]!) >= DateTimeOffset.Parse((string)attempts[0]!["ended_at"]!).AddMilliseconds(20),
            "the retry waited for its backoff");
    }

    [Fact]
    public async Task A_timeout_kills_the_whole_process_group()
    {
        await using var d = await TestDaemon.StartAsync();
        var id = await d.SubmitShellAsync("sleep 60 & echo $! > child.pid; wait", timeout: 0.5);
        var t = await d.WaitAsync(id);
        Assert.Equal("failed", (string?)t["state"]);
        Assert.Equal("timeout", (string?)t["reason"]);
        Assert.Equal(15, (int?)t["signal"]);
        await AssertGoneAsync(int.Parse(File.ReadAllText(Path.Combine(d.WorkDir, "child.pid")).Trim()));
    }

    [Fact]
    public async Task A_task_that_exits_0_on_SIGTERM_after_its_timeout_is_still_a_timeout()
    {
        await using var d = await TestDaemon.StartAsync();
        var id = await d.SubmitShellAsync("trap 'exit 0' TERM; sleep 60 & wait", timeout: 0.3);
        var t = await d.WaitAsync(id);
        Assert.Equal("failed", (string?)t["state"]);
        Assert.Equal("timeout", (string?)t["reason"]);
    }

    [Fact]
    public async Task A_second_daemon_on_the_same_data_directory_is_refused()
    {
        await using var d = await TestDaemon.StartAsync();
        var e = await Assert.ThrowsAsync<InvalidOperationException>(() => TestDaemon.StartAsync(root: d.Root));
        Assert.Contains("another daemon", e.Message);
        Assert.Contains(Environment.ProcessId.ToString(), e.Message);
        // The first one is untouched.
        Assert.Equal("succeeded", (string?)(await d.WaitAsync(await d.SubmitShellAsync("true")))["state"]);
    }

    [Fact]
    public async Task Following_the_logs_of_a_task_that_never_ran_ends_at_once()
    {
        await using var d = await TestDaemon.StartAsync();
        var bad = await d.SubmitShellAsync("exit 1");
        var never = await d.SubmitShellAsync("echo never", after: [bad]);
        Assert.Equal("dependency_failed", (string?)(await d.WaitAsync(never))["reason"]);
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        Assert.Equal("", await d.Http.GetStringAsync($"api/v1/tasks/{never}/logs?follow=true", cts.Token));
    }

    [Fact]
    public async Task Cancel_kills_a_running_task_and_its_children_and_removes_a_queued_one()
    {
        await using var d = await TestDaemon.StartAsync();
        var running = await d.SubmitShellAsync("sleep 60 & echo $! > child.pid; wait", cls: "cpu_long");
        var queued = await d.SubmitShellAsync("echo should-not-run", cls: "cpu_long");
        await WaitForAsync(() => File.Exists(Path.Combine(d.WorkDir, "child.pid")) && new FileInfo(Path.Combine(d.WorkDir, "child.pid")).Length > 0);
        using (var resp = await d.Http.DeleteAsync($"api/v1/tasks/{queued}")) Assert.Equal(HttpStatusCode.Accepted, resp.StatusCode);
        using (var resp = await d.Http.DeleteAsync($"api/v1/tasks/{running}")) Assert.Equal(HttpStatusCode.Accepted, resp.StatusCode);
        var r = await d.WaitAsync(running);
        var q = await d.WaitAsync(queued);
        Assert.Equal("cancelled", (string?)r["state"]);
        Assert.Equal("cancelled", (string?)q["state"]);
        Assert.Equal(0, (int?)q["attempts"]);
        await AssertGoneAsync(int.Parse(File.ReadAllText(Path.Combine(d.WorkDir, "child.pid")).Trim()));
        using var again = await d.Http.DeleteAsync($"api/v1/tasks/{running}");
        Assert.Equal(HttpStatusCode.Conflict, again.StatusCode);
    }

    [Fact]
    public async Task A_dependant_runs_after_its_dependency_and_fails_with_dependency_failed_when_it_fails()
    {
        await using var d = await TestDaemon.StartAsync();
        var first = await d.SubmitShellAsync("sleep 0.2; echo one > order.txt");
        var second = await d.SubmitShellAsync("echo two >> order.txt", after: [first]);
        var bad = await d.SubmitShellAsync("exit 1");
        var blocked = await d.SubmitShellAsync("touch must-not-exist", after: [bad]);
        var blocked2 = await d.SubmitShellAsync("touch must-not-exist", after: [blocked]);
        Assert.Equal("succeeded", (string?)(await d.WaitAsync(second))["state"]);
        Assert.Equal("one\ntwo\n", File.ReadAllText(Path.Combine(d.WorkDir, "order.txt")));
        foreach (var id in new[] { blocked, blocked2 })
        {
            var t = await d.WaitAsync(id);
            Assert.Equal("failed", (string?)t["state"]);
            Assert.Equal("dependency_failed", (string?)t["reason"]);
            Assert.Equal(0, (int?)t["attempts"]);
        }
        Assert.False(File.Exists(Path.Combine(d.WorkDir, "must-not-exist")));
    }

    [Fact]
    public async Task An_array_sets_SPARKY_ARRAY_INDEX_for_each_element()
    {
        await using var d = await TestDaemon.StartAsync();
        var ids = await d.SubmitAsync(new JsonObject
        {
            ["array"] = "0-4",
            ["payload"] = new JsonObject { ["command"] = "echo $SPARKY_ARRAY_INDEX > idx-$SPARKY_ARRAY_INDEX", ["cwd"] = d.WorkDir },
        });
        Assert.Equal(5, ids.Count);
        foreach (var id in ids) Assert.Equal("succeeded", (string?)(await d.WaitAsync(id))["state"]);
        for (int i = 0; i < 5; i++) Assert.Equal($"{i}\n", File.ReadAllText(Path.Combine(d.WorkDir, $"idx-{i}")));
    }

    [Fact]
    public async Task Logs_follow_streams_output_while_the_task_runs_and_ends_with_it()
    {
        await using var d = await TestDaemon.StartAsync();
        var id = await d.SubmitShellAsync("for i in 1 2 3 4 5; do echo line $i; sleep 0.1; done; echo oops >&2");
        var text = await d.Http.GetStringAsync($"api/v1/tasks/{id}/logs?follow=true");
        Assert.Equal("line 1\nline 2\nline 3\nline 4\nline 5\n", text);
        Assert.Equal("oops\n", await d.Http.GetStringAsync($"api/v1/tasks/{id}/logs?stream=stderr"));
    }

    [Fact]
    public async Task Events_arrive_over_SSE_for_every_state_change()
    {
        await using var d = await TestDaemon.StartAsync();
        using var stream = await d.Http.GetStreamAsync("api/v1/events");
        using var reader = new StreamReader(stream);
        Assert.StartsWith(":", await reader.ReadLineAsync());
        var id = await d.SubmitShellAsync("true");
        var seen = new List<string>();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        while (!seen.Contains("task.finished"))
        {
            var line = await reader.ReadLineAsync(cts.Token);
            if (line is null || !line.StartsWith("data: ")) continue;
            var e = JsonNode.Parse(line[6..])!;
            if ((string?)e["body"]!["id"] == id) seen.Add((string)e["type"]!);
        }
        Assert.Equal(["task.queued", "task.started", "task.finished"], seen);
    }

    [Fact]
    public async Task Results_and_done_files_follow_the_replaced_systems_conventions()
    {
        await using var d = await TestDaemon.StartAsync();
        // The replaced system's door: its producers read results from done files.
        using var resp = await d.Http.PostAsync("queue/submit", new StringContent("""
            {"id":"with-result","workflow_id":"wf-1","payload":{"command":"echo working; echo '__DSPY_RESULT__:{\"score\": 0.93}'"}}
            """, Encoding.UTF8, "application/json"));
        var ack = JsonNode.Parse(await resp.Content.ReadAsStringAsync())!;
        Assert.Equal(true, (bool?)ack["ok"]);
        Assert.Equal("with-result", (string?)ack["id"]);
        var t = await d.WaitAsync("with-result");
        Assert.Equal(0.93, (double)t["result"]!["score"]!);
        var done = Path.Combine(d.DataDir, "queue", "done", "with-result.json");
        await WaitForAsync(() => File.Exists(done));
        var doc = JsonNode.Parse(File.ReadAllText(done))!;
        Assert.Equal("succeeded", (string?)doc["state"]);
        Assert.Equal(0, (int?)doc["exit_code"]);
        Assert.Equal("wf-1", (string?)doc["workflow_id"]);
        Assert.Equal(0.93, (double)doc["result"]!["score"]!);
        Assert.NotNull(doc["payload"]);
        Assert.NotNull(doc["completed_at"]);
        Assert.True((long)doc["duration_ms"]! >= 0);

        // A native submission keeps its result in the store only.
        var native = await d.SubmitShellAsync("echo '__DSPY_RESULT__:{\"n\": 1}'");
        Assert.Equal(1, (int)(await d.WaitAsync(native))["result"]!["n"]!);
        // Done files are written one after another in the order the ends are stored: once a later task's is there,
        // the native task's would have been written before it.
        using (var later = await d.Http.PostAsync("queue/submit", new StringContent("""{"id":"after-native","payload":{"command":"true"}}""", Encoding.UTF8, "application/json")))
            Assert.True(later.IsSuccessStatusCode, await later.Content.ReadAsStringAsync());
        await WaitForAsync(() => File.Exists(Path.Combine(d.DataDir, "queue", "done", "after-native.json")));
        Assert.False(File.Exists(Path.Combine(d.DataDir, "queue", "done", native + ".json")));
    }

    [Fact]
    public async Task Retry_replays_a_finished_task_with_the_same_id_and_spec()
    {
        await using var d = await TestDaemon.StartAsync();
        var id = await d.SubmitShellAsync("echo run >> runs.txt; exit 1");
        Assert.Equal("failed", (string?)(await d.WaitAsync(id))["state"]);
        using (var resp = await d.Http.PostAsync($"api/v1/tasks/{id}/retry", null)) Assert.Equal(HttpStatusCode.OK, resp.StatusCode);
        await WaitForAsync(async () => (int?)(await d.GetTaskAsync(id))["attempts"] == 2 && (string?)(await d.GetTaskAsync(id))["state"] == "failed");
        Assert.Equal("run\nrun\n", File.ReadAllText(Path.Combine(d.WorkDir, "runs.txt")));
    }

    [Fact]
    public async Task Over_the_queue_bound_submissions_get_429_with_Retry_After()
    {
        await using var d = await TestDaemon.StartAsync(new() { ["max_queued"] = "3" });
        using var resp = await d.Http.PostAsync("api/v1/tasks", new StringContent("""{"array":"0-3","payload":{"command":"true"}}""", Encoding.UTF8, "application/json"));
        Assert.Equal((HttpStatusCode)429, resp.StatusCode);
        Assert.Equal("application/problem+json", resp.Content.Headers.ContentType?.MediaType);
        Assert.True(resp.Headers.RetryAfter is not null);
        var status = await d.Http.GetFromJsonAsync<JsonNode>("queue/status");
        Assert.Equal(0, (int)status!["submitted"]!);
    }

    [Fact]
    public async Task A_token_is_required_off_loopback_and_enforced_when_set()
    {
        var config = TestDaemon.Config(TestDaemon.NewRoot(), new() { ["http"] = "0.0.0.0:0" });
        Assert.Contains("without a token", Sparky.Server.Daemon.SparkyDaemon.CheckBinding(config));
        await Assert.ThrowsAsync<InvalidOperationException>(() => Sparky.Server.Daemon.SparkyDaemon.StartAsync(config));

        await using var d = await TestDaemon.StartAsync(new() { ["token"] = "s3cret" });
        using (var resp = await d.Http.GetAsync("queue/status")) Assert.Equal(HttpStatusCode.Unauthorized, resp.StatusCode);
        d.Http.DefaultRequestHeaders.Authorization = new("Bearer", "wrong");
        using (var resp = await d.Http.GetAsync("queue/status")) Assert.Equal(HttpStatusCode.Unauthorized, resp.StatusCode);
        d.Http.DefaultRequestHeaders.Authorization = new("Bearer", "s3cret");
        using (var resp = await d.Http.GetAsync("queue/status")) Assert.Equal(HttpStatusCode.OK, resp.StatusCode);
    }

    [Fact]
    public async Task Metrics_count_completions_by_class_and_outcome_and_counters_survive_a_restart()
    {
        var root = TestDaemon.NewRoot();
        await using (var d = await TestDaemon.StartAsync(root: root))
        {
            await d.WaitAsync(await d.SubmitShellAsync("true"));
            await d.WaitAsync(await d.SubmitShellAsync("exit 2"));
            var metrics = await d.Http.GetStringAsync("metrics");
            Assert.Contains("sparky_tasks_completed_total{class=\"cpu_short\",outcome=\"succeeded\"} 1", metrics);
            Assert.Contains("sparky_tasks_completed_total{class=\"cpu_short\",outcome=\"failed\"} 1", metrics);
            Assert.Contains("sparky_task_duration_seconds_count{class=\"cpu_short\"}", metrics);
            Assert.Contains("sparky_concurrency_limit{class=\"cpu_long\"} 1", metrics);
            Assert.DoesNotContain("id=", metrics.Split('\n').Where(l => l.StartsWith("sparky_")).Aggregate("", (a, b) => a + b));
        }
        await using (var again = await TestDaemon.StartAsync(root: root))
        {
            var status = await again.Http.GetFromJsonAsync<JsonNode>("queue/status");
            Assert.Equal(2, (int)status!["processed"]!);
            Assert.Equal(1, (int)status["done"]!);
            Assert.Equal(1, (int)status["failed"]!);
            Assert.Contains("sparky_tasks_completed_total{class=\"cpu_short\",outcome=\"succeeded\"} 1", await again.Http.GetStringAsync("metrics"));
        }
    }

    internal static async Task AssertGoneAsync(int pid)
    {
        await WaitForAsync(() => !File.Exists($"/proc/{pid}/stat") || File.ReadAllText($"/proc/{pid}/stat").Contains(") Z "));
    }

    internal static Task WaitForAsync(Func<bool> condition, double seconds = 20) => WaitForAsync(() => Task.FromResult(condition()), seconds);

    internal static async Task WaitForAsync(Func<Task<bool>> condition, double seconds = 20)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException("condition not met in time");
            await Task.Delay(25);
        }
    }
}
