using System.Text.Json.Nodes;
using Sparky.IntegrationTests.Support;

namespace Sparky.IntegrationTests.Deploy;

/// <summary>
/// The linux-arm64 native build, cross-compiled on this x64 machine (./native.sh --rid linux-arm64: clang for
/// aarch64-linux-gnu against Debian's arm64 cross sysroot): `file` says it is an aarch64 executable, and under
/// qemu-user it shows its help, runs the demo, and serves a daemon that runs the tasks its own CLI submits.
/// </summary>
[Trait("Needs", "arm64")] // test.sh runs these in a test process of their own once ./native.sh --rid linux-arm64 has built it
public sealed class ArmTests
{
    [Fact]
    public async Task The_arm64_build_is_an_aarch64_executable_that_shows_its_help_and_runs_the_demo()
    {
        var exe = await Arm64.ExeAsync();
        var kind = await ExternalTool.DescribeAsync(exe);
        Assert.Contains("ELF 64-bit LSB", kind);
        Assert.Contains("ARM aarch64", kind);
        Assert.True(File.Exists(Path.Combine(Path.GetDirectoryName(exe)!, "libe_sqlite3.so")), "the arm64 SQLite library is beside it");
        Assert.Contains("ARM aarch64", await ExternalTool.DescribeAsync(Path.Combine(Path.GetDirectoryName(exe)!, "libe_sqlite3.so")));

        var help = await Arm64.RunAsync(exe, ["--help"]);
        Assert.True(help.Code == 0 && help.Stdout.Contains("submit") && help.Stdout.Contains("serve"), help.Output);

        var cwd = TestDaemon.NewRoot();
        try
        {
            // With no model at hand the demo skips its embeddings: ONNX Runtime's arm64 library crashes (SIGSEGV) under
            // qemu-user on this x64 machine, so the arm64 embedding path is left to a real aarch64 host.
            var empty = Path.Combine(cwd, "no-models");
            var demo = await Arm64.RunAsync(exe, ["demo"], cwd, timeoutSeconds: 300,
                env: new Dictionary<string, string> { ["SPARKY_MODEL_CACHE"] = empty, ["NUGET_PACKAGES"] = empty });
            Assert.True(demo.Code == 0, demo.Output);
            Assert.Contains("demo passed", demo.Output);
            Assert.Contains("embeddings: skipped", demo.Output);
        }
        finally { Directory.Delete(cwd, true); }
    }

    [Fact]
    public async Task An_arm64_daemon_runs_the_tasks_its_cli_submits_and_stops_cleanly_on_SIGTERM()
    {
        var exe = await Arm64.ExeAsync();
        var root = TestDaemon.NewRoot();
        var work = Path.Combine(root, "work");
        try
        {
            var daemon = await DaemonProcess.StartBuildAsync(Arm64.Command(exe), Path.Combine(root, "data"), SparkyCli.FreePort());
            await using (daemon)
            {
                string[] server = ["--server", daemon.Url];
                var ids = new List<string>();
                foreach (var script in new[] { "echo one > one.txt", "echo two > two.txt", "printf %s \"$SPARKY_TASK_ID\" > three.txt", "exit 3" })
                {
                    var submitted = await Arm64.RunAsync(exe, ["submit", .. server, script], work);
                    Assert.True(submitted.Code == 0, submitted.Output);
                    ids.Add(submitted.Stdout.Trim());
                }

                var waited = await Arm64.RunAsync(exe, ["wait", .. server, .. ids, "--json"], work);
                Assert.True(waited.Code == 3, $"wait exits with the failing task's code:\n{waited.Output}");
                var states = ((JsonArray)JsonNode.Parse(waited.Stdout)!["tasks"]!).Select(t => (string?)t!["state"]).ToList();
                Assert.Equal(["succeeded", "succeeded", "succeeded", "failed"], states);
                Assert.Equal("one\n", File.ReadAllText(Path.Combine(work, "one.txt")));
                Assert.Equal("two\n", File.ReadAllText(Path.Combine(work, "two.txt")));
                Assert.Equal(ids[2], File.ReadAllText(Path.Combine(work, "three.txt")));

                var status = (await daemon.GetAsync($"api/v1/tasks/{ids[3]}"));
                Assert.Equal(3, (int?)status["exit_code"]);
                Assert.Equal(0, await daemon.StopAsync());
            }
        }
        finally { Directory.Delete(root, true); }
    }
}
