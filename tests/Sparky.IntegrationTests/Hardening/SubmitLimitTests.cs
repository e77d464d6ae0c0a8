using System.Net;
using System.Net.Http.Headers;
using System.Text.Json.Nodes;
using Sparky.IntegrationTests.BadInput;
using Sparky.IntegrationTests.Support;
using Xunit.Abstractions;
using static Sparky.IntegrationTests.BadInput.BadInputSupport;

namespace Sparky.IntegrationTests.Hardening;

/// <summary>
/// Issue 13, point 10: what cannot run is refused at submit with the reason (400), not accepted and then failed
/// as <c>spawn_failed</c> with a made-up exit code 127; the Bearer scheme is case-insensitive; a 429 for a batch
/// says how large the batch was. Each test also checks that nothing was stored.
/// </summary>
public sealed class SubmitLimitTests(ITestOutputHelper output)
{
    private static JsonObject Task(JsonNode command, JsonObject? extra = null)
    {
        var payload = new JsonObject { ["command"] = command };
        foreach (var (k, v) in extra ?? []) payload[k] = v?.DeepClone();
        return new JsonObject { ["payload"] = payload };
    }

    private async Task<HttpAnswer> RefusedAsync(TestDaemon d, JsonNode body, string keyword)
    {
        var answer = await SendAsync(d.Http, HttpMethod.Post, "api/v1/tasks", Json(body.ToJsonString()));
        output.WriteLine(answer.ToString());
        Assert.Equal(400, answer.Status);
        Assert.Contains(keyword, answer.Detail);
        Assert.Equal(0, await SubmittedAsync(d.Http));
        return answer;
    }

    [Fact]
    public async Task A_timeout_no_timer_can_hold_is_refused_at_submit()
    {
        await using var d = await TestDaemon.StartAsync();
        await RefusedAsync(d, Task(new JsonArray("true"), new JsonObject { ["timeout_seconds"] = 1e18 }), "timeout_seconds");
        // The compatible door and its nested form take the same bound.
        var nested = new JsonObject { ["execution"] = new JsonObject { ["command"] = new JsonArray("true"), ["timeout_seconds"] = 1e18 } };
        var answer = await SendAsync(d.Http, HttpMethod.Post, "queue/submit", Json(nested.ToJsonString()));
        Assert.Equal(400, answer.Status);
        Assert.Contains("timeout_seconds", answer.Detail);
        // A year still goes in, and runs.
        var id = (await d.SubmitAsync(Task(new JsonArray("true"), new JsonObject { ["timeout_seconds"] = 365 * 86400 })))[0];
        Assert.Equal("succeeded", (string?)(await d.WaitAsync(id))["state"]);
    }

    [Fact]
    public async Task An_argument_over_the_kernels_128_KiB_is_refused_at_submit()
    {
        await using var d = await TestDaemon.StartAsync();
        var big = new string('x', 1024 * 1024);
        await RefusedAsync(d, Task(new JsonArray("echo", big)), "command[1]");
        await RefusedAsync(d, Task(JsonValue.Create("echo " + big)!), "command");
        await RefusedAsync(d, Task(new JsonArray("true"), new JsonObject { ["env"] = new JsonObject { ["BIG"] = big } }), "env.BIG");
    }

    [Fact]
    public async Task Argv_and_environment_over_ARG_MAX_are_refused_at_submit()
    {
        await using var d = await TestDaemon.StartAsync();
        // 3 MB in 30 arguments of 100 KB: each fits, the whole does not (ARG_MAX is 2 MiB here).
        var argv = new JsonArray("true");
        for (int i = 0; i < 30; i++) argv.Add(new string('x', 100_000));
        await RefusedAsync(d, Task(argv), "ARG_MAX");
        var env = new JsonObject();
        for (int i = 0; i < 30; i++) env[$"V{i}"] = new string('y', 100_000);
        await RefusedAsync(d, Task(new JsonArray("true"), new JsonObject { ["env"] = env }), "ARG_MAX");
        // Just under the bound still runs: 1 MB of arguments.
        var fits = new JsonArray("true");
        for (int i = 0; i < 10; i++) fits.Add(new string('x', 100_000));
        var id = (await d.SubmitAsync(Task(fits)))[0];
        Assert.Equal("succeeded", (string?)(await d.WaitAsync(id))["state"]);
    }

    [Fact]
    public async Task The_bearer_scheme_is_case_insensitive()
    {
        const string token = "s3cret-token";
        await using var d = await TestDaemon.StartAsync(new() { ["token"] = token });
        foreach (var (header, expected) in new[]
        {
            ($"Bearer {token}", HttpStatusCode.OK), ($"bearer {token}", HttpStatusCode.OK), ($"BEARER {token}", HttpStatusCode.OK),
            ($"bEaReR  {token}", HttpStatusCode.OK), ($"Bearer {token}x", HttpStatusCode.Unauthorized), ($"Basic {token}", HttpStatusCode.Unauthorized),
            (token, HttpStatusCode.Unauthorized), ("", HttpStatusCode.Unauthorized),
        })
        {
            using var req = new HttpRequestMessage(HttpMethod.Get, "queue/status");
            if (header.Length > 0) req.Headers.TryAddWithoutValidation("Authorization", header);
            using var resp = await d.Http.SendAsync(req);
            output.WriteLine($"'{header.Replace(token, "TOKEN")}': {(int)resp.StatusCode}");
            Assert.Equal(expected, resp.StatusCode);
        }
    }

    /// <summary>Issue 15, point 8: the queue bound was checked before the insert, outside the store's writer, so
    /// concurrent submits that each saw room all got in. It is held in the writer, in commit order.</summary>
    [Fact]
    public async Task Concurrent_submits_never_take_the_queue_past_max_queued()
    {
        await using var d = await TestDaemon.StartAsync(new() { ["max_queued"] = "40" });
        // Every task waits on a dependency that runs for a minute, so all of them stay queued.
        var blocker = await d.SubmitShellAsync("sleep 60");
        // Running before the batches come: a blocker still queued would count against the bound itself.
        var until = DateTime.UtcNow.AddSeconds(30);
        while ((string?)(await d.GetTaskAsync(blocker))["state"] != "running" && DateTime.UtcNow < until) await System.Threading.Tasks.Task.Delay(20);
        var batch = new JsonArray();
        for (int i = 0; i < 5; i++)
            batch.Add(new JsonObject { ["after"] = new JsonArray(blocker), ["payload"] = new JsonObject { ["command"] = new JsonArray("true") } });
        var body = batch.ToJsonString();
        var go = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var clients = Enumerable.Range(0, 32).Select(_ => System.Threading.Tasks.Task.Run(async () =>
        {
            using var http = new HttpClient { BaseAddress = d.Http.BaseAddress };
            await go.Task;
            using var resp = await http.PostAsync("api/v1/tasks", Json(body));
            return (int)resp.StatusCode;
        })).ToList();
        go.SetResult();
        var codes = await System.Threading.Tasks.Task.WhenAll(clients);
        int accepted = codes.Count(c => c is 200 or 201 or 202);
        var queued = (long)JsonNode.Parse(await d.Http.GetStringAsync("queue/status"))!["pending"]!;
        output.WriteLine($"accepted {accepted} of 32 batches of 5; refused {codes.Count(c => c == 429)}; queued {queued}");
        Assert.All(codes, c => Assert.True(c is 200 or 201 or 202 or 429, $"status {c}"));
        Assert.True(accepted * 5 <= 40, $"{accepted} batches of 5 accepted past max_queued = 40");
        Assert.Equal(8, accepted); // and the bound is reached: batches are refused only when it is
        Assert.Equal(40, queued);
        using (await d.Http.DeleteAsync($"api/v1/tasks/{blocker}")) { }
    }

    [Fact]
    public async Task A_429_for_a_batch_says_how_large_the_batch_is()
    {
        await using var d = await TestDaemon.StartAsync(new() { ["max_queued"] = "10" });
        var batch = new JsonArray();
        for (int i = 0; i < 25; i++) batch.Add(Task(new JsonArray("true")));
        using var resp = await d.Http.PostAsync("api/v1/tasks", Json(batch.ToJsonString()));
        var detail = (string?)JsonNode.Parse(await resp.Content.ReadAsStringAsync())?["detail"];
        output.WriteLine($"{(int)resp.StatusCode}: {detail}");
        Assert.Equal(429, (int)resp.StatusCode);
        Assert.Contains("25", detail);
        Assert.Contains("10", detail);
        Assert.Equal(0, await SubmittedAsync(d.Http));
    }
}
