using System.Diagnostics;
using Sparky.IntegrationTests.Support;

namespace Sparky.IntegrationTests.Daemon;

/// <summary>
/// <c>sparky serve</c> started in a busy directory ($HOME, a project, /tmp) leaves that directory alone: it watches
/// only its drop directory, and reads no appsettings.json found there.
/// </summary>
public sealed class WorkingDirectoryTests
{
    [Fact]
    public async Task A_daemon_started_in_a_deep_tree_watches_only_its_drop_directory_and_ignores_appsettings_there()
    {
        var root = TestDaemon.NewRoot();
        var cwd = Path.Combine(root, "project");
        for (int i = 0; i < 40; i++) Directory.CreateDirectory(Path.Combine(cwd, $"runs/{i}/checkpoints"));
        // ASP.NET Core's own configuration would take this and listen on another port.
        int port = SparkyCli.FreePort(), other = SparkyCli.FreePort();
        File.WriteAllText(Path.Combine(cwd, "appsettings.json"), new System.Text.Json.Nodes.JsonObject
        {
            ["Kestrel"] = new System.Text.Json.Nodes.JsonObject { ["Endpoints"] = new System.Text.Json.Nodes.JsonObject { ["x"] = new System.Text.Json.Nodes.JsonObject { ["Url"] = $"http://127.0.0.1:{other}" } } },
            ["urls"] = $"http://127.0.0.1:{other}",
        }.ToJsonString());

        var psi = SparkyCli.StartInfo(["serve", "--data", Path.Combine(root, "data"), "--http", $"127.0.0.1:{port}",
            "--zmq", "tcp://127.0.0.1:0", "--zmq-events", "tcp://127.0.0.1:0"], cwd: cwd);
        using var p = Process.Start(psi)!;
        p.StandardInput.Close();
        try
        {
            using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}/") };
            var deadline = DateTime.UtcNow.AddSeconds(60);
            while (true)
            {
                if (p.HasExited) Assert.Fail("sparky serve exited: " + await p.StandardError.ReadToEndAsync());
                try { if ((await http.GetAsync("readyz")).IsSuccessStatusCode) break; }
                catch (HttpRequestException) { }
                Assert.True(DateTime.UtcNow < deadline, "sparky serve did not become ready in 60 s");
                await Task.Delay(50);
            }

            int watches = InotifyWatches(p.Id);
            Assert.True(watches <= 2, $"the daemon holds {watches} inotify watches; the working directory has 81 directories");
            using var probe = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
            await Assert.ThrowsAsync<HttpRequestException>(() => probe.GetAsync($"http://127.0.0.1:{other}/healthz"));
        }
        finally
        {
            if (!p.HasExited) p.Kill();
            await p.WaitForExitAsync();
        }
    }

    /// <summary>Watches across the process's inotify descriptors: one <c>inotify wd:</c> line per watch in fdinfo.</summary>
    private static int InotifyWatches(int pid)
    {
        int n = 0;
        foreach (var fd in Directory.EnumerateFileSystemEntries($"/proc/{pid}/fd"))
        {
            string target;
            try { target = new FileInfo(fd).LinkTarget ?? ""; } catch (IOException) { continue; }
            if (!target.Contains("inotify", StringComparison.Ordinal)) continue;
            n += File.ReadLines($"/proc/{pid}/fdinfo/{Path.GetFileName(fd)}").Count(l => l.StartsWith("inotify wd:", StringComparison.Ordinal));
        }
        return n;
    }
}
