using Sparky.IntegrationTests.Support;

namespace Sparky.IntegrationTests.Deploy;

/// <summary>
/// The native sparky hands a `submit` line to sparky-quick, the small executable beside it (src/Sparky.Quick), before
/// its own runtime starts (Native/quick.c); sparky-quick runs the lines it takes and hands the rest back. Each is
/// checked in a folder of its own holding copies of the native build: which line is handed over, with its arguments;
/// a line handed back runs as before (no loop); without sparky-quick, sparky runs the line itself.
/// </summary>
public sealed class QuickExecutableTests
{
    [Fact]
    public async Task A_submit_line_goes_to_the_sparky_quick_beside_it_with_its_arguments_and_no_other_line_does()
    {
        var dir = await CopyOfTheNativeBuildAsync(withQuick: false);
        try
        {
            // A stand-in that says what it was given: the hand-over is an exec, so its output and code are the call's.
            var quick = Path.Combine(dir, "sparky-quick");
            File.WriteAllText(quick, "#!/bin/sh\necho \"quick got: $*\"\nexit 7\n");
            File.SetUnixFileMode(quick, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            var sparky = Path.Combine(dir, "sparky");

            var submit = await ExternalTool.RunAsync(sparky, ["submit", "--name", "a b", "--", "true"]);
            Assert.Equal((7, "quick got: submit --name a b -- true\n"), (submit.Code, submit.Stdout));
            foreach (var line in new[] { new[] { "--version" }, ["ls", "--help"], ["serve", "--help"] })
            {
                var other = await ExternalTool.RunAsync(sparky, line);
                Assert.True(other.Code == 0 && !other.Output.Contains("quick got"), other.Output);
            }
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public async Task Sparky_quick_hands_back_what_it_does_not_take_and_without_it_sparky_submits_itself()
    {
        await using var d = await TestDaemon.StartAsync();
        var withQuick = await CopyOfTheNativeBuildAsync(withQuick: true);
        var alone = await CopyOfTheNativeBuildAsync(withQuick: false);
        try
        {
            var server = new[] { "--server", d.Daemon.Url };
            // Taken by sparky-quick: the id.
            var quick = await ExternalTool.RunAsync(Path.Combine(withQuick, "sparky"), ["submit", .. server, "--", "true"], cwd: d.WorkDir);
            Assert.True(quick.Code == 0 && quick.Stdout.Trim().Length == 11, quick.Output);
            // Not taken (--wait): handed back to sparky, whose command tree waits and returns the task's own code.
            var waited = await ExternalTool.RunAsync(Path.Combine(withQuick, "sparky"), ["submit", "--wait", .. server, "--", "sh", "-c", "exit 4"], cwd: d.WorkDir);
            Assert.True(waited.Code == 4, waited.Output);
            Assert.Contains("failed", waited.Stdout);
            // sparky-quick called by itself with another verb: handed to the sparky beside it.
            var listed = await ExternalTool.RunAsync(Path.Combine(withQuick, "sparky-quick"), ["ls", .. server]);
            Assert.True(listed.Code == 0 && listed.Stdout.Contains(quick.Stdout.Trim()), listed.Output);
            // No sparky-quick beside it: sparky runs the submit itself.
            var itself = await ExternalTool.RunAsync(Path.Combine(alone, "sparky"), ["submit", .. server, "--", "true"], cwd: d.WorkDir);
            Assert.True(itself.Code == 0 && itself.Stdout.Trim().Length == 11, itself.Output);
        }
        finally
        {
            Directory.Delete(withQuick, true);
            Directory.Delete(alone, true);
        }
    }

    /// <summary>The native sparky (the suite's, or ./native.sh's) copied into a new folder, with or without its sparky-quick.</summary>
    private static async Task<string> CopyOfTheNativeBuildAsync(bool withQuick)
    {
        var exe = SparkyCli.NativeExe;
        if (exe is null)
        {
            var built = await ExternalTool.RunAsync(Path.Combine(SlurmCluster.RepoRoot(), "native.sh"), [], timeoutSeconds: 900);
            Assert.True(built.Code == 0, "./native.sh failed:\n" + built.Output);
            exe = built.Stdout.Trim();
        }
        var from = Path.GetDirectoryName(exe)!;
        var dir = Directory.CreateTempSubdirectory("sparky-quick-").FullName;
        foreach (var name in withQuick ? new[] { "sparky", "sparky-quick", "libe_sqlite3.so" } : ["sparky", "libe_sqlite3.so"])
            File.Copy(Path.Combine(from, name), Path.Combine(dir, name));
        return dir;
    }
}
