using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using Sparky.IntegrationTests.Support;
using Xunit.Abstractions;
using static Sparky.IntegrationTests.BadInput.BadInputSupport;

namespace Sparky.IntegrationTests.Hardening;

/// <summary>
/// Issue 13, point 9: connections and fan-out are bounded. Past <c>max_connections</c> a new connection gets a
/// clear 503 (not a silent close), and the daemon answers again once connections close; many followers of one
/// task's log share one poller, and every one of them gets every line.
/// </summary>
[Collection(SerialCollection.Name)]
public sealed class ConnectionLimitTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Past_max_connections_a_new_connection_gets_503_and_healthz_answers_once_they_close()
    {
        await using var d = await TestDaemon.StartAsync(new() { ["max_connections"] = "20" });
        var uri = new Uri(d.Daemon.Url);
        var held = new List<TcpClient>();
        try
        {
            // 20 keep-alive connections, each with one request answered: all open and counted.
            for (int i = 0; i < 20; i++)
            {
                var c = new TcpClient();
                await c.ConnectAsync(uri.Host, uri.Port);
                held.Add(c);
                Assert.StartsWith("HTTP/1.1 200", await GetAsync(c, "/healthz"));
            }
            using (var extra = new TcpClient())
            {
                await extra.ConnectAsync(uri.Host, uri.Port);
                var answer = await GetAsync(extra, "/healthz", readAll: true);
                output.WriteLine(answer);
                Assert.StartsWith("HTTP/1.1 503", answer);
                Assert.Contains("max_connections", answer);
            }
            // The held ones still work.
            Assert.StartsWith("HTTP/1.1 200", await GetAsync(held[0], "/queue/status"));
        }
        finally
        {
            foreach (var c in held) c.Dispose();
        }
        using var http = new HttpClient { BaseAddress = new Uri(d.Daemon.Url + "/"), Timeout = TimeSpan.FromSeconds(30) };
        Assert.True(await EventuallyAsync(async () =>
        {
            try { using var r = await http.GetAsync("healthz"); return r.IsSuccessStatusCode; }
            catch (HttpRequestException) { return false; }
        }, 30), "healthz did not answer once the connections closed");
    }

    [Fact]
    public async Task Two_hundred_followers_of_one_log_share_one_reader_and_all_get_every_line()
    {
        await using var d = await TestDaemon.StartAsync(new() { ["max_connections"] = "1024" });
        // Halfway it waits until the test has read the metrics with the reader on: a task of a fixed 2 s could end before
        // a loaded machine had the followers connected and the scrape done.
        var go = Path.Combine(d.WorkDir, "go");
        var id = await d.SubmitShellAsync($"for i in $(seq 1 20); do echo line-$i; [ $i = 10 ] && until [ -e {go} ]; do sleep 0.05; done; sleep 0.1; done", cls: "cpu_long");
        using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = 1000 })
        {
            BaseAddress = new Uri(d.Daemon.Url + "/"),
            Timeout = TimeSpan.FromSeconds(60),
        };
        var followers = Enumerable.Range(0, 200).Select(_ => http.GetStringAsync($"api/v1/tasks/{id}/logs?follow=true")).ToList();
        int most = 0;
        string? scraped = null;
        var all = Task.WhenAll(followers);
        while (!all.IsCompleted)
        {
            most = Math.Max(most, d.Daemon.LogReaders);
            // An operator sees the same count in the metrics.
            if (scraped is null && most >= 1) // more than one fails below, without holding the task
            {
                scraped = await http.GetStringAsync("metrics");
                File.WriteAllText(go, "");
            }
            await Task.WhenAny(all, Task.Delay(20));
        }
        var texts = await all;
        output.WriteLine($"at most {most} log reader(s) for 200 followers");
        var expected = string.Concat(Enumerable.Range(1, 20).Select(i => $"line-{i}\n"));
        Assert.All(texts, t => Assert.Equal(expected, t));
        Assert.Equal(1, most);
        Assert.Equal(0, d.Daemon.LogReaders);
        Assert.Contains("\nsparky_log_readers 1\n", scraped);
        Assert.Contains("\nsparky_log_readers 0\n", await http.GetStringAsync("metrics"));
    }

    /// <summary>One HTTP/1.1 GET on an open connection; the status line, or with <paramref name="readAll"/> the whole
    /// answer up to the server's close.</summary>
    private static async Task<string> GetAsync(TcpClient c, string path, bool readAll = false)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var s = c.GetStream();
        await s.WriteAsync(Encoding.ASCII.GetBytes($"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n"), cts.Token);
        var got = new StringBuilder();
        var buf = new byte[8192];
        while (true)
        {
            int n = await s.ReadAsync(buf, cts.Token);
            if (n == 0) break;
            got.Append(Encoding.ASCII.GetString(buf, 0, n));
            var text = got.ToString();
            int head = text.IndexOf("\r\n\r\n", StringComparison.Ordinal);
            if (!readAll && head >= 0)
            {
                // Read the body too (Content-Length), so the connection is ready for the next request.
                var headers = text[..head].Split("\r\n");
                if (headers.Any(l => l.StartsWith("Transfer-Encoding:", StringComparison.OrdinalIgnoreCase) && l.Contains("chunked")))
                {
                    if (text.EndsWith("0\r\n\r\n", StringComparison.Ordinal)) return text;
                    continue;
                }
                var len = headers.FirstOrDefault(l => l.StartsWith("Content-Length:", StringComparison.OrdinalIgnoreCase));
                int want = len is null ? 0 : int.Parse(len.Split(':')[1].Trim());
                if (text.Length - head - 4 >= want) return text;
            }
        }
        return got.ToString();
    }
}
