using Sparky.IntegrationTests.Support;

namespace Sparky.IntegrationTests.Deploy;

/// <summary>
/// scripts/package.sh on this machine's native build: the .deb is clean under lintian (no error, no warning) and holds
/// the executable without debug symbols, the systemd units, the man page and the completions; unpacked, it runs; the
/// tarball matches its SHA-256 file and runs from wherever it is unpacked.
/// </summary>
public sealed class PackageTests
{
    [Fact]
    public async Task The_deb_is_lintian_clean_and_holds_what_it_should_and_the_tarball_runs_where_it_is_unpacked()
    {
        var root = SlurmCluster.RepoRoot();
        var dir = Path.Combine(Path.GetTempPath(), "sparky-packages-" + Guid.NewGuid().ToString("N")[..8]);
        try
        {
            var built = await RunAsync(Path.Combine(root, "scripts", "package.sh"), ["--out", dir], timeoutSeconds: 900);
            Assert.True(built.Code == 0, built.Output);
            var deb = Directory.GetFiles(dir, "*.deb").Single();
            var tarball = Directory.GetFiles(dir, "*.tar.gz").Single();

            var lintian = await RunAsync(Tool("lintian"), ["--tag-display-limit", "0", "--fail-on", "error,warning", deb]);
            var tags = lintian.Stdout.Split('\n').Where(l => l.StartsWith("E:") || l.StartsWith("W:")).ToList();
            Assert.True(lintian.Code == 0 && tags.Count == 0, $"lintian:\n{lintian.Output}");

            var files = (await RunAsync("dpkg-deb", ["-c", deb])).Stdout;
            foreach (var path in new[] { "./usr/bin/sparky -> ../lib/sparky/sparky", "./usr/lib/sparky/libe_sqlite3.so", "./lib/systemd/system/sparky.service",
                         "./usr/lib/systemd/user/sparky.service", "./usr/lib/sysusers.d/sparky.conf", "./usr/share/man/man1/sparky.1.gz",
                         "./usr/share/bash-completion/completions/sparky", "./usr/share/zsh/vendor-completions/_sparky",
                         "./usr/share/fish/vendor_completions.d/sparky.fish", "./usr/share/doc/sparky/copyright" })
                Assert.Contains(path, files);
            Assert.DoesNotContain(".dbg", files);
            Assert.DoesNotContain(".pdb", files);

            var unpacked = Path.Combine(dir, "root");
            Assert.Equal(0, (await RunAsync("dpkg-deb", ["-x", deb, unpacked])).Code);
            var help = await RunAsync(Path.Combine(unpacked, "usr", "bin", "sparky"), ["--help"]);
            Assert.True(help.Code == 0 && help.Stdout.Contains("submit"), help.Output);

            var sum = await RunAsync("sha256sum", ["-c", Path.GetFileName(tarball) + ".sha256"], cwd: dir);
            Assert.True(sum.Code == 0, sum.Output);
            var elsewhere = Path.Combine(dir, "elsewhere");
            Directory.CreateDirectory(elsewhere);
            Assert.Equal(0, (await RunAsync("tar", ["-xzf", tarball, "-C", elsewhere])).Code);
            var version = await RunAsync(Directory.GetFiles(elsewhere, "sparky", SearchOption.AllDirectories).Single(f => f.EndsWith("/bin/sparky")), ["--version"]);
            Assert.True(version.Code == 0, version.Output);
        }
        finally
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, true);
        }
    }

    private static string Tool(string name) => ExternalTool.Find(name, name);

    private static Task<ExternalTool.Result> RunAsync(string program, string[] args, string? cwd = null, double timeoutSeconds = 120) =>
        ExternalTool.RunAsync(program, args, cwd, timeoutSeconds: timeoutSeconds);
}
