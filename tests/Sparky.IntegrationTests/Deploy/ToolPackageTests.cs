using System.IO.Compression;
using Sparky.IntegrationTests.Support;
using Xunit.Abstractions;

namespace Sparky.IntegrationTests.Deploy;

/// <summary>
/// scripts/pack.sh: the package `dotnet tool install` picks from (Sparky) points to the native packages for linux-x64
/// and linux-arm64 and to the framework-dependent one for every other platform; none carries debug symbols (.dbg,
/// .pdb) nor what no tool can load (phone runtimes, import libraries); installed from them, this x64 machine gets the x64 native executable, which runs; the arm64 package's
/// executable runs under qemu-user.
/// </summary>
[Trait("Needs", "arm64")] // test.sh runs these in a test process of their own once ./native.sh --rid linux-arm64 has built it
public sealed class ToolPackageTests(ITestOutputHelper output)
{
    [Fact]
    public async Task The_tool_packages_carry_no_debug_symbols_and_hold_the_native_builds_for_x64_and_arm64_that_install_and_run()
    {
        var dir = Path.Combine(Path.GetTempPath(), "sparky-tool-" + Guid.NewGuid().ToString("N")[..8]);
        try
        {
            var packed = await ExternalTool.RunAsync(Path.Combine(SlurmCluster.RepoRoot(), "scripts", "pack.sh"), ["--out", dir], timeoutSeconds: 900);
            Assert.True(packed.Code == 0, packed.Output);
            var version = Path.GetFileNameWithoutExtension(Directory.GetFiles(dir, "Sparky.linux-x64.*.nupkg").Single())["Sparky.linux-x64.".Length..];

            foreach (var (id, rid, machine) in new[] { ("Sparky", "", ""), ("Sparky.linux-x64", "linux-x64", "x86-64"), ("Sparky.linux-arm64", "linux-arm64", "aarch64"), ("Sparky.any", "any", "") })
            {
                var nupkg = Path.Combine(dir, $"{id}.{version}.nupkg");
                Assert.True(File.Exists(nupkg), $"pack.sh made {nupkg}");
                output.WriteLine($"{Path.GetFileName(nupkg)}: {new FileInfo(nupkg).Length / 1048576.0:F1} MiB");
                using var zip = ZipFile.OpenRead(nupkg);
                var symbols = zip.Entries.Where(e => e.FullName.EndsWith(".dbg") || e.FullName.EndsWith(".pdb")).Select(e => e.FullName).ToList();
                Assert.True(symbols.Count == 0, $"{id} carries debug symbols: {string.Join(", ", symbols)}");
                // Nothing a tool cannot load: ONNX Runtime's phone packages and Windows import libraries (166 MB).
                var unloadable = zip.Entries.Where(e => e.FullName.EndsWith(".lib") || e.FullName.Contains("/runtimes/ios") || e.FullName.Contains("/runtimes/android")).Select(e => e.FullName).ToList();
                Assert.True(unloadable.Count == 0, $"{id} carries what no tool loads: {string.Join(", ", unloadable)}");
                if (machine != "")
                    foreach (var exe in new[] { "sparky", "sparky-quick" }) // sparky hands `submit` to sparky-quick beside it
                        Assert.Equal(machine, ElfMachine(zip.GetEntry($"tools/any/{rid}/{exe}") ?? throw new Xunit.Sdk.XunitException($"{id} holds no {exe}")));
                if (id == "Sparky")
                {
                    using var reader = new StreamReader(zip.Entries.Single(e => e.Name == "DotnetToolSettings.xml").Open());
                    var settings = await reader.ReadToEndAsync();
                    foreach (var r in new[] { "linux-x64", "linux-arm64", "any" })
                        Assert.Contains($"RuntimeIdentifier=\"{r}\" Id=\"Sparky.{r}\"", settings);
                }
            }

            // Installed from the packages just made alone (a NuGet.config of that folder, a package cache of the test's
            // own), this x64 machine gets the x64 native executable.
            var config = Path.Combine(dir, "nuget.config");
            File.WriteAllText(config, $"""<configuration><packageSources><clear /><add key="local" value="{dir}" /></packageSources></configuration>""");
            var toolPath = Path.Combine(dir, "tools");
            var installed = await ExternalTool.RunAsync("dotnet", ["tool", "install", "Sparky", "--version", version, "--tool-path", toolPath, "--configfile", config],
                env: new Dictionary<string, string> { ["NUGET_PACKAGES"] = Path.Combine(dir, "cache") }, timeoutSeconds: 300);
            Assert.True(installed.Code == 0, installed.Output);
            var sparky = Path.Combine(toolPath, "sparky");
            Assert.Contains("x86-64", await ExternalTool.DescribeAsync(sparky));
            var ran = await ExternalTool.RunAsync(sparky, ["--version"]);
            Assert.True(ran.Code == 0 && ran.Stdout.StartsWith(version), ran.Output);

            // What an arm64 machine gets: `dotnet tool install --arch arm64` cannot stand in for one here (on Linux the
            // SDK refuses every --arch: dotnet/sdk#29074), so the pointer's linux-arm64 entry (above) and that package's
            // executable, unpacked as the install does and run under qemu-user.
            var arm = Path.Combine(dir, "arm64");
            using (var zip = ZipFile.OpenRead(Path.Combine(dir, $"Sparky.linux-arm64.{version}.nupkg")))
                foreach (var entry in zip.Entries.Where(e => e.FullName.StartsWith("tools/any/linux-arm64/")))
                    entry.ExtractToFile(Path.Combine(Directory.CreateDirectory(arm).FullName, entry.Name));
            File.SetUnixFileMode(Path.Combine(arm, "sparky"), UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            var armRan = await Arm64.RunAsync(Path.Combine(arm, "sparky"), ["--version"]);
            Assert.True(armRan.Code == 0 && armRan.Stdout.StartsWith(version), armRan.Output);
        }
        finally
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, true);
        }
    }

    /// <summary>The ELF header's machine (e_machine, at byte 18): the architecture a native executable is for.</summary>
    private static string ElfMachine(ZipArchiveEntry entry)
    {
        using var s = entry.Open();
        var header = new byte[20];
        s.ReadExactly(header);
        Assert.True(header[..4].SequenceEqual(new byte[] { 0x7f, (byte)'E', (byte)'L', (byte)'F' }), $"{entry.FullName} is an ELF executable");
        return BitConverter.ToUInt16(header, 18) switch { 0x3e => "x86-64", 0xb7 => "aarch64", var m => $"machine 0x{m:x}" };
    }
}
