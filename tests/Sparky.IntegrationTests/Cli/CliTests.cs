using System.Text.Json.Nodes;
using Sparky.IntegrationTests.Support;

namespace Sparky.IntegrationTests.Cli;

/// <summary>The real `sparky` executable against a real daemon, as a user types it.</summary>
public sealed class CliTests
{
    [Fact]
    public async Task Submit_wait_exits_with_the_tasks_exit_code_and_ls_status_logs_see_it()
    {
        await using var d = await TestDaemon.StartAsync();
        string[] server = ["--server", d.Daemon.Url];

        var waited = await SparkyCli.RunAsync(["submit", .. server, "--wait", "--name", "four", "--", "sh", "-c", "echo out-line; exit 4"], cwd: d.WorkDir);
        Assert.Equal(4, waited.ExitCode);

        var submitted = await SparkyCli.RunAsync(["submit", .. server, "--retries", "1", "--env", "WHO=cli", "echo hello $WHO > hello.txt"], cwd: d.WorkDir);
        Assert.Equal(0, submitted.ExitCode);
        var id = submitted.Stdout.Trim();
        Assert.True(Sparky.Core.Tasks.TaskId.TryParse(id, out _), $"printed an id: '{id}'");

        var wait = await SparkyCli.RunAsync(["wait", .. server, id, "--json"]);
        Assert.Equal(0, wait.ExitCode);
        Assert.Equal("succeeded", (string?)JsonNode.Parse(wait.Stdout)!["tasks"]![0]!["state"]);
        Assert.Equal("hello cli\n", File.ReadAllText(Path.Combine(d.WorkDir, "hello.txt")));

        var ls = await SparkyCli.RunAsync(["ls", .. server, "--json"]);
        var tasks = (JsonArray)JsonNode.Parse(ls.Stdout)!["tasks"]!;
        Assert.Equal(2, tasks.Count);
        Assert.Equal("four", (string?)tasks[0]!["name"]);
        Assert.Equal(4, (int?)tasks[0]!["exit_code"]);

        var table = await SparkyCli.RunAsync(["ls", .. server]);
        Assert.Contains(id, table.Stdout);
        Assert.Contains("succeeded", table.Stdout);

        var status = await SparkyCli.RunAsync(["status", .. server, id, "--json"]);
        Assert.Equal(id, (string?)JsonNode.Parse(status.Stdout)!["id"]);

        var fourId = (string)tasks[0]!["id"]!;
        var logs = await SparkyCli.RunAsync(["logs", .. server, fourId]);
        Assert.Equal("out-line\n", logs.Stdout);

        var retry = await SparkyCli.RunAsync(["retry", .. server, fourId]);
        Assert.Equal(0, retry.ExitCode);
        var again = await SparkyCli.RunAsync(["wait", .. server, fourId]);
        Assert.Equal(4, again.ExitCode);
    }

    [Fact]
    public async Task Ls_filters_on_several_states_classes_and_a_search()
    {
        await using var d = await TestDaemon.StartAsync();
        string[] server = ["--server", d.Daemon.Url];
        async Task<string> Submit(params string[] args) => (await SparkyCli.RunAsync(["submit", .. server, "--wait", .. args], cwd: d.WorkDir)).Stdout.Trim();
        await Submit("--name", "train-ok", "--", "true");
        await Submit("--name", "train-bad", "--class", "cpu_long", "--", "sh", "-c", "exit 2");
        await Submit("--name", "eval-bad", "--", "sh", "-c", "exit 3");

        async Task<List<string?>> Names(params string[] args)
        {
            var r = await SparkyCli.RunAsync(["ls", .. server, "--json", .. args]);
            Assert.True(r.ExitCode == 0, r.Stderr);
            return ((JsonArray)JsonNode.Parse(r.Stdout)!["tasks"]!).Select(t => (string?)t!["name"]).ToList();
        }
        Assert.Equal(["train-ok", "train-bad", "eval-bad"], await Names("--state", "succeeded,failed"));
        Assert.Equal(["train-ok", "eval-bad"], await Names("--class", "cpu_short,gpu"));
        Assert.Equal(["train-bad", "eval-bad"], await Names("--state", "failed", "--search", "BAD"));
        Assert.Equal(["eval-bad"], await Names("--state", "failed", "--class", "cpu_short", "--search", "exit 3"));
        var table = await SparkyCli.RunAsync(["ls", .. server, "--search", "train-"]);
        Assert.Contains("train-ok", table.Stdout);
        Assert.DoesNotContain("eval-bad", table.Stdout);
    }

    [Fact]
    public async Task Ls_and_status_show_a_commands_terminal_sequences_and_markup_as_text()
    {
        await using var d = await TestDaemon.StartAsync();
        string[] server = ["--server", d.Daemon.Url];
        // A command that clears the screen and retitles the terminal if it were printed as is, and Spectre markup.
        var id = (await SparkyCli.RunAsync(["submit", .. server, "--name", "[bold]n[/]", "--", "true", "\u001b[2J\u001b]0;pwned\u0007", "[red]x[/]"], cwd: d.WorkDir)).Stdout.Trim();
        Assert.Equal(0, (await SparkyCli.RunAsync(["wait", .. server, id])).ExitCode);
        foreach (var args in new[] { new[] { "ls" }, ["status", id] })
        {
            var r = await SparkyCli.RunAsync([.. args, .. server], env: new Dictionary<string, string> { ["COLUMNS"] = "300" });
            Assert.True(r.ExitCode == 0, r.Stderr);
            Assert.DoesNotContain('\u001b', r.Stdout);
            Assert.DoesNotContain('\u0007', r.Stdout);
            Assert.Contains("\u241b[2J", r.Stdout); // ␛, visible
            Assert.Contains("[bold]n[/]", r.Stdout);
        }
    }

    [Fact]
    public async Task Cancel_stops_a_running_task_and_wait_reports_it()
    {
        await using var d = await TestDaemon.StartAsync();
        string[] server = ["--server", d.Daemon.Url];
        var id = (await SparkyCli.RunAsync(["submit", .. server, "--", "sleep", "60"])).Stdout.Trim();
        await Api.TaskLifecycleTests.WaitForAsync(async () => (string?)(await d.GetTaskAsync(id))["state"] == "running");
        var cancel = await SparkyCli.RunAsync(["cancel", .. server, id]);
        Assert.Equal(0, cancel.ExitCode);
        var wait = await SparkyCli.RunAsync(["wait", .. server, id]);
        Assert.Equal(130, wait.ExitCode);
        Assert.Equal("cancelled", (string?)(await d.GetTaskAsync(id))["state"]);
    }

    [Fact]
    public async Task Config_shows_each_setting_with_where_it_came_from_and_refuses_bad_values()
    {
        var dir = TestDaemon.NewRoot();
        File.WriteAllText(Path.Combine(dir, "sparky.toml"), "cpu_long_slots = 3\nhttp = \"127.0.0.1:7777\"\n");
        var env = new Dictionary<string, string> { ["SPARKY_MAX_QUEUED"] = "500", ["SPARKY_DATA"] = Path.Combine(dir, "data") };
        var r = await SparkyCli.RunAsync(["config", "--json", "--http", "127.0.0.1:8888"], env, cwd: dir);
        Assert.Equal(0, r.ExitCode);
        var c = JsonNode.Parse(r.Stdout)!;
        Assert.Equal(("127.0.0.1:8888", "flag"), ((string)c["http"]!["value"]!, (string)c["http"]!["source"]!));
        Assert.Equal(("500", "env"), ((string)c["max_queued"]!["value"]!, (string)c["max_queued"]!["source"]!));
        Assert.Equal(("3", "file"), ((string)c["cpu_long_slots"]!["value"]!, (string)c["cpu_long_slots"]!["source"]!));
        Assert.Equal("default", (string)c["gpu_slots"]!["source"]!);

        // A mode's preset sits below the file; the replaced system's variables are read as aliases.
        env["DSPY_MAX_CONCURRENCY"] = "7";
        var ws = JsonNode.Parse((await SparkyCli.RunAsync(["config", "--json", "--mode", "workstation"], env, cwd: dir)).Stdout)!;
        Assert.Equal(("workstation", "flag"), ((string)ws["mode"]!["value"]!, (string)ws["mode"]!["source"]!));
        Assert.Equal(("preset", "mode workstation"), ((string)ws["cpu_short_slots"]!["source"]!, (string)ws["cpu_short_slots"]!["origin"]!));
        Assert.Equal(("3", "file"), ((string)ws["cpu_long_slots"]!["value"]!, (string)ws["cpu_long_slots"]!["source"]!));
        Assert.Equal(("7", "DSPY_MAX_CONCURRENCY"), ((string)ws["max_concurrency"]!["value"]!, (string)ws["max_concurrency"]!["origin"]!));
        // auto is resolved to a real mode, with the reason shown.
        var auto = JsonNode.Parse((await SparkyCli.RunAsync(["config", "--json"], new Dictionary<string, string> { ["SPARKY_MODE"] = "auto" }, cwd: dir)).Stdout)!;
        Assert.Contains((string)auto["mode"]!["value"]!, new[] { "laptop", "workstation", "cluster" });
        Assert.StartsWith("SPARKY_MODE (auto: ", (string)auto["mode"]!["origin"]!);

        var bad = await SparkyCli.RunAsync(["config"], new Dictionary<string, string> { ["SPARKY_MAX_QUEUED"] = "many" }, cwd: dir);
        Assert.Equal(2, bad.ExitCode);
        Assert.Single(bad.Stderr.Trim().Split('\n'));
        Assert.Contains("max_queued", bad.Stderr);
        Assert.Contains("SPARKY_MAX_QUEUED", bad.Stderr);
        var badMode = await SparkyCli.RunAsync(["config"], new Dictionary<string, string> { ["DSPY_MODE"] = "turbo" }, cwd: dir);
        Assert.Equal(2, badMode.ExitCode);
        Assert.Contains("mode = 'turbo' from DSPY_MODE: allowed: laptop, workstation, cluster, auto", badMode.Stderr);
        Directory.Delete(dir, true);
    }

    [Fact]
    public async Task Serve_refuses_a_public_address_without_a_token()
    {
        var dir = TestDaemon.NewRoot();
        var r = await SparkyCli.RunAsync(["serve", "--data", Path.Combine(dir, "data"), "--http", $"0.0.0.0:{SparkyCli.FreePort()}"]);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("without a token", r.Stderr);
        Assert.Single(r.Stderr.Trim().Split('\n'));
        Directory.Delete(dir, true);
    }

    [Fact]
    public async Task Demo_runs_the_example_end_to_end_and_exits_zero()
    {
        var r = await SparkyCli.RunAsync(["demo"]);
        Assert.True(r.ExitCode == 0, r.Stdout + r.Stderr);
        Assert.Contains("demo passed: plan demo succeeded, 13 tasks; the flaky task took 2 attempts", r.Stdout);
        // The three phases passed their gates, the metric one included.
        foreach (var phase in new[] { "prepare", "process", "evaluate" }) Assert.Contains($"phase {phase} passed", r.Stdout);
        Assert.Contains("accuracy = 1.000 (>= 0.99)", r.Stdout);

        // Then a few sentences embedded, each with its nearest neighbour: the model comes from the NuGet package the build
        // restored (tests/Sparky.Embeddings.Tests), into a model cache of the test's own.
        Assert.Contains("each sentence's nearest neighbour", r.Stdout);
        var cache = Directory.CreateTempSubdirectory("sparky-models-").FullName;
        try
        {
            var json = await SparkyCli.RunAsync(["demo", "--json"], new Dictionary<string, string> { ["SPARKY_MODEL_CACHE"] = cache });
            Assert.Equal(0, json.ExitCode);
            var o = System.Text.Json.Nodes.JsonNode.Parse(json.Stdout)!;
            Assert.Equal("succeeded", (string?)o["plan"]!["status"]);
            Assert.Equal(13, ((System.Text.Json.Nodes.JsonArray)o["tasks"]!).Count);
            // The sentences come in pairs that mean the same (GPU memory, a cat by the window, sales up): each one's
            // nearest is its pair.
            var pairs = o["neighbours"]!.AsArray();
            Assert.Equal(6, pairs.Count);
            for (int i = 0; i < 6; i++) Assert.Equal((string?)pairs[i ^ 1]!["sentence"], (string?)pairs[i]!["nearest"]);
        }
        finally { Directory.Delete(cache, true); }
    }
}
