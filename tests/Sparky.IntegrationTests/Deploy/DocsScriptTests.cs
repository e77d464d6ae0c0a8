using Sparky.IntegrationTests.Support;

namespace Sparky.IntegrationTests.Deploy;

/// <summary>scripts/docs.sh (the justfile's `docs`): it writes the man page and the bash, zsh and fish completions, each
/// exactly what the sparky under test prints for it.</summary>
public sealed class DocsScriptTests
{
    [Fact]
    public async Task Docs_writes_the_man_page_and_the_completions_as_sparky_prints_them()
    {
        var dir = Path.Combine(Path.GetTempPath(), "sparky-docs-" + Guid.NewGuid().ToString("N")[..8]);
        try
        {
            var run = await ExternalTool.RunAsync(Path.Combine(SlurmCluster.RepoRoot(), "scripts", "docs.sh"), ["--out", dir],
                env: new Dictionary<string, string> { ["SPARKY"] = SparkyCli.CommandLine });
            Assert.True(run.Code == 0, run.Output);
            foreach (var (file, args) in new[] { ("sparky.1", new[] { "man" }), ("sparky.bash", ["completions", "bash"]), ("_sparky", ["completions", "zsh"]), ("sparky.fish", ["completions", "fish"]) })
            {
                var path = Path.Combine(dir, file);
                Assert.Contains(path, run.Stdout);
                var printed = await SparkyCli.RunAsync(args);
                Assert.Equal(0, printed.ExitCode);
                Assert.Equal(printed.Stdout, File.ReadAllText(path));
            }
            Assert.Contains("\n.TH SPARKY 1 ", "\n" + File.ReadAllText(Path.Combine(dir, "sparky.1")));
        }
        finally
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, true);
        }
    }
}
