using System.Net;
using System.Text.Json.Nodes;
using Sparky.IntegrationTests.Support;
using Sparky.IntegrationTests.Zmq;

namespace Sparky.IntegrationTests.Workers;

/// <summary>
/// <c>GET /api/v1/workers</c> against a real daemon: a real <c>sparky worker</c> with the task it runs, its credits and its
/// heartbeat; a hand-written worker whose host and pilot are markup, which come back as the same strings; and the token
/// the rest of the API asks for.
/// </summary>
[Collection(SerialCollection.Name)] // workers on this host: one class at a time (see SerialCollection)
public sealed class WorkersApiTests
{
    internal static async Task<JsonObject> WorkersAsync(HttpClient http)
    {
        using var answer = await http.GetAsync("api/v1/workers");
        Assert.Equal(HttpStatusCode.OK, answer.StatusCode);
        Assert.Equal("application/json", answer.Content.Headers.ContentType?.MediaType);
        return (JsonObject)JsonNode.Parse(await answer.Content.ReadAsStringAsync())!;
    }

    /// <summary>Reads the list until <paramref name="ready"/> holds for it (a worker's hello and a task's dispatch are
    /// the engine's to handle, a moment after the test caused them).</summary>
    internal static async Task<JsonObject> WaitForAsync(HttpClient http, Func<JsonObject, bool> ready, string what, double seconds = 30)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        JsonObject last;
        while (!ready(last = await WorkersAsync(http)))
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"never {what}; /api/v1/workers says {last.ToJsonString()}");
            await Task.Delay(50);
        }
        return last;
    }

    internal static JsonObject? Worker(JsonObject list, string name) =>
        list["workers"]!.AsArray().FirstOrDefault(w => (string?)w!["name"] == name)?.AsObject();

    [Fact]
    public async Task A_connected_worker_shows_its_credits_heartbeat_and_the_task_it_runs()
    {
        // A timeout no stall of a loaded machine reaches: the worker must stay connected all through.
        await using var d = await TestDaemon.StartAsync(WorkerTests.WorkerSettings(timeout: 30));
        var empty = await WorkersAsync(d.Http);
        Assert.Empty(empty["workers"]!.AsArray());
        Assert.Equal(["cpu_short"], empty["worker_classes"]!.AsArray().Select(c => (string?)c));
        Assert.Equal((0.2, 30.0), ((double)empty["heartbeat_seconds"]!, (double)empty["timeout_seconds"]!));

        var before = DateTimeOffset.UtcNow;
        await using var worker = WorkerProcess.Start(d.Daemon.ZmqEndpoint, "api-w1", slots: 2);
        var id = (await d.SubmitAsync(new JsonObject
        {
            ["name"] = "hold until go",
            ["payload"] = new JsonObject { ["command"] = "while [ ! -e go ]; do sleep 0.05; done", ["cwd"] = d.WorkDir, ["timeout_seconds"] = 60 },
        }))[0];
        var asked = DateTimeOffset.UtcNow;
        var running = await WaitForAsync(d.Http, l => Worker(l, "api-w1")?["tasks"]!.AsArray().Count == 1, "the worker ran the task");
        var answered = DateTimeOffset.UtcNow;

        var w = Worker(running, "api-w1")!;
        Assert.Equal(Environment.MachineName, (string?)w["host"]);
        Assert.Equal(["cpu_short"], w["classes"]!.AsArray().Select(c => (string?)c));
        Assert.Equal((2, 0, 1, 1), ((int)w["slots"]!, (int)w["prefetch"]!, (int)w["credits_in_use"]!, (int)w["credits_free"]!));
        Assert.True((long)w["connection"]! >= 1);
        Assert.False((bool)w["draining"]!);
        Assert.Null(w["pilot"]);
        var connectedAt = DateTimeOffset.Parse((string)w["connected_at"]!);
        Assert.InRange(connectedAt, before.AddSeconds(-1), DateTimeOffset.UtcNow.AddSeconds(1));
        // How long ago it was last heard from, as of the answer's "now" (taken while the test waited for the answer): no
        // bound on the time itself, which a stall of a loaded machine stretches; the heartbeats are seen to come below.
        var now = DateTimeOffset.Parse((string)running["now"]!);
        Assert.InRange(now, asked.AddSeconds(-1), answered.AddSeconds(1));
        var lastSeen = DateTimeOffset.Parse((string)w["last_seen_at"]!);
        Assert.True(lastSeen >= connectedAt && lastSeen <= now, $"last seen at {lastSeen:O}, connected at {connectedAt:O}, now {now:O}");
        Assert.Equal(Math.Round((now - lastSeen).TotalSeconds, 3), (double)w["last_seen_seconds_ago"]!, 0.0015);
        var t = w["tasks"]![0]!;
        Assert.Equal((id, 1, "cpu_short", "hold until go", 0), ((string?)t["id"], (int)t["attempt"]!, (string?)t["class"], (string?)t["name"], (int)t["gpus"]!));
        // Given to it once it said hello (in the same pass of the engine's loop at the earliest; started_at is in whole ms).
        Assert.True(DateTimeOffset.Parse((string)t["started_at"]!) >= connectedAt.AddMilliseconds(-1));
        Assert.Empty(running["pilots"]!.AsArray());
        Assert.Empty(running["slurm_jobs"]!.AsArray());
        Assert.Equal(0, (int)running["awaiting_worker"]!);

        // Its end gives the credit back; the heartbeat keeps the worker fresh while it idles.
        await File.WriteAllTextAsync(Path.Combine(d.WorkDir, "go"), "");
        Assert.Equal("succeeded", (string?)(await d.WaitAsync(id, 30))["state"]);
        var idle = await WaitForAsync(d.Http, l => Worker(l, "api-w1")?["credits_free"]?.GetValue<int>() == 2, "the credit came back");
        Assert.Empty(Worker(idle, "api-w1")!["tasks"]!.AsArray());
        Assert.Equal(0, (int)Worker(idle, "api-w1")!["credits_in_use"]!);
        // A heartbeat comes while it idles: every 0.2 s, waited for inside the 30 s timeout (past it the worker is lost).
        var idleSeen = DateTimeOffset.Parse((string)Worker(idle, "api-w1")!["last_seen_at"]!);
        await WaitForAsync(d.Http, l => Worker(l, "api-w1") is { } later && DateTimeOffset.Parse((string)later["last_seen_at"]!) > idleSeen,
            "a heartbeat while idle", seconds: 20);

        // A task queued with no credit free is counted as waiting for one.
        var busy = new List<string>();
        for (int i = 0; i < 3; i++) busy.Add(await d.SubmitShellAsync("while [ ! -e go2 ]; do sleep 0.05; done", timeout: 60));
        var full = await WaitForAsync(d.Http, l => Worker(l, "api-w1")?["tasks"]!.AsArray().Count == 2, "the worker took two tasks");
        Assert.Equal(0, (int)Worker(full, "api-w1")!["credits_free"]!);
        await File.WriteAllTextAsync(Path.Combine(d.WorkDir, "go2"), "");
        foreach (var b in busy) Assert.Equal("succeeded", (string?)(await d.WaitAsync(b, 30))["state"]);
    }

    [Fact]
    public async Task What_a_worker_says_of_itself_comes_back_as_the_same_strings_and_a_hostile_name_is_refused()
    {
        const string Host = "<img src=x onerror=alert(1)>\"'&amp;</script>";
        const string Pilot = "p-earlier.7";
        var settings = WorkerTests.WorkerSettings(timeout: 30); // this hand-written worker never heartbeats
        await using var d = await TestDaemon.StartAsync(settings);
        using var c = new ZmqTestClient(d.Daemon.ZmqEndpoint);
        var (status, detail) = c.Error("hello", new JsonObject { ["name"] = "<img src=x onerror=alert(1)>", ["slots"] = 1 });
        Assert.Equal(400, status);
        Assert.Contains("name must match", detail);
        (status, detail) = c.Error("hello", new JsonObject { ["name"] = "hand.2", ["pilot"] = "</script><script>alert(2)</script>", ["slots"] = 1 });
        Assert.Equal(400, status);
        Assert.Contains("pilot must match", detail);
        c.Ok("hello", new JsonObject { ["name"] = "hand.1-x_", ["host"] = Host, ["pilot"] = Pilot, ["slots"] = 3, ["gpus"] = 0, ["classes"] = new JsonArray("cpu_short", "<b>bold</b>") });

        var list = await WaitForAsync(d.Http, l => Worker(l, "hand.1-x_") is not null, "the worker joined");
        Assert.Single(list["workers"]!.AsArray());
        var w = Worker(list, "hand.1-x_")!;
        Assert.Equal(Host, (string?)w["host"]);
        Assert.Equal(Pilot, (string?)w["pilot"]);
        // It names a class the daemon does not send to workers: it serves the worker classes it named, nothing more.
        Assert.Equal(["cpu_short"], w["classes"]!.AsArray().Select(x => (string?)x));
        // A pilot this daemon did not submit (an earlier daemon's, as far as it knows) is followed by its worker.
        var p = Assert.Single(list["pilots"]!.AsArray())!;
        Assert.Equal((Pilot, true, true), ((string?)p["id"], (bool)p["inherited"]!, (bool)p["connected"]!));
        Assert.Null(p["submitted_at"]);
        Assert.Equal(["hand.1-x_"], p["workers"]!.AsArray().Select(x => (string?)x));
    }

    [Fact]
    public async Task With_a_token_the_list_needs_it_as_the_rest_of_the_api_does()
    {
        const string Token = "workers-token-7";
        var settings = WorkerTests.WorkerSettings();
        settings["token"] = Token;
        await using var d = await TestDaemon.StartAsync(settings);
        using (var refused = await d.Http.GetAsync("api/v1/workers"))
            Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
        using var asked = new HttpRequestMessage(HttpMethod.Get, "api/v1/workers");
        asked.Headers.Authorization = new("Bearer", Token);
        using var answer = await d.Http.SendAsync(asked);
        Assert.Equal(HttpStatusCode.OK, answer.StatusCode);
        Assert.Empty(JsonNode.Parse(await answer.Content.ReadAsStringAsync())!["workers"]!.AsArray());
    }
}
