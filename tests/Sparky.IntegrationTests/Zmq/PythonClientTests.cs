using System.Diagnostics;
using System.Text.Json.Nodes;
using Sparky.IntegrationTests.Support;
using Xunit.Abstractions;

namespace Sparky.IntegrationTests.Zmq;

/// <summary>Sparky driven from Python (pyzmq + msgpack) through examples/python/sparky_client.py.</summary>
public sealed class PythonClientTests(ITestOutputHelper output)
{
    private static async Task<(int Code, string Stdout, string Stderr)> RunAsync(string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(90));
        try { await p.WaitForExitAsync(cts.Token); }
        catch (OperationCanceledException)
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"{file} {string.Join(' ', args)} did not finish in 90 s: {await stderr}");
        }
        return (p.ExitCode, await stdout, await stderr);
    }

    /// <summary>A python3 with pyzmq and msgpack (the one on PATH, else Debian's, where a pyenv shim comes first),
    /// or a failure that says how to get them.</summary>
    private static async Task<string> RequirePythonAsync()
    {
        (int Code, string Stdout, string Stderr) r = (127, "", "python3 not found");
        foreach (var python in new[] { "python3", "/usr/bin/python3" })
        {
            try { r = await RunAsync(python, "-c", "import zmq, msgpack"); }
            catch (System.ComponentModel.Win32Exception) { continue; }
            if (r.Code == 0) return python;
        }
        Assert.Fail(Environment.GetEnvironmentVariable("CI") == "true"
            ? $"CI: python3 with pyzmq and msgpack is required (test.sh installs python3-zmq python3-msgpack): {r.Stderr.Trim()}"
            : $"python3 with pyzmq and msgpack is missing ({r.Stderr.Trim()}): run ./test.sh as root, or apt-get install python3-zmq python3-msgpack");
        return "";
    }

    [Fact]
    public async Task A_python_script_submits_follows_events_queries_and_cancels()
    {
        var python = await RequirePythonAsync();
        await using var d = await TestDaemon.StartAsync();
        var script = Path.Combine(SlurmCluster.RepoRoot(), "tests", "python", "drive_sparky.py");
        var r = await RunAsync(python, script, d.Daemon.ZmqEndpoint, d.Daemon.ZmqEventsEndpoint, d.WorkDir);
        output.WriteLine(r.Stdout);
        Assert.True(r.Code == 0, r.Stderr);
        var seen = JsonNode.Parse(r.Stdout)!;

        // Every reply came back with the corr of its request; none was stray.
        var req = seen["requests"]!;
        Assert.Equal((int)req["sent"]!, (int)req["matched"]!);
        Assert.Equal(0, (int)req["stray"]!);
        Assert.True((int)req["sent"]! >= 10);
        Assert.True((bool)seen["pong"]!["pong"]!);

        string ok = (string)seen["ids"]!["ok"]!, fail = (string)seen["ids"]!["fail"]!, longId = (string)seen["ids"]!["long"]!;
        Assert.Equal("py-long", longId);
        // Events, by topic prefix, in order for each task.
        var events = ((JsonArray)seen["events"]!).Select(e => (Topic: (string)e![0]!, Id: (string?)e[1], State: (string?)e[2])).ToList();
        Assert.All(events, e => Assert.StartsWith("task.", e.Topic));
        foreach (var (id, end) in new[] { (ok, "succeeded"), (fail, "failed"), (longId, "cancelled") })
        {
            var mine = events.Where(e => e.Id == id).ToList();
            Assert.Equal(["task.queued", "task.started", "task.finished"], mine.Select(e => e.Topic));
            Assert.Equal(end, mine[^1].State);
        }

        // Status agrees, and with the store.
        Assert.Equal(("succeeded", 0), ((string)seen["status"]!["ok"]!["state"]!, (int)seen["status"]!["ok"]!["exit_code"]!));
        Assert.Equal(("failed", 7), ((string)seen["status"]!["fail"]!["state"]!, (int)seen["status"]!["fail"]!["exit_code"]!));
        Assert.Equal("cancelled", (string)seen["status"]!["long"]!["state"]!);
        Assert.Equal("cancelled", (string)(await d.GetTaskAsync(longId))["state"]!);
        Assert.True((bool)seen["cancel"]!["ok"]!);
        var counters = seen["counters"]!;
        Assert.Equal((3L, 1L, 2L), ((long)counters["submitted"]!, (long)counters["done"]!, (long)counters["failed"]!));
        Assert.Equal([ok, fail, longId], ((JsonArray)seen["listed"]!).Select(x => (string)x!));
        Assert.Equal([fail], ((JsonArray)seen["failed_listed"]!).Select(x => (string)x!));
        Assert.Equal(409, (int)seen["late_cancel"]!["status"]!);
    }

    [Fact]
    public async Task The_python_cli_submits_and_shows_status()
    {
        var python = await RequirePythonAsync();
        await using var d = await TestDaemon.StartAsync();
        var client = Path.Combine(SlurmCluster.RepoRoot(), "examples", "python", "sparky_client.py");
        var sub = await RunAsync(python, client, "--zmq", d.Daemon.ZmqEndpoint, "submit", "--", "echo", "hi");
        Assert.True(sub.Code == 0, sub.Stderr);
        var id = sub.Stdout.Trim();
        Assert.Equal("succeeded", (string)(await d.WaitAsync(id))["state"]!);
        Assert.Equal("hi", (await File.ReadAllTextAsync(d.Daemon.Engine.LogPath(Sparky.Core.Tasks.TaskId.Parse(id), 1, stderr: false))).Trim());
        var st = await RunAsync(python, client, "--zmq", d.Daemon.ZmqEndpoint, "status", id);
        Assert.Equal("succeeded", (string)JsonNode.Parse(st.Stdout)!["state"]!);
        var missing = await RunAsync(python, client, "--zmq", d.Daemon.ZmqEndpoint, "status", "nope");
        Assert.Equal(1, missing.Code);
        Assert.Contains("404: no task 'nope'", missing.Stderr);
    }
}
