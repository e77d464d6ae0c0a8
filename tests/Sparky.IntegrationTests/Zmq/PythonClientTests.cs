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

    [Fact]
    public async Task A_python_client_with_the_server_key_talks_to_a_curve_daemon_and_one_without_times_out()
    {
        var python = await RequirePythonAsync();
        var root = TestDaemon.NewRoot();
        var publicKey = Sparky.Server.Zmq.CurveKeys.Generate(Path.Combine(root, "data"), force: false);
        await using var d = await TestDaemon.StartAsync(new() { ["zmq_curve"] = "on" }, root);
        var examples = Path.Combine(SlurmCluster.RepoRoot(), "examples", "python");
        // pyzmq's CURVE needs a libzmq built with libsodium; say so plainly if this one lacks it.
        const string Script = """
            import json, sys, time
            sys.path.insert(0, sys.argv[1])
            import zmq
            from sparky_client import Client, follow
            cmd, events, key, cwd = sys.argv[2:6]
            assert zmq.has("curve"), "this pyzmq's libzmq has no CURVE (libsodium)"
            out = {}
            def say(*what): print(f"{time.monotonic():.2f}", *what, file=sys.stderr, flush=True)  # where it was, if it hangs
            sub = follow(events, prefix="task.", timeout=20, server_key=key)
            time.sleep(0.5)  # the subscription reaches the publisher after the handshake
            with Client(cmd, timeout=10, server_key=key) as c:
                out["pong"] = c.ping()["pong"]
                say("pong")
                [tid] = c.submit({"payload": {"command": ["true"], "cwd": cwd}})
                say("submitted", tid)
                for topic, body in sub:
                    say(topic, body.get("id"))
                    if body["id"] == tid and topic == "task.finished":
                        out["finished"] = body["state"]
                        break
            for name, k in (("plain", None), ("wrong", zmq.curve_keypair()[0].decode())):
                say(name)
                with Client(cmd, timeout=1.5, server_key=k) as c:
                    try:
                        c.ping()
                        out[name] = "answered"
                    except TimeoutError:
                        out[name] = "timed out"
            print(json.dumps(out))
            """;
        var r = await RunAsync(python, "-c", Script, examples, d.Daemon.ZmqEndpoint, d.Daemon.ZmqEventsEndpoint, publicKey, d.WorkDir);
        output.WriteLine(r.Stdout + r.Stderr);
        Assert.True(r.Code == 0, r.Stderr);
        var seen = JsonNode.Parse(r.Stdout)!;
        Assert.True((bool)seen["pong"]!);
        Assert.Equal("succeeded", (string)seen["finished"]!);
        Assert.Equal("timed out", (string)seen["plain"]!);
        Assert.Equal("timed out", (string)seen["wrong"]!);
    }

    [Fact]
    public async Task A_python_client_with_a_listed_client_key_is_answered_and_one_with_only_the_server_key_is_not()
    {
        var python = await RequirePythonAsync();
        var root = TestDaemon.NewRoot();
        var data = Path.Combine(root, "data");
        var publicKey = Sparky.Server.Zmq.CurveKeys.Generate(data, force: false);
        var made = await SparkyCli.RunAsync(["keys", "--client", "py", "--data", data, "--json"]);
        Assert.True(made.ExitCode == 0, made.Stderr);
        var keyFile = (string)JsonNode.Parse(made.Stdout)!["secret_key_file"]!;
        await using var d = await TestDaemon.StartAsync(new() { ["zmq_curve"] = "on" }, root);
        var client = Path.Combine(SlurmCluster.RepoRoot(), "examples", "python", "sparky_client.py");
        string[] common = ["--zmq", d.Daemon.ZmqEndpoint, "--server-key", publicKey];

        // The proof is computed in Python (X25519 from RFC 7748, HMAC-SHA256), checked by the daemon's own code.
        var ok = await RunAsync(python, [client, .. common, "--client-key", keyFile, "submit", "--", "touch", Path.Combine(d.WorkDir, "py-ran")]);
        output.WriteLine(ok.Stdout + ok.Stderr);
        Assert.True(ok.Code == 0, ok.Stderr);
        await d.WaitAsync(ok.Stdout.Trim());
        Assert.True(File.Exists(Path.Combine(d.WorkDir, "py-ran")));

        var stranger = await RunAsync(python, [client, .. common, "--timeout", "1.5", "submit", "--", "touch", Path.Combine(d.WorkDir, "stranger-ran")]);
        Assert.Equal(1, stranger.Code);
        Assert.Contains("no reply", stranger.Stderr);
        Assert.False(File.Exists(Path.Combine(d.WorkDir, "stranger-ran")));

        // Events: the event socket's key is told to an authenticated client only; follow() asks for it with the client key.
        const string Follow = """
            import json, sys, time
            sys.path.insert(0, sys.argv[1])
            from sparky_client import Client, follow
            cmd, events, key, keyfile, cwd = sys.argv[2:7]
            out = {}
            sub = follow(events, prefix="task.", timeout=20, server_key=key, client_key=keyfile, zmq_addr=cmd)
            public_only = follow(events, prefix="task.", timeout=1.5, server_key=key)
            time.sleep(0.5)  # the subscriptions reach the publisher after the handshake
            with Client(cmd, timeout=10, server_key=key, client_key=keyfile) as c:
                [tid] = c.submit({"payload": {"command": ["true"], "cwd": cwd}})
            for topic, body in sub:
                if body["id"] == tid and topic == "task.finished":
                    out["finished"] = body["state"]
                    break
            out["public_only"] = [t for t, b in public_only if b["id"] == tid]
            print(json.dumps(out))
            """;
        var examples = Path.GetDirectoryName(client)!;
        var ev = await RunAsync(python, "-c", Follow, examples, d.Daemon.ZmqEndpoint, d.Daemon.ZmqEventsEndpoint, publicKey, keyFile, d.WorkDir);
        output.WriteLine(ev.Stdout + ev.Stderr);
        Assert.True(ev.Code == 0, ev.Stderr);
        var seen = JsonNode.Parse(ev.Stdout)!;
        Assert.Equal("succeeded", (string?)seen["finished"]);
        Assert.Empty((JsonArray)seen["public_only"]!);
    }
}
