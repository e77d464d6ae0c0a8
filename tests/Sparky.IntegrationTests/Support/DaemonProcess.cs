using System.Diagnostics;
using System.Text;
using System.Text.Json.Nodes;

namespace Sparky.IntegrationTests.Support;

/// <summary>`sparky serve` as a real process, for tests that kill it.</summary>
public sealed class DaemonProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _stderr = new();
    public HttpClient Http { get; }
    public int Pid => _process.Id;
    public string Url { get; }

    private DaemonProcess(Process process, string url)
    {
        _process = process;
        Url = url;
        Http = new HttpClient { BaseAddress = new Uri(url + "/"), Timeout = TimeSpan.FromSeconds(60) };
    }

    public static Task<DaemonProcess> StartAsync(string dataDir, int port, params string[] extra) => StartAsync(dataDir, port, 0, null, extra);

    /// <summary>With a fixed ZeroMQ command port (workers reconnect to it after a restart) and extra environment.</summary>
    public static Task<DaemonProcess> StartAsync(string dataDir, int port, int zmqPort, IDictionary<string, string>? env, params string[] extra) =>
        StartAsync(null, dataDir, port, zmqPort, env, extra);

    /// <summary>In <paramref name="cwd"/> (what a relative setting is relative to), with extra environment.</summary>
    public static Task<DaemonProcess> StartInAsync(string cwd, string dataDir, int port, IDictionary<string, string>? env, params string[] extra) =>
        StartAsync(null, dataDir, port, 0, env, extra, cwd);

    /// <summary>Under a wrapper command that execs the rest of its arguments (e.g. <c>setpriv</c>, to run without a capability).</summary>
    public static Task<DaemonProcess> StartWrappedAsync(IReadOnlyList<string> wrapper, string dataDir, int port, params string[] extra) =>
        StartAsync(wrapper, dataDir, port, 0, null, extra);

    /// <summary>Another build of sparky than the one under test, started by <paramref name="command"/> (e.g. the arm64
    /// build under qemu-aarch64).</summary>
    public static Task<DaemonProcess> StartBuildAsync(IReadOnlyList<string> command, string dataDir, int port) =>
        StartAsync(null, dataDir, port, 0, null, [], program: command);

    private static async Task<DaemonProcess> StartAsync(IReadOnlyList<string>? wrapper, string dataDir, int port, int zmqPort, IDictionary<string, string>? env,
        string[] extra, string? cwd = null, IReadOnlyList<string>? program = null)
    {
        var args = new List<string> { "serve", "--data", dataDir, "--http", $"127.0.0.1:{port}", "--zmq", $"tcp://127.0.0.1:{zmqPort}", "--zmq-events", "tcp://127.0.0.1:0" };
        args.AddRange(extra);
        var psi = SparkyCli.StartInfo(args, env, cwd);
        if (program is { Count: > 0 })
        {
            psi.FileName = program[0];
            psi.ArgumentList.Clear();
            foreach (var a in program.Skip(1).Concat(args)) psi.ArgumentList.Add(a);
        }
        if (wrapper is { Count: > 0 })
        {
            var inner = new List<string> { psi.FileName };
            inner.AddRange(psi.ArgumentList);
            psi.FileName = wrapper[0];
            psi.ArgumentList.Clear();
            foreach (var a in wrapper.Skip(1).Concat(inner)) psi.ArgumentList.Add(a);
        }
        var p = Process.Start(psi)!;
        var d = new DaemonProcess(p, $"http://127.0.0.1:{port}");
        p.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (d._stderr) d._stderr.AppendLine(e.Data); };
        p.OutputDataReceived += (_, _) => { };
        p.BeginErrorReadLine();
        p.BeginOutputReadLine();
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (true)
        {
            if (p.HasExited) throw new InvalidOperationException($"sparky serve exited with {p.ExitCode}: {d.Stderr}");
            try
            {
                using var resp = await d.Http.GetAsync("readyz");
                if (resp.IsSuccessStatusCode) return d;
            }
            catch (HttpRequestException) { }
            if (DateTime.UtcNow > deadline) throw new TimeoutException("sparky serve did not become ready: " + d.Stderr);
            await Task.Delay(50);
        }
    }

    public string Stderr { get { lock (_stderr) return _stderr.ToString(); } }

    /// <summary>SIGKILL: no chance to flush or clean up.</summary>
    public void KillHard()
    {
        _process.Kill(); // SIGKILL on Unix
        _process.WaitForExit();
    }

    /// <summary>SIGTERM, as a service manager stops it, and waits for the exit: everything it wrote is in <see cref="Stderr"/> then.</summary>
    public async Task<int> StopAsync()
    {
        using (var kill = Process.Start("kill", ["-TERM", Pid.ToString()])) await kill.WaitForExitAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await _process.WaitForExitAsync(cts.Token);
        return _process.ExitCode;
    }

    public async Task<JsonNode> GetAsync(string path) => JsonNode.Parse(await Http.GetStringAsync(path))!;

    /// <summary>Submits one task (<c>POST /api/v1/tasks</c>, any accepted body) and returns its id; fails the test with
    /// the daemon's answer if it is refused.</summary>
    public async Task<string> SubmitAsync(JsonNode body)
    {
        using var resp = await Http.PostAsync("api/v1/tasks", new StringContent(body.ToJsonString(), System.Text.Encoding.UTF8, "application/json"));
        var text = await resp.Content.ReadAsStringAsync();
        Assert.True(resp.IsSuccessStatusCode, text);
        return (string)JsonNode.Parse(text)!["ids"]![0]!;
    }

    /// <summary>Polls a task with a deadline until <paramref name="done"/> says so; returns it.</summary>
    public async Task<JsonNode> TaskUntilAsync(string id, Func<JsonNode, bool> done, double seconds = 30)
    {
        for (var until = DateTime.UtcNow.AddSeconds(seconds); ; await Task.Delay(50))
        {
            var t = await GetAsync($"api/v1/tasks/{id}");
            if (done(t)) return t;
            Assert.True(DateTime.UtcNow < until, $"task {id} never got there: {t.ToJsonString()}");
        }
    }

    private bool _disposed;

    public async ValueTask DisposeAsync()
    {
        if (_disposed) return; // a test that restarts a daemon may dispose it in a finally as well
        _disposed = true;
        Http.Dispose();
        if (!_process.HasExited)
        {
            _process.Kill();
            await _process.WaitForExitAsync();
        }
        _process.Dispose();
    }
}
