using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Sparky.IntegrationTests.Support;
using Xunit.Abstractions;
using static Sparky.IntegrationTests.BadInput.BadInputSupport;

namespace Sparky.IntegrationTests.Outputs;

/// <summary>
/// Declared output artifacts (<c>artifacts.outputs</c>), as the replaced runner recorded them at the end of a run: each
/// one there with its size and <c>sha256:</c> checksum, on the task and in its done file; hashed off the engine's loop,
/// and owed across a kill -9.
/// </summary>
public sealed class ArtifactsTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Outputs_are_recorded_with_size_and_sha256_on_the_task_in_the_done_file_and_by_status()
    {
        await using var d = await TestDaemon.StartAsync();
        var abs = Path.Combine(d.Root, "elsewhere", "b.bin");
        // The runner's clients send the declaration inside payload; one relative path (from cwd), one absolute, one never written.
        var envelope = new JsonObject
        {
            ["id"] = "art-1",
            ["payload"] = new JsonObject
            {
                ["command"] = new JsonArray("/bin/sh", "-c",
                    $"mkdir -p out && printf 'hello artifacts' > out/a.txt && mkdir -p {Path.GetDirectoryName(abs)} && head -c 100000 /dev/urandom > {abs}"),
                ["cwd"] = d.WorkDir,
                ["artifacts"] = new JsonObject
                {
                    ["outputs"] = new JsonArray(
                        new JsonObject { ["path"] = "out/a.txt", ["type"] = "text", ["name"] = "greeting" },
                        new JsonObject { ["path"] = abs, ["type"] = "bin" },
                        new JsonObject { ["path"] = "out/never.json", ["type"] = "json", ["name"] = "absent" }),
                },
            },
        };
        await SubmitCompatibleAsync(d.Http, envelope);
        var done = Path.Combine(d.DataDir, "queue", "done", "art-1.json");
        Assert.True(await EventuallyAsync(() => Task.FromResult(File.Exists(done)), seconds: 30), "done/art-1.json never appeared");

        var task = await d.GetTaskAsync("art-1");
        output.WriteLine(task["artifacts"]!.ToJsonString());
        Assert.Equal("succeeded", (string?)task["state"]);
        var file = JsonNode.Parse(File.ReadAllText(done))!;
        foreach (var artifacts in new[] { task["artifacts"]!, file["artifacts"]! })
        {
            Assert.Equal("recorded", (string?)artifacts["state"]);
            var outs = (JsonArray)artifacts["outputs"]!;
            Assert.Equal(3, outs.Count);
            Expect(outs[0]!, "out/a.txt", "text", "greeting", Path.Combine(d.WorkDir, "out", "a.txt"));
            Expect(outs[1]!, abs, "bin", null, abs);
            Assert.Equal("out/never.json", (string?)outs[2]!["path"]);
            Assert.Equal("absent", (string?)outs[2]!["name"]);
            Assert.True((bool?)outs[2]!["missing"]);
            Assert.Null(outs[2]!["checksum"]);
        }
        // The done file keeps the envelope as sent (the declaration included) beside what was recorded.
        Assert.Equal(3, ((JsonArray)file["payload"]!["artifacts"]!["outputs"]!).Count);

        var status = await SparkyCli.RunAsync(["status", "--server", d.Daemon.Url, "art-1"], env: new Dictionary<string, string> { ["COLUMNS"] = "400" });
        output.WriteLine(status.Stdout);
        Assert.Equal(0, status.ExitCode);
        Assert.Contains(Sha256(Path.Combine(d.WorkDir, "out", "a.txt"))[..32], status.Stdout);
        Assert.Contains("out/never.json (absent) missing", status.Stdout);
    }

    /// <summary>Hashing is off the engine's loop: a task that depends on one with a large output starts (and ends) while
    /// that output is still being hashed, where hashing on the loop would hold its start until the hash was done.</summary>
    [Fact]
    public async Task A_large_output_being_hashed_holds_up_no_other_task()
    {
        await using var d = await TestDaemon.StartAsync();
        const long size = 300L << 20;
        var big = new JsonObject
        {
            ["id"] = "big",
            ["payload"] = new JsonObject
            {
                ["command"] = new JsonArray("truncate", "-s", size.ToString(), "big.bin"), // sparse: written at once, read at memory speed
                ["cwd"] = d.WorkDir,
            },
            ["artifacts"] = new JsonObject { ["outputs"] = new JsonArray(new JsonObject { ["path"] = "big.bin" }) },
        };
        await d.SubmitAsync(new JsonArray(big, new JsonObject { ["id"] = "next", ["after"] = new JsonArray("big"), ["payload"] = new JsonObject { ["command"] = new JsonArray("true") } }));

        Assert.True(await EventuallyAsync(async () => (string?)(await d.GetTaskAsync("big"))["artifacts"]?["state"] == "recorded", seconds: 60),
            "the large output's artifacts were never recorded");
        var a = await d.GetTaskAsync("big");
        var next = await d.WaitAsync("next");
        var recordedAt = DateTimeOffset.Parse((string)a["artifacts"]!["recorded_at"]!);
        var bigEnded = DateTimeOffset.Parse((string)a["finished_at"]!);
        var nextStarted = DateTimeOffset.Parse((string)next["started_at"]!);
        var nextEnded = DateTimeOffset.Parse((string)next["finished_at"]!);
        output.WriteLine($"big ended {bigEnded:HH:mm:ss.fff}; next started {nextStarted:HH:mm:ss.fff}, ended {nextEnded:HH:mm:ss.fff}; " +
            $"big's {size >> 20} MiB recorded {recordedAt:HH:mm:ss.fff} ({(recordedAt - bigEnded).TotalMilliseconds:0} ms after its end)");
        Assert.Equal("succeeded", (string?)next["state"]);
        Assert.True(nextEnded < recordedAt, "the next task did not start and end while the large output was hashed");
        var o = a["artifacts"]!["outputs"]![0]!;
        Assert.Equal(size, (long)o["size_bytes"]!);
        Assert.Equal(size, (long)o["size"]!);
        Assert.Equal("sha256:" + ZerosSha256(size), (string?)o["checksum"]);
    }

    /// <summary>kill -9 after the end is committed and before its artifacts are: the next start hashes what is owed, and
    /// only then writes the done file (which must carry them).</summary>
    [Fact]
    public async Task Artifacts_owed_at_a_kill_9_are_hashed_at_the_next_start_and_only_then_the_done_file_is_written()
    {
        var root = TestDaemon.NewRoot();
        var data = Path.Combine(root, "data");
        var work = Path.Combine(root, "work");
        int port = SparkyCli.FreePort();
        const long size = 320L << 20;
        var d = await DaemonProcess.StartAsync(data, port);
        try
        {
            var envelope = new JsonObject
            {
                ["id"] = "owed",
                ["payload"] = new JsonObject
                {
                    ["command"] = new JsonArray("truncate", "-s", size.ToString(), "big.bin"),
                    ["cwd"] = work,
                    ["artifacts"] = new JsonObject { ["outputs"] = new JsonArray(new JsonObject { ["path"] = "big.bin", ["name"] = "weights" }) },
                },
            };
            await SubmitCompatibleAsync(d.Http, envelope);
            // Killed as soon as the end is seen with its artifacts still pending: the hash of 320 MiB takes far longer
            // than a poll.
            string? seen = null;
            Assert.True(await EventuallyAsync(async () =>
            {
                var t = await d.GetAsync("api/v1/tasks/owed");
                seen = (string?)t["artifacts"]?["state"];
                return (string?)t["state"] == "succeeded";
            }, seconds: 30, pollMs: 2), "the task did not succeed");
            d.KillHard();
            await d.DisposeAsync();
            output.WriteLine($"killed with the artifacts {seen}");
            Assert.Equal("pending", seen);
            var done = Path.Combine(data, "queue", "done", "owed.json");
            Assert.False(File.Exists(done), "the done file was written before its artifacts were recorded");

            var restarted = Stopwatch.StartNew();
            d = await DaemonProcess.StartAsync(data, port);
            Assert.True(await EventuallyAsync(() => Task.FromResult(File.Exists(done)), seconds: 60), "the done file was not written after the restart");
            output.WriteLine($"done file written {restarted.ElapsedMilliseconds} ms after the restart began");
            var expected = "sha256:" + ZerosSha256(size);
            foreach (var artifacts in new[] { JsonNode.Parse(File.ReadAllText(done))!["artifacts"]!, (await d.GetAsync("api/v1/tasks/owed"))["artifacts"]! })
            {
                Assert.Equal("recorded", (string?)artifacts["state"]);
                var o = artifacts["outputs"]![0]!;
                Assert.Equal("weights", (string?)o["name"]);
                Assert.Equal(size, (long)o["size_bytes"]!);
                Assert.Equal(expected, (string?)o["checksum"]);
            }
        }
        finally
        {
            await d.DisposeAsync();
            try { Directory.Delete(root, true); } catch (IOException) { }
        }
    }

    /// <summary>The rule, not the replaced runner's (which answered a failed run with its error alone): the
    /// outputs that exist when the task ends are recorded whatever its outcome, and its done file carries them.</summary>
    [Fact]
    public async Task A_failed_task_has_its_outputs_recorded_too()
    {
        await using var d = await TestDaemon.StartAsync();
        var envelope = new JsonObject
        {
            ["id"] = "fails",
            ["payload"] = new JsonObject
            {
                ["command"] = new JsonArray("/bin/sh", "-c", "echo partial > out.txt; exit 3"),
                ["cwd"] = d.WorkDir,
            },
            ["artifacts"] = new JsonObject { ["outputs"] = new JsonArray(new JsonObject { ["path"] = "out.txt" }) },
        };
        await SubmitCompatibleAsync(d.Http, envelope);
        var done = Path.Combine(d.DataDir, "queue", "done", "fails.json");
        Assert.True(await EventuallyAsync(() => Task.FromResult(File.Exists(done)), seconds: 30), "done/fails.json never appeared");
        var task = await d.GetTaskAsync("fails");
        Assert.Equal("failed", (string?)task["state"]);
        var expected = "sha256:" + Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(Path.Combine(d.WorkDir, "out.txt"))));
        foreach (var artifacts in new[] { task["artifacts"]!, JsonNode.Parse(File.ReadAllText(done))!["artifacts"]! })
        {
            Assert.Equal("recorded", (string?)artifacts["state"]);
            var o = artifacts["outputs"]![0]!;
            Assert.Equal("out.txt", (string?)o["path"]);
            Assert.Equal(expected, (string?)o["checksum"]);
        }
    }

    private static void Expect(JsonNode o, string path, string? type, string? name, string file)
    {
        Assert.Equal(path, (string?)o["path"]);
        Assert.Equal(type, (string?)o["type"]);
        Assert.Equal(name, (string?)o["name"]);
        Assert.Equal(new FileInfo(file).Length, (long)o["size_bytes"]!);
        Assert.Equal("sha256:" + Sha256(file), (string?)o["checksum"]);
        Assert.Null(o["missing"]);
    }

    private static string Sha256(string file)
    {
        using var f = File.OpenRead(file);
        return Convert.ToHexStringLower(SHA256.HashData(f));
    }

    private static string ZerosSha256(long size)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var zeros = new byte[1 << 20];
        for (long left = size; left > 0; left -= zeros.Length) sha.AppendData(zeros, 0, (int)Math.Min(zeros.Length, left));
        return Convert.ToHexStringLower(sha.GetHashAndReset());
    }

    /// <summary>POST /queue/submit: the replaced system's door, whose tasks get a done file.</summary>
    internal static async Task SubmitCompatibleAsync(HttpClient http, JsonObject envelope)
    {
        using var resp = await http.PostAsync("queue/submit", new StringContent(envelope.ToJsonString(), Encoding.UTF8, "application/json"));
        Assert.True(resp.IsSuccessStatusCode, await resp.Content.ReadAsStringAsync());
    }
}
