using System.Text.Json.Nodes;
using Sparky.IntegrationTests.Support;

namespace Sparky.IntegrationTests.Cli;

/// <summary>
/// `sparky submit` takes a quick path for the lines it reads without the command tree (QuickSubmit); `--server=URL`
/// is one it leaves to the tree. The same line both ways must queue the same task and fail with the same words.
/// </summary>
public sealed class QuickSubmitTests
{
    private static string[] Quick(string server, params string[] rest) => ["submit", "--server", server, .. rest];
    private static string[] Tree(string server, params string[] rest) => ["submit", $"--server={server}", .. rest];

    [Fact]
    public async Task The_quick_path_queues_the_task_the_command_tree_queues()
    {
        await using var d = await TestDaemon.StartAsync();
        string[] line = ["--name", "same", "--class", "cpu_long", "--retries", "2", "--timeout", "5m", "--after", "", "--json", "--", "sh", "-c", "exit 0"];
        var quick = await SparkyCli.RunAsync(Quick(d.Daemon.Url, line), cwd: d.WorkDir);
        var tree = await SparkyCli.RunAsync(Tree(d.Daemon.Url, line), cwd: d.WorkDir);
        Assert.Equal((0, ""), (quick.ExitCode, quick.Stderr));
        Assert.Equal((0, ""), (tree.ExitCode, tree.Stderr));

        var tasks = new List<JsonNode>();
        foreach (var r in new[] { quick, tree })
        {
            var answer = JsonNode.Parse(r.Stdout)!;
            Assert.EndsWith("\n", r.Stdout);
            var id = (string)answer["id"]!;
            Assert.Equal(id, (string?)answer["ids"]![0]);
            tasks.Add(JsonNode.Parse(await d.Http.GetStringAsync($"api/v1/tasks/{id}"))!);
        }
        foreach (var key in new[] { "name", "class", "command", "after", "retries", "timeout_seconds" })
            Assert.Equal(tasks[1][key]?.ToJsonString(), tasks[0][key]?.ToJsonString());
        Assert.Equal("same", (string?)tasks[0]["name"]);

        // Without --json: the id alone, one line.
        var plain = await SparkyCli.RunAsync(Quick(d.Daemon.Url, "true"), cwd: d.WorkDir);
        Assert.Equal(0, plain.ExitCode);
        Assert.Matches("^[0-9a-z]+\n$", plain.Stdout);
    }

    [Fact]
    public async Task A_refusal_a_wrong_token_and_a_missing_daemon_read_the_same_both_ways()
    {
        await using var d = await TestDaemon.StartAsync(new() { ["token"] = "s3cret" });
        var good = new Dictionary<string, string> { ["SPARKY_TOKEN"] = "s3cret" };
        var wrong = new Dictionary<string, string> { ["SPARKY_TOKEN"] = "wrong" };
        var down = $"http://127.0.0.1:{SparkyCli.FreePort()}";
        var cases = new (string Server, Dictionary<string, string> Env, string[] Line, int Exit, string Says)[]
        {
            (d.Daemon.Url, good, ["--after", "nosuch", "--", "true"], 1, "400 Bad Request: "),
            (d.Daemon.Url, wrong, ["--", "true"], 1, "401 Unauthorized"),
            (d.Daemon.Url, new(), ["--", "true"], 1, "401 Unauthorized"),
            (down, good, ["--", "true"], 1, "cannot reach the daemon at " + down),
            (d.Daemon.Url, good, ["--env", "NOEQUALS", "--", "true"], 2, "--env wants K=V"),
            (d.Daemon.Url, good, ["--timeout", "soon", "--", "true"], 2, "--timeout wants a duration"),
        };
        foreach (var (server, env, line, exit, says) in cases)
        {
            var quick = await SparkyCli.RunAsync(Quick(server, line), env, d.WorkDir);
            var tree = await SparkyCli.RunAsync(Tree(server, line), env, d.WorkDir);
            Assert.Equal((exit, ""), (quick.ExitCode, quick.Stdout));
            Assert.StartsWith("sparky: ", quick.Stderr);
            Assert.Contains(says, quick.Stderr);
            Assert.Equal(tree.Stderr, quick.Stderr);
            Assert.Equal(tree.ExitCode, quick.ExitCode);
        }
        using var list = await d.Http.SendAsync(new HttpRequestMessage(HttpMethod.Get, "api/v1/tasks") { Headers = { Authorization = new("Bearer", "s3cret") } });
        var queued = JsonNode.Parse(await list.Content.ReadAsStringAsync())!;
        Assert.Empty((JsonArray)queued["tasks"]!); // nothing refused was queued
    }
}
