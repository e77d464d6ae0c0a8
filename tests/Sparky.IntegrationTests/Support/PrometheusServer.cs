using System.Diagnostics;
using System.Text;
using System.Text.Json.Nodes;

namespace Sparky.IntegrationTests.Support;

/// <summary>A real Prometheus server (Debian's <c>prometheus</c>) scraping one target every second, on its own port and temp dir.</summary>
public sealed class PrometheusServer : IAsyncDisposable
{
    private readonly Process _process;
    private readonly string _dir;
    private readonly StringBuilder _stderr = new();
    public HttpClient Http { get; }

    private PrometheusServer(Process process, string dir, int port)
    {
        _process = process;
        _dir = dir;
        Http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}/"), Timeout = TimeSpan.FromSeconds(30) };
    }

    /// <summary>The binary: $PROMETHEUS, else prometheus on PATH; null if there is none.</summary>
    public static string? Find()
    {
        if (Environment.GetEnvironmentVariable("PROMETHEUS") is { Length: > 0 } p) return File.Exists(p) ? p : null;
        return (Environment.GetEnvironmentVariable("PATH") ?? "/usr/bin").Split(':')
            .Select(d => Path.Combine(d, "prometheus")).FirstOrDefault(File.Exists);
    }

    /// <param name="target">host:port to scrape at /metrics.</param>
    public static async Task<PrometheusServer> StartAsync(string binary, string target)
    {
        var dir = Path.Combine(Path.GetTempPath(), "sparky-prom-" + Guid.NewGuid().ToString("N")[..10]);
        Directory.CreateDirectory(dir);
        var config = Path.Combine(dir, "prometheus.yml");
        File.WriteAllText(config, $"""
            global:
              scrape_interval: 1s
              scrape_timeout: 1s
              evaluation_interval: 1s
            scrape_configs:
              - job_name: sparky
                metrics_path: /metrics
                static_configs:
                  - targets: ['{target}']
            """);
        int port = SparkyCli.FreePort();
        var psi = new ProcessStartInfo(binary)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = dir,
        };
        foreach (var a in new[] { $"--config.file={config}", $"--storage.tsdb.path={Path.Combine(dir, "data")}", $"--web.listen-address=127.0.0.1:{port}" })
            psi.ArgumentList.Add(a);
        var process = Process.Start(psi)!;
        var server = new PrometheusServer(process, dir, port);
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (server._stderr) server._stderr.AppendLine(e.Data); };
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (server._stderr) server._stderr.AppendLine(e.Data); };
        process.BeginErrorReadLine();
        process.BeginOutputReadLine();

        var deadline = DateTime.UtcNow.AddSeconds(60);
        try
        {
            while (true)
            {
                if (process.HasExited) throw new InvalidOperationException($"prometheus exited with {process.ExitCode}:\n{server.Stderr}");
                try
                {
                    using var resp = await server.Http.GetAsync("-/ready");
                    if (resp.IsSuccessStatusCode) return server;
                }
                catch (HttpRequestException) { }
                catch (TaskCanceledException) { }
                if (DateTime.UtcNow > deadline) throw new TimeoutException($"prometheus not ready in 60 s:\n{server.Stderr}");
                await Task.Delay(100);
            }
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }
    }

    public string Stderr { get { lock (_stderr) return _stderr.ToString(); } }

    /// <summary>An instant query; the <c>data.result</c> array (throws if Prometheus says it failed).</summary>
    public async Task<JsonArray> QueryAsync(string promql)
    {
        var body = JsonNode.Parse(await Http.GetStringAsync("api/v1/query?query=" + Uri.EscapeDataString(promql)))!;
        if ((string?)body["status"] != "success") throw new InvalidOperationException($"query {promql}: {body.ToJsonString()}");
        return (JsonArray)body["data"]!["result"]!;
    }

    /// <summary>The scrape targets and their last error, for failure messages.</summary>
    public async Task<string> TargetsAsync()
    {
        try { return await Http.GetStringAsync("api/v1/targets"); }
        catch (Exception e) { return "(targets unavailable: " + e.Message + ")"; }
    }

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(); // SIGKILL to this pid only: its data is a temp dir
                await _process.WaitForExitAsync();
            }
        }
        catch (InvalidOperationException) { } // already gone
        _process.Dispose();
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
