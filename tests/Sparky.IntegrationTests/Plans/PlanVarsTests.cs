using System.Text.Json.Nodes;
using Sparky.IntegrationTests.Support;

namespace Sparky.IntegrationTests.Plans;

/// <summary><c>plan run FILE --var KEY=VALUE</c> and <c>POST /api/v1/plans</c> with <c>vars</c>: values for the plan's
/// <c>${KEY}</c>s in commands, env and cwd, over its own <c>vars:</c>, kept across a restart.</summary>
public sealed class PlanVarsTests
{
    private const string Plan = """
        name: vars
        vars: {out: default-out, greeting: hello}
        env: {GREETING: "${greeting}"}
        phases:
          - name: one
            workstreams:
              - name: write
                cwd: "${out}"
                run: echo "$GREETING ${who}" > said.txt
            gate:
              - file: "${out}/said.txt"
              - run: test "${who}" != 42
        """;

    [Fact]
    public async Task The_cli_substitutes_each_var_in_commands_env_and_cwd_and_names_an_undefined_one()
    {
        await using var d = await TestDaemon.StartAsync();
        var file = Path.Combine(d.WorkDir, "vars.yaml");
        await File.WriteAllTextAsync(file, Plan);
        Directory.CreateDirectory(Path.Combine(d.WorkDir, "custom"));
        var server = new[] { "--server", d.Daemon.Url };

        // ${who} has no default: without --var the file is refused before anything is sent, naming it.
        var refused = await SparkyCli.RunAsync(["plan", "run", file, .. server]);
        Assert.Equal(2, refused.ExitCode);
        Assert.Matches(@"vars\.yaml:\d+:\d+: undefined variable 'who'", refused.Stderr);
        using (var none = await d.Http.GetAsync("api/v1/plans/vars")) Assert.Equal(404, (int)none.StatusCode);

        var ok = await SparkyCli.RunAsync(["plan", "run", file, "--var", "out=custom", "--var", "who=world", "--var", "greeting=hi", .. server]);
        Assert.True(ok.ExitCode == 0, ok.Stdout + ok.Stderr);
        Assert.Equal("hi world\n", await File.ReadAllTextAsync(Path.Combine(d.WorkDir, "custom", "said.txt")));
        Assert.False(File.Exists(Path.Combine(d.WorkDir, "default-out", "said.txt")));
        var report = await PlanHttp.GetAsync(d.Http, "vars");
        Assert.Equal("world", (string?)report["vars"]!["who"]);

        var malformed = await SparkyCli.RunAsync(["plan", "run", file, "--var", "who", .. server]);
        Assert.Equal(2, malformed.ExitCode);
        Assert.Contains("--var wants KEY=VALUE, got 'who'", malformed.Stderr);
        var badName = await SparkyCli.RunAsync(["plan", "run", file, "--var", "9lives=x", .. server]);
        Assert.Equal(2, badName.ExitCode);
        Assert.Contains("'9lives'", badName.Stderr);
    }

    [Fact]
    public async Task The_api_takes_vars_refuses_an_undefined_one_and_a_restart_keeps_them()
    {
        var root = TestDaemon.NewRoot();
        try
        {
            Directory.CreateDirectory(Path.Combine(root, "work", "elsewhere"));
            await using (var d = await TestDaemon.StartAsync(root: root))
            {
                var (status, body) = await PlanHttp.PostAsync(d.Http, Plan, d.WorkDir, new JsonObject { ["out"] = "default-out" });
                Assert.Equal(400, status);
                Assert.Contains("undefined variable 'who'", (string?)body!["detail"]);
                (status, body) = await PlanHttp.PostAsync(d.Http, Plan, d.WorkDir, new JsonObject { ["who"] = new JsonArray() });
                Assert.Equal(400, status);
                Assert.Contains("vars.who", (string?)body!["detail"]);

                // The gate refuses who=42: the plan stops, and stays stored with its vars.
                (status, _) = await PlanHttp.PostAsync(d.Http, Plan, d.WorkDir, new JsonObject { ["out"] = "missing", ["who"] = 42 });
                Assert.Equal(202, status);
                var stopped = await PlanHttp.EndAsync(d.Http, "vars");
                Assert.Equal("stopped", (string?)stopped["status"]);
                Assert.Equal("42", (string?)stopped["vars"]!["who"]);
            }
            // The stored text alone does not parse (who has no default): the row must bring its vars back.
            await using (var d = await TestDaemon.StartAsync(root: root))
            {
                var again = await PlanHttp.GetAsync(d.Http, "vars");
                Assert.Equal("stopped", (string?)again["status"]);
                Assert.Equal("missing", (string?)again["vars"]!["out"]);

                var (status, _) = await PlanHttp.PostAsync(d.Http, Plan, d.WorkDir, new JsonObject { ["out"] = "elsewhere", ["who"] = "you" });
                Assert.Equal(202, status);
                Assert.Equal("succeeded", (string?)(await PlanHttp.EndAsync(d.Http, "vars"))["status"]);
                Assert.Equal("hello you\n", await File.ReadAllTextAsync(Path.Combine(d.WorkDir, "elsewhere", "said.txt")));
            }
        }
        finally { try { Directory.Delete(root, true); } catch (IOException) { } }
    }
}
