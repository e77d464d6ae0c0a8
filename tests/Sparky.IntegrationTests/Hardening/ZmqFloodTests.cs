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
[Collection(SerialCollection.Name)]
public sealed class ZmqFloodTests(ITestOutputHelper output)
{
    /// <summary>The slowest /healthz allowed during the flood: minutes before the bounds; a starved thread pool 0.2-1 s.</summary>
    private const double WorstMs = 1500;

    private static long RssKb(int pid)
    {
        foreach (var line in File.ReadLines($"/proc/{pid}/status"))
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                return long.Parse(line["VmRSS:".Length..].Trim().Split(' ')[0]);
        return 0;
    }

    /// <summary>Raises this process's (the test host's) thread-pool minimum until disposed.</summary>
    private sealed class PoolMinimum : IDisposable
    {
        private readonly int _workers, _io;

        public PoolMinimum(int workers)
        {
            ThreadPool.GetMinThreads(out _workers, out _io);
            ThreadPool.SetMinThreads(Math.Max(_workers, workers), _io);
        }

        public void Dispose() => ThreadPool.SetMinThreads(_workers, _io);
    }

    [Fact]
    public async Task Four_clients_flooding_list_without_reading_leave_the_daemon_small_and_healthz_fast()
    {
        // The probe measures the daemon, so its own process must not be what is slow. vstest (its message loop) and the
        // xunit adapter (waiting for the assembly's run) each keep a thread-pool thread blocked for the whole run; on 2
        // cores that is the pool's minimum, so now and then the probe's continuation (and everything else of this
        // process) waited for the pool's starvation check to add a thread, every 500 ms: probes of 0.2-1 s (the pool
        // stalled for up to 1.6 s) whose answer had been on the wire within a few ms. With room for the test's own work, none.
        using var pool = new PoolMinimum(8);
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
            if (peakKb > 400 * 1024 || worstMs > WorstMs) break;
            await Task.Delay(50);
        }
        stop.Cancel();
        await Task.WhenAll(flooders);
        foreach (var s in sockets) s.Dispose();
        probeMs.Sort();
        double p99 = probeMs[(int)(0.99 * (probeMs.Count - 1))];
        output.WriteLine($"RSS {before / 1024} MB before, peak {peakKb / 1024} MB; {probes} healthz probes, p99 {p99:0.0} ms, " +
            $"{probeMs.Count(ms => ms >= 100)} past 100 ms, worst {worstMs:0.0} ms");

        Assert.True(peakKb < 200 * 1024, $"the daemon grew to {peakKb / 1024} MB");
        // The target is 100 ms throughout. On a 2-core machine with other builds running, every probe made it (worst
        // 12-49 ms a run); with two CPU burners added as well, at most one probe in a run went past it (worst 192 ms,
        // p99 at most 68 ms): the daemon's threads waiting for a CPU, its collections' ~15 ms pauses stretched to 40-120
        // ms. That is the scheduler's doing, not the daemon's; before the bounds /healthz did not answer for minutes.
        // So: 99 in 100 probes within 100 ms, and none past WorstMs (one probe took 610 ms with two whole test runs
        // sharing the 2 cores, load 20-37; p99 was 72 ms: the p99 is what finds a starved daemon).
        Assert.True(p99 < 100, $"healthz p99 {p99:0.0} ms");
        Assert.True(worstMs < WorstMs, $"healthz took {worstMs:0.0} ms");
        // Still serving ZeroMQ: a client that reads gets its answer.
        using var c = new ZmqTestClient(endpoint);
        Assert.True((bool)c.Ok("ping")!["pong"]!);
        try { Directory.Delete(root, true); } catch (IOException) { }
    }
}
