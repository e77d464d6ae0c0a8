using Sparky.IntegrationTests.Support;

namespace Sparky.IntegrationTests.Deploy;

/// <summary>
/// scripts/package.sh for each architecture, from this machine's native build (amd64) and from the cross-compiled
/// linux-arm64 build (arm64): the .deb is clean under lintian (no error, no warning), is of that architecture and
/// holds its executable without debug symbols, the systemd units, the man page and the completions; unpacked, it runs
/// (the arm64 one under qemu-user); the tarball matches its SHA-256 file and runs from wherever it is unpacked.
/// </summary>
public sealed class PackageTests
{
    [Fact]
    public Task The_amd64_deb_is_lintian_clean_and_holds_what_it_should_and_the_tarball_runs_where_it_is_unpacked() => CheckAsync("amd64");

    [Fact, Trait("Needs", "arm64")]
    public Task The_arm64_deb_is_lintian_clean_and_holds_what_it_should_and_the_tarball_runs_where_it_is_unpacked() => CheckAsync("arm64");

    private static async Task CheckAsync(string arch)
    {
        var root = SlurmCluster.RepoRoot();
        var dir = Path.Combine(Path.GetTempPath(), "sparky-packages-" + Guid.NewGuid().ToString("N")[..8]);
        try
        {
            var built = await RunAsync(Path.Combine(root, "scripts", "package.sh"), ["--out", dir, "--arch", arch, "--fast"], timeoutSeconds: 900);
            Assert.True(built.Code == 0, built.Output);
            var deb = Directory.GetFiles(dir, "*.deb").Single();
            var tarball = Directory.GetFiles(dir, "*.tar.gz").Single();

            var lintian = await RunAsync(Tool("lintian"), ["--tag-display-limit", "0", "--fail-on", "error,warning", deb]);
            var tags = lintian.Stdout.Split('\n').Where(l => l.StartsWith("E:") || l.StartsWith("W:")).ToList();
            Assert.True(lintian.Code == 0 && tags.Count == 0, $"lintian:\n{lintian.Output}");

            var files = (await RunAsync("dpkg-deb", ["-c", deb])).Stdout;
            foreach (var path in new[] { "./usr/bin/sparky -> ../lib/sparky/sparky", "./usr/lib/sparky/sparky-quick", "./usr/lib/sparky/libe_sqlite3.so", "./usr/lib/sparky/libonnxruntime.so", "./lib/systemd/system/sparky.service",
                         "./usr/lib/systemd/user/sparky.service", "./usr/lib/sysusers.d/sparky.conf", "./usr/share/man/man1/sparky.1.gz",
                         "./usr/share/bash-completion/completions/sparky", "./usr/share/zsh/vendor-completions/_sparky",
                         "./usr/share/fish/vendor_completions.d/sparky.fish", "./usr/share/doc/sparky/copyright" })
                Assert.Contains(path, files);
            Assert.DoesNotContain(".dbg", files);
            Assert.DoesNotContain(".pdb", files);
            Assert.Equal(arch, (await RunAsync("dpkg-deb", ["--field", deb, "Architecture"])).Stdout.Trim());
            // .NET's cryptography loads OpenSSL at run time: no ELF entry names it, the package must.
            Assert.Contains("libssl3", (await RunAsync("dpkg-deb", ["--field", deb, "Depends"])).Stdout);
            Assert.EndsWith($"-{(arch == "arm64" ? "linux-arm64" : "linux-x64")}.tar.gz", tarball);

            var unpacked = Path.Combine(dir, "root");
            Assert.Equal(0, (await RunAsync("dpkg-deb", ["-x", deb, unpacked])).Code);
            foreach (var name in new[] { "sparky", "sparky-quick" })
            {
                var binary = await ExternalTool.DescribeAsync(Path.Combine(unpacked, "usr", "lib", "sparky", name));
                Assert.Contains(arch == "arm64" ? "ARM aarch64" : "x86-64", binary);
                Assert.Contains("stripped", binary);
                Assert.DoesNotContain("not stripped", binary);
            }
            var help = await RunSparkyAsync(arch, Path.Combine(unpacked, "usr", "bin", "sparky"), ["--help"]);
            Assert.True(help.Code == 0 && help.Stdout.Contains("submit"), help.Output);

            var sum = await RunAsync("sha256sum", ["-c", Path.GetFileName(tarball) + ".sha256"], cwd: dir);
            Assert.True(sum.Code == 0, sum.Output);
            var elsewhere = Path.Combine(dir, "elsewhere");
            Directory.CreateDirectory(elsewhere);
            Assert.Equal(0, (await RunAsync("tar", ["-xzf", tarball, "-C", elsewhere])).Code);
            var version = await RunSparkyAsync(arch, Directory.GetFiles(elsewhere, "sparky", SearchOption.AllDirectories).Single(f => f.EndsWith("/bin/sparky")), ["--version"]);
            Assert.True(version.Code == 0, version.Output);
        }
        finally
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, true);
        }
    }

    private static string Tool(string name) => ExternalTool.Find(name, name);

    /// <summary>A packaged sparky: this machine's directly, the arm64 one as <see cref="Arm64"/> runs it.</summary>
    private static Task<ExternalTool.Result> RunSparkyAsync(string arch, string exe, string[] args) =>
        arch == "arm64" ? Arm64.RunAsync(exe, args) : RunAsync(exe, args);

    private static Task<ExternalTool.Result> RunAsync(string program, string[] args, string? cwd = null, double timeoutSeconds = 120) =>
        ExternalTool.RunAsync(program, args, cwd, timeoutSeconds: timeoutSeconds);
}
