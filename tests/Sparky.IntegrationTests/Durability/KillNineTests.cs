using System.Text;
using System.Text.Json.Nodes;
using Sparky.IntegrationTests.Support;
using Xunit.Abstractions;

namespace Sparky.IntegrationTests.Durability;

/// <summary>
/// kill -9 of the daemon three times while 2,000 tasks run. After the last restart every task ends in
/// exactly one terminal state, none is lost, none reports success without an exit code, and tasks that
/// were running are re-attached (classes with the exit-code shim) or retried by their policy.
/// </summary>
[Collection(SerialCollection.Name)]
public sealed class KillNineTests(ITestOutputHelper output)
{
    private const int Short = 1700, Failing = 200, Long = 100;

    [Fact]
    public async Task Three_kill_nines_while_2000_tasks_run_lose_nothing()
    {
        var root = TestDaemon.NewRoot();
        var data = Path.Combine(root, "data");
        var work = Path.Combine(root, "work");
        int port = SparkyCli.FreePort();
        string[] settings = ["--cpu-short-slots", "4", "--cpu-long-slots", "6", "--retry-base-seconds", "0.05"];
        var d = await DaemonProcess.StartAsync(data, port, settings);
        try
        {
            var submitted = new List<string>();
            var kind = new Dictionary<string, string>();
            async Task Submit(string k, int count, string cls, string command, int retries)
            {
                for (int done = 0; done < count; done += 100)
                {
                    var batch = new JsonArray();
                    for (int i = 0; i < Math.Min(100, count - done); i++)
                        batch.Add(new JsonObject { ["class"] = cls, ["payload"] = new JsonObject { ["command"] = command, ["cwd"] = work, ["retries"] = retries } });
                    using var resp = await d.Http.PostAsync("api/v1/tasks", new StringContent(batch.ToJsonString(), Encoding.UTF8, "application/json"));
                    Assert.True(resp.IsSuccessStatusCode, await resp.Content.ReadAsStringAsync());
                    foreach (var id in (JsonArray)JsonNode.Parse(await resp.Content.ReadAsStringAsync())!["ids"]!)
                    {
                        submitted.Add((string)id!);
                        kind[(string)id!] = k;
                    }
                }
            }
            // Long tasks run under the exit-code shim and should be re-attached across a kill. The first runs until the
            // last kill is over, so at least one spans the kills however fast or slow the rest go; the others take 1.5 s.
            var held = Path.Combine(work, "held-until-the-last-kill");
            await Submit("long", 1, "cpu_long", $"while [ ! -e {held} ]; do sleep 0.1; done", 0);
            await Submit("long", Long - 1, "cpu_long", "sleep 1.5", 0);
            await Submit("short", Short, "cpu_short", "sleep 0.01", 5);
            await Submit("failing", Failing, "cpu_short", "exit 3", 0);
            Assert.Equal(2000, submitted.Distinct().Count());

            var killTimes = new List<DateTimeOffset>();
            for (int kill = 1; kill <= 3; kill++)
            {
                long target = kill * 2000 / 5;
                await WaitUntil(async () => (long)(await d.GetAsync("queue/status"))["processed"]! >= target, 120);
                var status = await d.GetAsync("queue/status");
                killTimes.Add(DateTimeOffset.UtcNow);
                d.KillHard();
                output.WriteLine($"kill -9 #{kill}: processed={status["processed"]} running={status["running"]}");
                await d.DisposeAsync();
                var started = DateTime.UtcNow;
                d = await DaemonProcess.StartAsync(data, port, settings);
                output.WriteLine($"  restarted in {(DateTime.UtcNow - started).TotalMilliseconds:0} ms (process start to ready)");
            }
            File.WriteAllText(held, "");

            await WaitUntil(async () => (long)(await d.GetAsync("queue/status"))["processed"]! >= 2000, 240);
            var final = await d.GetAsync("queue/status");
            output.WriteLine($"final status: {final.ToJsonString()}");

            // Read every task back from the store, page by page.
            var tasks = new Dictionary<string, JsonNode>();
            long? cursor = null;
            while (true)
            {
                var page = await d.GetAsync($"api/v1/tasks?limit=1000{(cursor is null ? "" : $"&cursor={cursor}")}");
                foreach (var t in (JsonArray)page["tasks"]!) tasks[(string)t!["id"]!] = t!;
                if (page["next_cursor"] is not JsonNode next) break;
                cursor = (long)next;
            }

            Assert.Equal(submitted.Order(), tasks.Keys.Order()); // none lost, none invented
            Assert.Equal(2000, (long)final["submitted"]!);
            Assert.Equal(0, (long)final["pending"]! + (long)final["running"]!);
            int reattached = 0, lostRetried = 0;
            foreach (var (id, t) in tasks)
            {
                var state = (string)t["state"]!;
                Assert.Contains(state, new[] { "succeeded", "failed" });
                var attempts = (JsonArray?)t["attempt_list"] ?? [];
                if (state == "succeeded")
                {
                    Assert.Equal(0, (int?)t["exit_code"]); // never success without an exit code
                    Assert.Equal(0, (int?)attempts[^1]!["exit_code"]);
                }
                switch (kind[id])
                {
                    case "short":
                        Assert.Equal("succeeded", state); // its retries absorb attempts lost to a kill
                        lostRetried += attempts.Count(a => (string?)a!["reason"] == "lost");
                        break;
                    case "failing":
                        Assert.Equal("failed", state);
                        // Either it ran and exited 3, or it was running at a kill and, with no retries left, was lost.
                        Assert.True((int?)t["exit_code"] == 3 || (string?)t["reason"] == "lost", t.ToJsonString());
                        break;
                    case "long":
                        Assert.Equal("succeeded", state);
                        var a = attempts[^1]!;
                        var start = DateTimeOffset.Parse((string)a["started_at"]!);
                        var end = DateTimeOffset.Parse((string)a["ended_at"]!);
                        if (killTimes.Any(k => start < k && k < end)) reattached++;
                        break;
                }
            }
            output.WriteLine($"{tasks.Count} tasks checked: {reattached} long tasks re-attached across a kill, {lostRetried} short attempts lost to a kill and retried");
            Assert.True(reattached >= 1, "at least one long task ran across a kill -9 and kept its real exit code");
            // The held one ran across all three, in one attempt.
            var first = tasks[submitted[0]];
            Assert.Equal(("succeeded", 0, 1), ((string?)first["state"], (int?)first["exit_code"], ((JsonArray)first["attempt_list"]!).Count));
            var heldStart = DateTimeOffset.Parse((string)first["attempt_list"]![0]!["started_at"]!);
            Assert.True(heldStart < killTimes[0], $"the held task started at {heldStart:O}, after the first kill at {killTimes[0]:O}");

            // Nothing left running: no process of ours outlived its task.
            var leftovers = Sparky.Execution.Processes.ProcessTable.FindMarked("SPARKY_INSTANCE", Path.GetFullPath(data));
            Assert.Empty(leftovers);
        }
        finally
        {
            await d.DisposeAsync();
            try { Directory.Delete(root, true); } catch (IOException) { }
        }
    }

    private static async Task WaitUntil(Func<Task<bool>> condition, double seconds)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException("condition not met in time");
            await Task.Delay(50);
        }
    }
}
