using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

/// <summary>
/// A real <c>sparky serve</c> for a benchmark (compiled into each bench that starts one): HTTP on a free loopback port,
/// the ZeroMQ doors on free ones, none of this shell's <c>SPARKY_*</c> settings; ready when <c>/readyz</c> answers;
/// stopped with SIGTERM, as a user stops it. <c>sparky.dll</c> runs under dotnet (the JIT build).
/// </summary>
internal sealed class ServedDaemon
{
    private readonly Process _p;
    public string Http { get; }
    public Uri Url => new(Http + "/");
    public int Pid => _p.Id;
    public bool Alive => !_p.HasExited;
    public double ReadySeconds { get; }

    private ServedDaemon(Process p, string http, double ready) => (_p, Http, ReadySeconds) = (p, http, ready);

    public static ServedDaemon Start(string sparky, string data, IEnumerable<string>? extra = null, double readyWithinSeconds = 120)
    {
        int port;
        using (var probe = new TcpListener(IPAddress.Loopback, 0)) { probe.Start(); port = ((IPEndPoint)probe.LocalEndpoint).Port; }
        bool dll = sparky.EndsWith(".dll", StringComparison.Ordinal);
        var psi = new ProcessStartInfo(dll ? "dotnet" : sparky) { RedirectStandardError = true, RedirectStandardOutput = true };
        if (dll) psi.ArgumentList.Add(sparky);
        foreach (var a in new[] { "serve", "--data", data, "--http", $"127.0.0.1:{port}", "--zmq", "tcp://127.0.0.1:0", "--zmq-events", "tcp://127.0.0.1:0" }
                     .Concat(extra ?? []))
            psi.ArgumentList.Add(a);
        foreach (var k in psi.Environment.Keys.Where(k => k.StartsWith("SPARKY_", StringComparison.Ordinal)).ToList()) psi.Environment.Remove(k);
        var started = Stopwatch.StartNew();
        var p = Process.Start(psi)!;
        p.ErrorDataReceived += (_, _) => { };
        p.OutputDataReceived += (_, _) => { };
        p.BeginErrorReadLine();
        p.BeginOutputReadLine();
        var http = $"http://127.0.0.1:{port}";
        using var client = new HttpClient { BaseAddress = new Uri(http + "/"), Timeout = TimeSpan.FromSeconds(5) };
        while (true)
        {
            if (p.HasExited) throw new InvalidOperationException($"the daemon exited with {p.ExitCode} while starting");
            try { if (client.GetAsync("readyz").GetAwaiter().GetResult().IsSuccessStatusCode) break; }
            catch (HttpRequestException) { }
            catch (TaskCanceledException) { }
            if (started.Elapsed > TimeSpan.FromSeconds(readyWithinSeconds)) { p.Kill(); throw new TimeoutException($"the daemon was not ready within {readyWithinSeconds} s"); }
            Thread.Sleep(20);
        }
        return new ServedDaemon(p, http, started.Elapsed.TotalSeconds);
    }

    /// <summary>User + system CPU of the daemon's own process, from /proc (its tasks are not in it).</summary>
    public double CpuSeconds()
    {
        var stat = File.ReadAllText($"/proc/{_p.Id}/stat");
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        return (long.Parse(fields[11]) + long.Parse(fields[12])) / 100.0; // utime, stime in clock ticks (USER_HZ = 100)
    }

    /// <summary>User and system CPU of the daemon's own process, in clock ticks of 10 ms (USER_HZ = 100).</summary>
    public (long User, long Sys) CpuTicks()
    {
        var f = StatFields($"/proc/{_p.Id}/stat");
        return (long.Parse(f[11]), long.Parse(f[12]));
    }

    /// <summary>User + system CPU ticks of the daemon's live threads, summed by thread name (what /proc shows: .NET names
    /// its threads, cut to 15 characters). A thread that has exited is no longer counted.</summary>
    public Dictionary<string, long> ThreadTicks()
    {
        var byName = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var dir in Directory.EnumerateDirectories($"/proc/{_p.Id}/task"))
        {
            try
            {
                var stat = File.ReadAllText(Path.Combine(dir, "stat"));
                var name = stat[(stat.IndexOf('(') + 1)..stat.LastIndexOf(')')];
                var f = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
                byName[name] = byName.GetValueOrDefault(name) + long.Parse(f[11]) + long.Parse(f[12]);
            }
            catch (IOException) { } // it exited while we looked
        }
        return byName;
    }

    private static string[] StatFields(string path)
    {
        var stat = File.ReadAllText(path);
        return stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
    }

    /// <summary>SIGTERM; SIGKILL past <paramref name="graceMs"/>. Throws if the daemon had already died.</summary>
    public void Stop(int graceMs = 60_000)
    {
        if (_p.HasExited) throw new InvalidOperationException($"the daemon (pid {Pid}) died during the run: exit {_p.ExitCode}");
        using (var term = Process.Start("kill", ["-TERM", Pid.ToString()])) term.WaitForExit();
        if (!_p.WaitForExit(graceMs)) Kill();
    }

    public void Kill()
    {
        try { if (!_p.HasExited) _p.Kill(); } catch (InvalidOperationException) { }
    }
}
