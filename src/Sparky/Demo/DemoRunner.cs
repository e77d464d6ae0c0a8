using System.Reflection;
using System.Text.Json.Nodes;
using Spectre.Console;
using Sparky.Cli;
using Sparky.Server.Daemon;

namespace Sparky.Demo;

/// <summary>
/// <c>sparky demo</c>: an embedded daemon on a temporary data dir runs the sample plan <c>examples/plans/demo.yaml</c>
/// (three phases, a fan-out, a task that succeeds on its retry, gates with a metric) through the real HTTP API, the
/// plan runner and the real process runner, with a live view, then a summary; then a few sentences embedded and their
/// nearest neighbours (<see cref="EmbeddingDemo"/>).
/// </summary>
internal static class DemoRunner
{
    /// <summary>The sample plan's output directory, which the demo points at its own temporary one.</summary>
    private const string DefaultOut = "out: /tmp/sparky-plan-demo";

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
            var text = LoadExample();
            if (!text.Contains(DefaultOut, StringComparison.Ordinal)) throw new CliException("the demo plan has no 'out' variable to point at a temporary directory");
            text = text.Replace(DefaultOut, "out: " + Path.Combine(work, "out"), StringComparison.Ordinal);
            if (!json) AnsiConsole.MarkupLine("[bold]demo:[/] examples/plans/demo.yaml: prepare → process (8 shards, a task that fails once, a chain) → evaluate (metric gate)");

            var started = await client.PostAsync("api/v1/plans", new JsonObject { ["text"] = text, ["path"] = "examples/plans/demo.yaml", ["base_dir"] = work }, ct);
            var name = (string?)started["name"] ?? throw client.NotSparky();
            bool live = !json && !Console.IsOutputRedirected && AnsiConsole.Profile.Capabilities.Interactive;
            var report = await PlanVerbs.FollowAsync(client, name, live, lines: !json, ct);
            bool ok = (string?)report["status"] == "succeeded";
            var tasks = await client.GetAsync("api/v1/tasks?limit=1000", ct);
            var (neighbours, noEmbeddings) = EmbeddingDemo.Run();
            if (json)
            {
                Console.WriteLine(new JsonObject { ["data"] = root, ["plan"] = report.DeepClone(), ["tasks"] = tasks["tasks"]!.DeepClone(), ["neighbours"] = neighbours }.ToJsonString());
            }
            else
            {
                if (!live) AnsiConsole.Write(PlanVerbs.Tree(report));
                var list = ((JsonArray)tasks["tasks"]!).ToList();
                Views.TaskTable(list);
                var flaky = list.FirstOrDefault(t => ((string?)t!["id"])?.Contains("flaky", StringComparison.Ordinal) == true);
                AnsiConsole.MarkupLine(ok
                    ? $"[green]demo passed:[/] plan {Markup.Escape(name)} succeeded, {list.Count} tasks" + (flaky is null ? "" : $"; the flaky task took {flaky["attempts"]} attempts")
                    : $"[red]demo failed:[/] stopped at phase {Markup.Escape((string?)report["current_phase"] ?? "?")}: {Markup.Escape((string?)report["reason"] ?? "")}");
                if (neighbours is null) AnsiConsole.MarkupLine($"[grey]{Markup.Escape(noEmbeddings!)}[/]");
                else
                {
                    var table = new Table().Title("[bold]embeddings[/] (all-MiniLM-L6-v2): each sentence's nearest neighbour").AddColumns("sentence", "nearest", "cosine");
                    foreach (var n in neighbours)
                        table.AddRow(Markup.Escape((string)n!["sentence"]!), Markup.Escape((string)n["nearest"]!), ((double)n["cosine"]!).ToString("0.000"));
                    AnsiConsole.Write(table);
                }
                if (keep) AnsiConsole.MarkupLine($"[grey]data kept in {Markup.Escape(root)}[/]");
            }
            return ok ? 0 : 1;
        }
        finally
        {
            if (!keep) TryDelete(root);
        }
    }

    private static string LoadExample()
    {
        using var s = Assembly.GetExecutingAssembly().GetManifestResourceStream("demo.plan.yaml")
            ?? throw new CliException("the demo plan is missing from this build");
        return new StreamReader(s).ReadToEnd();
    }

    private static void TryDelete(string dir)
    {
        try { Directory.Delete(dir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
