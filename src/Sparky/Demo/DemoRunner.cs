using System.Reflection;
using System.Text.Json.Nodes;
using Spectre.Console;
using Sparky.Cli;
using Sparky.Server.Daemon;

namespace Sparky.Demo;

/// <summary>
/// <c>sparky demo</c>: an embedded daemon on a temporary data dir runs <c>examples/demo/tasks.json</c>
/// through the real HTTP API and the real process runner, shows progress, then a summary.
/// </summary>
internal static class DemoRunner
{
    public static async Task<int> RunAsync(bool keep, bool json, CancellationToken ct)
    {
        var root = Path.Combine(Path.GetTempPath(), "sparky-demo-" + Guid.NewGuid().ToString("N")[..8]);
        var work = Path.Combine(root, "work");
        Directory.CreateDirectory(work);
        var (config, errors) = ConfigLoader.Load(new Dictionary<string, string>
        {
            ["data"] = Path.Combine(root, "data"),
            ["http"] = "127.0.0.1:0",
            ["zmq"] = "tcp://127.0.0.1:0", // free ports: never collides with a running daemon
            ["zmq_events"] = "tcp://127.0.0.1:0",
            ["retry_base_seconds"] = "0.2",
        });
        if (config is null) throw new CliException("invalid configuration: " + string.Join("; ", errors), 2);
        try
        {
            await using var daemon = await SparkyDaemon.StartAsync(config, json ? null : m => AnsiConsole.MarkupLine($"[grey]{Markup.Escape(m)}[/]"));
            using var client = new DaemonClient(daemon.Url);
            var plan = LoadExample();
            if (!json) AnsiConsole.MarkupLine($"[bold]demo:[/] {Markup.Escape((string?)plan["about"] ?? "")}");

            var idsByKey = new Dictionary<string, List<string>>();
            var all = new List<string>();
            foreach (var t in (JsonArray)plan["tasks"]!)
            {
                var body = new JsonObject
                {
                    ["name"] = (string?)t!["name"],
                    ["payload"] = new JsonObject
                    {
                        ["command"] = (string?)t["command"],
                        ["cwd"] = work,
                        ["retries"] = (int?)t["retries"] ?? 0,
                    },
                };
                if ((string?)t["array"] is { } array) body["array"] = array;
                if (t["after"] is JsonArray after)
                    body["after"] = new JsonArray(after.SelectMany(k => idsByKey[(string)k!]).Select(x => (JsonNode?)x).ToArray());
                var reply = await client.PostAsync("api/v1/tasks", body, ct);
                var ids = ((JsonArray)reply["ids"]!).Select(x => (string)x!).ToList();
                idsByKey[(string)t["key"]!] = ids;
                all.AddRange(ids);
            }

            var done = await Waiter.WaitAsync(client, all, progress: !json, "demo", ct);
            var tasks = all.Select(id => done[id]).ToList();
            int failed = tasks.Count(t => (string?)t["state"] != "succeeded");
            if (json)
            {
                Console.WriteLine(new JsonObject { ["data"] = root, ["tasks"] = new JsonArray(tasks.Select(t => t.DeepClone()).ToArray()) }.ToJsonString());
            }
            else
            {
                Views.TaskTable(tasks);
                var merge = done[idsByKey["merge"][0]];
                var flaky = done[idsByKey["flaky"][0]];
                AnsiConsole.MarkupLine($"merge result: [bold]{Markup.Escape(merge["result"]?.ToJsonString() ?? "none")}[/]; flaky task took {flaky["attempts"]} attempts");
                AnsiConsole.MarkupLine(failed == 0
                    ? $"[green]demo passed:[/] {tasks.Count} tasks succeeded"
                    : $"[red]demo failed:[/] {failed} of {tasks.Count} tasks did not succeed");
                if (keep) AnsiConsole.MarkupLine($"[grey]data kept in {Markup.Escape(root)}[/]");
            }
            return failed == 0 ? 0 : 1;
        }
        finally
        {
            if (!keep) TryDelete(root);
        }
    }

    private static JsonNode LoadExample()
    {
        using var s = Assembly.GetExecutingAssembly().GetManifestResourceStream("demo.tasks.json")
            ?? throw new CliException("the demo example is missing from this build");
        return JsonNode.Parse(s)!;
    }

    private static void TryDelete(string dir)
    {
        try { Directory.Delete(dir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
