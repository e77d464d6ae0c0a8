using System.Text.Json.Nodes;
using Sparky.Execution.Processes;
using Sparky.IntegrationTests.Support;
using Xunit.Abstractions;

namespace Sparky.IntegrationTests.Hardening;

/// <summary>
/// Issue 13, point 1: an attempt's cgroup holds it to the memory it asked for (<c>--mem</c>) and tells its memory and
/// CPU use. A task that goes over is killed by the kernel and fails <c>out_of_memory</c>, saying so in its log; one
/// that stays under succeeds; each attempt records its peak memory and CPU time. Real processes, real cgroups
/// (cgroup v2 where the memory controller is delegated, else the host's cgroup v1 memory hierarchy, as on this VM).
/// </summary>
[Collection(SerialCollection.Name)]
public sealed class MemoryLimitTests(ITestOutputHelper output)
{
    /// <summary>A program that fills <paramref name="mib"/> MiB with written bytes (so every page is charged) and holds them.</summary>
    private static JsonArray Fill(int mib) => ["python3", "-c", $"import time; s = b'x' * ({mib} << 20); time.sleep(0.2); print(len(s))"];

    private static JsonObject Task(TestDaemon d, JsonArray command, long? memoryMb) => new()
    {
        ["payload"] = new JsonObject
        {
            ["command"] = command, ["cwd"] = d.WorkDir,
            ["resources"] = memoryMb is { } m ? new JsonObject { ["memory_mb"] = m } : null,
        },
    };

    /// <summary>True if memory can be held here; otherwise says why, and fails under CI as root (the CI machine has a
    /// memory controller: v1 on this project's VMs), so the check never passes in silence.</summary>
    internal static bool MemoryHeld(Containment c, ITestOutputHelper output)
    {
        output.WriteLine($"containment: {c.Mode}");
        if (c.Memory.Where != MemoryControl.Kind.None) return true;
        Assert.False(Environment.GetEnvironmentVariable("CI") == "true" && Environment.UserName == "root",
            $"CI as root should hold memory by cgroup, got {c.Mode}");
        output.WriteLine("no memory controller here: the limit is not checked");
        return false;
    }

    [Fact]
    public async Task A_task_over_its_memory_fails_out_of_memory_and_one_under_it_succeeds_each_with_its_peak()
    {
        await using var d = await TestDaemon.StartAsync();
        if (!MemoryHeld(d.Daemon.Engine.Containment, output)) return;

        var over = (await d.SubmitAsync(Task(d, Fill(256), memoryMb: 64)))[0];
        var under = (await d.SubmitAsync(Task(d, Fill(64), memoryMb: 512)))[0];

        var o = await d.WaitAsync(over, 60);
        Assert.Equal("failed", (string?)o["state"]);
        Assert.Equal("out_of_memory", (string?)o["reason"]);
        var oa = o["attempt_list"]![0]!;
        long overPeak = (long)oa["mem_peak_bytes"]!;
        output.WriteLine($"over: exit {oa["exit_code"]} signal {oa["signal"]}, peak {overPeak >> 20} MiB");
        // Held at its limit: it never had more than the 64 MiB it asked for (and had some of it).
        Assert.InRange(overPeak, 8L << 20, 64L << 20);
        var log = await d.Http.GetStringAsync($"api/v1/tasks/{over}/logs?stream=stderr");
        Assert.Contains("OOM killer", log);
        Assert.Contains("64 MiB", log);

        var u = await d.WaitAsync(under, 60);
        Assert.Equal("succeeded", (string?)u["state"]);
        var ua = u["attempt_list"]![0]!;
        long underPeak = (long)ua["mem_peak_bytes"]!;
        output.WriteLine($"under: peak {underPeak >> 20} MiB, cpu {ua["cpu_ms"]} ms");
        Assert.InRange(underPeak, 64L << 20, 512L << 20);
        if (d.Daemon.Engine.Containment.CgroupRoot is not null) Assert.True((long?)ua["cpu_ms"] > 0, "a cgroup tells the attempt's CPU time");
    }

    [Fact]
    public async Task With_enforce_memory_off_a_task_may_go_over_what_it_asked_for()
    {
        await using var d = await TestDaemon.StartAsync(new() { ["enforce_memory"] = "false" });
        Assert.Equal(MemoryControl.Kind.None, d.Daemon.Engine.Containment.Memory.Where);
        var id = (await d.SubmitAsync(Task(d, Fill(128), memoryMb: 32)))[0];
        var t = await d.WaitAsync(id, 60);
        Assert.Equal("succeeded", (string?)t["state"]);
    }

    /// <summary>The memory cgroup a process is in, as a folder: its cgroup v1 memory line, else its cgroup v2 one.</summary>
    private static string MemoryCgroupOf(int pid)
    {
        var lines = File.ReadAllLines($"/proc/{pid}/cgroup").Select(l => l.Split(':', 3)).ToList();
        var v1 = lines.FirstOrDefault(p => p[1].Split(',').Contains("memory"));
        return v1 is not null ? "/sys/fs/cgroup/memory" + v1[2] : (Directory.Exists("/sys/fs/cgroup/unified") ? "/sys/fs/cgroup/unified" : "/sys/fs/cgroup") + lines.First(p => p[0] == "0")[2];
    }

    [Fact]
    public async Task A_restarted_daemon_ends_a_killed_ones_attempt_and_removes_its_memory_cgroup()
    {
        await using (var probe = await TestDaemon.StartAsync())
            if (!MemoryHeld(probe.Daemon.Engine.Containment, output)) return;
        var root = TestDaemon.NewRoot();
        var data = Path.Combine(root, "data");
        var work = Path.Combine(root, "work");
        Directory.CreateDirectory(work);
        int port = SparkyCli.FreePort();
        var d = await DaemonProcess.StartAsync(data, port);
        try
        {
            var body = new JsonObject
            {
                ["payload"] = new JsonObject
                {
                    ["command"] = $"sh -c 'echo $$ > {work}/task.pid; exec sleep 300'", ["cwd"] = work,
                    ["resources"] = new JsonObject { ["memory_mb"] = 64 },
                },
            };
            string id;
            using (var resp = await d.Http.PostAsync("api/v1/tasks", new StringContent(body.ToJsonString(), System.Text.Encoding.UTF8, "application/json")))
            {
                Assert.True(resp.IsSuccessStatusCode);
                id = (string)JsonNode.Parse(await resp.Content.ReadAsStringAsync())!["ids"]![0]!;
            }
            var pidFile = Path.Combine(work, "task.pid");
            var deadline = DateTime.UtcNow.AddSeconds(20);
            while (!File.Exists(pidFile) || !int.TryParse(File.ReadAllText(pidFile).Trim(), out _))
            {
                Assert.True(DateTime.UtcNow < deadline, "the task never started");
                await System.Threading.Tasks.Task.Delay(20);
            }
            int pid = int.Parse(File.ReadAllText(pidFile).Trim());
            // Recorded as started (the store commits starts in groups): the next daemon then finds the attempt lost, not
            // still queued (which would run it again, in a cgroup of the same name).
            while ((string?)(await d.GetAsync($"api/v1/tasks/{id}"))["state"] != "running")
            {
                Assert.True(DateTime.UtcNow < deadline, "the start was never recorded");
                await System.Threading.Tasks.Task.Delay(20);
            }
            var cgroup = MemoryCgroupOf(pid);
            output.WriteLine($"task {pid} in {cgroup}");
            // Held to what it asked for, by the kernel.
            var limitFile = File.Exists(Path.Combine(cgroup, "memory.limit_in_bytes")) ? "memory.limit_in_bytes" : "memory.max";
            Assert.Equal((64L << 20).ToString(), File.ReadAllText(Path.Combine(cgroup, limitFile)).Trim());

            d.KillHard();
            d = await DaemonProcess.StartAsync(data, port);
            // The next daemon on the same data dir ends the lost attempt and removes its cgroup.
            deadline = DateTime.UtcNow.AddSeconds(20);
            while (Directory.Exists(cgroup) || File.Exists($"/proc/{pid}/cmdline") && !File.ReadAllText($"/proc/{pid}/stat").Split(") ")[1].StartsWith('Z'))
            {
                Assert.True(DateTime.UtcNow < deadline, $"after a restart, {cgroup} is still there or task {pid} still runs");
                await System.Threading.Tasks.Task.Delay(50);
            }
        }
        finally
        {
            await d.DisposeAsync();
        }
    }
}
