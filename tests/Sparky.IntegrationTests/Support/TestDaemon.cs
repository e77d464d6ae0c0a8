using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using Sparky.Cli;
using Sparky.Core.Config;
using Sparky.Server.Daemon;

namespace Sparky.IntegrationTests.Support;

/// <summary>A real daemon in this process: real SQLite file in a temp dir, real processes, HTTP on a free loopback port.</summary>
public sealed class TestDaemon : IAsyncDisposable
{
    public SparkyDaemon Daemon { get; }
    public HttpClient Http { get; }
    public string Root { get; }
    public string DataDir => Path.Combine(Root, "data");
    public string WorkDir => Path.Combine(Root, "work");

    private readonly bool _ownsRoot;

    private TestDaemon(SparkyDaemon daemon, string root, bool ownsRoot)
    {
        Daemon = daemon;
        Root = root;
        _ownsRoot = ownsRoot;
        Http = new HttpClient { BaseAddress = new Uri(daemon.Url + "/"), Timeout = TimeSpan.FromSeconds(60) };
    }

    public static string NewRoot()
    {
        var root = Path.Combine(Path.GetTempPath(), "sparky-test-" + Guid.NewGuid().ToString("N")[..10]);
        Directory.CreateDirectory(Path.Combine(root, "work"));
        return root;
    }

    public static SparkyConfig Config(string root, Dictionary<string, string>? settings = null)
    {
        var flags = new Dictionary<string, string>
        {
            ["data"] = Path.Combine(root, "data"),
            ["http"] = "127.0.0.1:0",
            ["zmq"] = "tcp://127.0.0.1:0",
            ["zmq_events"] = "tcp://127.0.0.1:0",
            ["retry_base_seconds"] = "0.05",
            ["kill_grace_seconds"] = "1",
        };
        foreach (var (k, v) in settings ?? []) flags[k] = v;
        var (config, errors) = SparkyConfig.Resolve(flags, new Dictionary<string, string>(), new Dictionary<string, string>(), "test",
            new SettingContext(Environment.ProcessorCount, Path.Combine(root, "data")));
        return config ?? throw new InvalidOperationException(string.Join("; ", errors));
    }

    public static async Task<TestDaemon> StartAsync(Dictionary<string, string>? settings = null, string? root = null, TimeProvider? clock = null)
    {
        bool owns = root is null;
        root ??= NewRoot();
        var daemon = await StartInProcessAsync(() => SparkyDaemon.StartAsync(Config(root, settings), clock: clock));
        return new TestDaemon(daemon, root, owns);
    }

    /// <summary>
    /// Starts a daemon in this process. One started again on the same data dir (a restart test) may find the lock of
    /// the one just disposed still held for a moment: a test running beside it that forks a process gives the child a
    /// copy of every descriptor, the lock's included, until the child's exec closes it. A second daemon holds it for good.
    /// </summary>
    public static async Task<SparkyDaemon> StartInProcessAsync(Func<Task<SparkyDaemon>> start)
    {
        for (var until = DateTime.UtcNow.AddSeconds(3); ; await Task.Delay(50))
        {
            try { return await start(); }
            catch (InvalidOperationException e) when (e.Message.StartsWith("another daemon", StringComparison.Ordinal) && DateTime.UtcNow < until) { }
        }
    }

    /// <summary>Submits one task (any accepted shape) and returns its ids.</summary>
    public async Task<List<string>> SubmitAsync(JsonNode body)
    {
        using var resp = await Http.PostAsync("api/v1/tasks", new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json"));
        var text = await resp.Content.ReadAsStringAsync();
        if (!resp.IsSuccessStatusCode) throw new InvalidOperationException($"{(int)resp.StatusCode}: {text}");
        return ((JsonArray)JsonNode.Parse(text)!["ids"]!).Select(x => (string)x!).ToList();
    }

    public async Task<string> SubmitShellAsync(string shell, int retries = 0, string? cls = null, double? timeout = null, IEnumerable<string>? after = null)
    {
        var payload = new JsonObject { ["command"] = shell, ["cwd"] = WorkDir, ["retries"] = retries };
        if (timeout is { } t) payload["timeout_seconds"] = t;
        var body = new JsonObject { ["payload"] = payload };
        if (cls is not null) body["class"] = cls;
        if (after is not null) body["after"] = new JsonArray(after.Select(a => (JsonNode?)a).ToArray());
        return (await SubmitAsync(body))[0];
    }

    public async Task<JsonNode> GetTaskAsync(string id) =>
        (await Http.GetFromJsonAsync<JsonNode>($"api/v1/tasks/{Uri.EscapeDataString(id)}"))!;

    /// <summary>Polls with a deadline until the task is terminal.</summary>
    public async Task<JsonNode> WaitAsync(string id, double seconds = 30)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (true)
        {
            // Not there yet is waited for too: a file dropped in pending/ becomes a task a moment after it lands.
            using var resp = await Http.GetAsync($"api/v1/tasks/{Uri.EscapeDataString(id)}");
            var t = resp.StatusCode == System.Net.HttpStatusCode.NotFound ? null : JsonNode.Parse(await resp.EnsureSuccessStatusCode().Content.ReadAsStringAsync())!;
            if ((string?)t?["state"] is "succeeded" or "failed" or "cancelled") return t!;
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"task {id} still {(string?)t?["state"] ?? "not stored"} after {seconds}s");
            await Task.Delay(20);
        }
    }

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        await Daemon.DisposeAsync();
        if (_ownsRoot) try { Directory.Delete(Root, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
