using System.Text;
using System.Text.Json.Nodes;
using Sparky.IntegrationTests.Support;
using Sparky.Server.Daemon;
using Xunit.Abstractions;
using Activity = Sparky.Server.Daemon.IdleTrim.Activity;

namespace Sparky.IntegrationTests.Daemon;

public sealed class IdleTrimTests(ITestOutputHelper output)
{
    [Fact]
    public void Collects_only_after_a_whole_idle_period_that_follows_work()
    {
        // Idle now and at the last look, work done since the last collection: collect.
        Assert.True(IdleTrim.ShouldTrim(new Activity(0, 50), new Activity(0, 50), trimmedAtWork: 10));
        // The first look has nothing to compare with.
        Assert.False(IdleTrim.ShouldTrim(new Activity(0, 50), null, trimmedAtWork: 10));
        // Tasks queued or running, now or at the last look.
        Assert.False(IdleTrim.ShouldTrim(new Activity(3, 50), new Activity(3, 50), trimmedAtWork: 10));
        Assert.False(IdleTrim.ShouldTrim(new Activity(0, 50), new Activity(2, 48), trimmedAtWork: 10));
        // Something ended or was submitted in between: not idle for a whole period yet.
        Assert.False(IdleTrim.ShouldTrim(new Activity(0, 52), new Activity(0, 50), trimmedAtWork: 10));
        // Nothing happened since the last collection: once per burst, not every period.
        Assert.False(IdleTrim.ShouldTrim(new Activity(0, 50), new Activity(0, 50), trimmedAtWork: 50));
    }

    [Fact]
    public async Task A_daemon_gives_the_memory_of_a_burst_back_once_idle()
    {
        var root = TestDaemon.NewRoot();
        await using var d = await DaemonProcess.StartAsync(Path.Combine(root, "data"), SparkyCli.FreePort(), "--cpu-short-slots", "2");
        long atStart = await SettledRssAnonKbAsync(d.Pid);

        const int N = 3000;
        for (int sent = 0; sent < N; sent += 1000)
        {
            var batch = new JsonArray();
            for (int i = 0; i < 1000; i++) batch.Add((JsonNode)new JsonObject { ["payload"] = new JsonObject { ["command"] = new JsonArray("true") } });
            using var resp = await d.Http.PostAsync("api/v1/tasks", new StringContent(batch.ToJsonString(), Encoding.UTF8, "application/json"));
            Assert.True(resp.IsSuccessStatusCode, await resp.Content.ReadAsStringAsync());
        }
        long peak = 0;
        // A deadline only (the burst's speed is not tested): 3,000 starts take a loaded machine minutes.
        var deadline = DateTime.UtcNow.AddSeconds(300);
        while ((long)(await d.GetAsync("queue/status"))["processed"]! < N)
        {
            Assert.True(DateTime.UtcNow < deadline, "the burst did not finish in 300 s");
            peak = Math.Max(peak, RssAnonKb(d.Pid));
            await Task.Delay(100);
        }
        peak = Math.Max(peak, RssAnonKb(d.Pid));

        // Two looks of the trim (the first sees the end of the burst, the second an idle period), then a wide margin for a
        // loaded machine's late timers and slow collection: it is waited for, and the wait ends as soon as it is seen.
        long now = long.MaxValue;
        deadline = DateTime.UtcNow + 6 * IdleTrim.Period + TimeSpan.FromSeconds(15);
        while (DateTime.UtcNow < deadline)
        {
            now = RssAnonKb(d.Pid);
            if (now < atStart + 30_000) break;
            await Task.Delay(250);
        }
        output.WriteLine($"RssAnon: {atStart} kB at start, {peak} kB at the burst's peak, {now} kB once idle");
        Assert.True(now < atStart + 30_000, $"anonymous memory stayed at {now} kB after the burst (start {atStart} kB, peak {peak} kB)");
    }

    /// <summary>The daemon's anonymous memory once its start has settled: at least a second after it is ready, and then
    /// until two looks half a second apart differ by under 1 MB (a loaded machine finishes starting later), up to 20 s.</summary>
    private static async Task<long> SettledRssAnonKbAsync(int pid)
    {
        await Task.Delay(1000);
        long last = RssAnonKb(pid);
        for (var until = DateTime.UtcNow.AddSeconds(20); DateTime.UtcNow < until;)
        {
            await Task.Delay(500);
            long now = RssAnonKb(pid);
            if (Math.Abs(now - last) < 1024) return now;
            last = now;
        }
        return last;
    }

    private static long RssAnonKb(int pid) =>
        long.Parse(File.ReadLines($"/proc/{pid}/status").First(l => l.StartsWith("RssAnon:", StringComparison.Ordinal))
            .Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]);
}
