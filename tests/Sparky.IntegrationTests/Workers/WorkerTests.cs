using System.Text.Json.Nodes;
using Sparky.IntegrationTests.Support;

namespace Sparky.IntegrationTests.Workers;

/// <summary>
/// <c>sparky worker</c> processes on loopback pulling tasks from a daemon over ZeroMQ: several at once, one killed -9
/// mid-task, one restarted under its name, a daemon restarted under its workers, and a worker the daemon refuses.
/// </summary>
[Collection(SerialCollection.Name)] // workers on this host: one class at a time (see SerialCollection)
public sealed class WorkerTests
{
    /// <summary>Worker classes, a fast heartbeat, and a timeout long enough that no worker is lost for a stall on a
    /// loaded machine; a test of a loss names a short one.</summary>
    internal static Dictionary<string, string> WorkerSettings(double timeout = 30) => new()
    {
        ["worker_classes"] = "cpu_short",
        ["worker_heartbeat"] = "0.2",
        ["worker_timeout"] = timeout.ToString(System.Globalization.CultureInfo.InvariantCulture),
    };

    private static async Task WaitForWorkersAsync(HttpClient http, int n, double seconds = 30)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        string last = "";
        while (DateTime.UtcNow < deadline)
        {
            last = (await http.GetStringAsync("metrics")).Split('\n').FirstOrDefault(l => l.StartsWith("sparky_workers_connected ")) ?? "";
            if (last == $"sparky_workers_connected {n}") return;
            await Task.Delay(50);
        }
        throw new TimeoutException($"expected {n} worker(s) connected; metrics say '{last}'");
    }

    private static async Task WaitForFileAsync(string path, Func<string, bool> ready, double seconds = 30)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (DateTime.UtcNow < deadline)
        {
            if (File.Exists(path) && ready(await File.ReadAllTextAsync(path))) return;
            await Task.Delay(20);
        }
        throw new TimeoutException($"{path} never got what was expected; it holds: {(File.Exists(path) ? File.ReadAllText(path) : "(nothing)")}");
    }

    [Fact]
    public async Task Several_workers_share_the_tasks_each_runs_once_and_ends_reach_the_daemon()
    {
        // A long timeout: no worker here is lost, not even one a loaded machine leaves unscheduled for a few seconds.
        await using var d = await TestDaemon.StartAsync(WorkerSettings(timeout: 30));
        var marks = Path.Combine(d.WorkDir, "marks");
        // Nothing runs before a worker connects: a worker class's limit is its workers' slots.
        var early = await d.SubmitShellAsync($"echo \"$SPARKY_TASK_ID $SPARKY_WORKER\" >> {marks}");
        // A local task submitted after it has run: the engine has looked for what it could start since it queued the first.
        Assert.Equal("succeeded", (string?)(await d.WaitAsync(await d.SubmitShellAsync("true", cls: "cpu_long")))["state"]);
        Assert.Equal("queued", (string?)(await d.GetTaskAsync(early))["state"]);

        await using var w1 = WorkerProcess.Start(d.Daemon.ZmqEndpoint, "w1", slots: 2);
        await using var w2 = WorkerProcess.Start(d.Daemon.ZmqEndpoint, "w2", slots: 2);
        await using var w3 = WorkerProcess.Start(d.Daemon.ZmqEndpoint, "w3", slots: 2);
        await WaitForWorkersAsync(d.Http, 3);

        var ids = new List<string> { early };
        for (int i = 0; i < 60; i++) ids.Add(await d.SubmitShellAsync($"echo \"$SPARKY_TASK_ID $SPARKY_WORKER\" >> {marks}; sleep 0.05"));
        var result = await d.SubmitShellAsync("echo out; echo err >&2; echo '__DSPY_RESULT__:{\"score\": 0.9}'");
        var failing = await d.SubmitShellAsync("exit 7");
        var slow = await d.SubmitShellAsync("sleep 30", timeout: 1);
        var cancelled = await d.SubmitShellAsync("sleep 30");

        var hosts = new HashSet<string>();
        foreach (var id in ids)
        {
            var t = await d.WaitAsync(id, 60);
            Assert.Equal("succeeded", (string?)t["state"]);
            Assert.Equal(1, (int?)t["attempts"]);
            hosts.Add((string)t["host"]!);
        }
        Assert.True(hosts.Count >= 2, $"tasks ran on {string.Join(", ", hosts)} only");
        Assert.Subset(new HashSet<string> { "w1", "w2", "w3" }, hosts);
        // Each task ran exactly once, on the worker the daemon recorded.
        var lines = (await File.ReadAllLinesAsync(marks)).Select(l => l.Split(' ')).ToList();
        Assert.Equal(ids.Count, lines.Count);
        Assert.Equal(ids.Order(), lines.Select(l => l[0]).Order());
        foreach (var l in lines) Assert.Equal((string)(await d.GetTaskAsync(l[0]))["host"]!, l[1]);

        var r = await d.WaitAsync(result, 30);
        Assert.Equal("{\"score\":0.9}", r["result"]?.ToJsonString());
        Assert.StartsWith("out\n", await d.Http.GetStringAsync($"api/v1/tasks/{result}/logs"));
        Assert.Equal("err\n", await d.Http.GetStringAsync($"api/v1/tasks/{result}/logs?stream=stderr"));

        var f = await d.WaitAsync(failing, 30);
        Assert.Equal(("failed", "exit_code", 7), ((string?)f["state"], (string?)f["reason"], (int?)f["exit_code"]));

        // The daemon keeps the clock: past its timeout the worker is told to kill the task's group.
        var s = await d.WaitAsync(slow, 30);
        Assert.Equal(("failed", "timeout", 15), ((string?)s["state"], (string?)s["reason"], (int?)s["signal"]));

        for (var deadline = DateTime.UtcNow.AddSeconds(20); (string?)(await d.GetTaskAsync(cancelled))["state"] != "running";)
        {
            Assert.True(DateTime.UtcNow < deadline, "the task to cancel never started");
            await Task.Delay(20);
        }
        Assert.True((await d.Http.DeleteAsync($"api/v1/tasks/{cancelled}")).IsSuccessStatusCode);
        var c = await d.WaitAsync(cancelled, 30);
        Assert.Equal(("cancelled", 15), ((string?)c["state"], (int?)c["signal"]));

        var metrics = await d.Http.GetStringAsync("metrics");
        Assert.Contains("sparky_workers_connected 3", metrics);
        Assert.Contains("sparky_concurrency_limit{class=\"cpu_short\"} 6", metrics);
    }

    [Fact]
    public async Task A_worker_killed_with_9_mid_task_is_lost_and_its_task_runs_again_elsewhere_without_using_a_retry()
    {
        // The killed worker is found lost by its silence, so the timeout is short, but not so short that a stall of a loaded
        // machine loses a live one (w1 while w2 starts, or w2 while it runs attempt 2): either would move the task elsewhere.
        await using var d = await TestDaemon.StartAsync(WorkerSettings(timeout: 5));
        await using var w1 = WorkerProcess.Start(d.Daemon.ZmqEndpoint, "w1", slots: 1);
        await WaitForWorkersAsync(d.Http, 1);
        var marks = Path.Combine(d.WorkDir, "marks");
        // Attempt 1 runs until its worker dies, however long the second worker takes to start.
        var id = await d.SubmitShellAsync($"echo \"start $SPARKY_WORKER $SPARKY_ATTEMPT\" >> {marks}; {Attempt1Hangs}; echo \"end $SPARKY_WORKER\" >> {marks}", retries: 0);
        await WaitForFileAsync(marks, t => t.Contains("start w1 1"));
        await using var w2 = WorkerProcess.Start(d.Daemon.ZmqEndpoint, "w2", slots: 1);
        await WaitForWorkersAsync(d.Http, 2);

        w1.KillHard();
        // Its guard kills the task's whole process group (the shell and its sleep) as soon as the worker is gone.
        for (var until = DateTime.UtcNow.AddSeconds(15); ProcessesOf(id, attempt: 1) is { Count: > 0 } left;)
        {
            Assert.True(DateTime.UtcNow < until, $"attempt 1 of {id} outlived its worker: pids {string.Join(", ", left)}");
            await Task.Delay(50);
        }
        var t = await d.WaitAsync(id, 60);
        Assert.Equal("succeeded", (string?)t["state"]);
        Assert.Equal(2, (int?)t["attempts"]);
        var first = t["attempt_list"]![0]!;
        Assert.Equal(("w1", "failed", "worker_lost"), ((string?)first["host"], (string?)first["outcome"], (string?)first["reason"]));
        Assert.Null((int?)first["exit_code"]);
        Assert.Equal("w2", (string?)t["attempt_list"]![1]!["host"]);
        // The killed worker's task died with it (parent-death signal; none of its processes is left, above): it never got to its end.
        var lines = await File.ReadAllLinesAsync(marks);
        Assert.Equal(["start w1 1", "start w2 2", "end w2"], lines);
        await WaitForWorkersAsync(d.Http, 1);
    }

    /// <summary>A task's first attempt sleeps until its worker's death ends it (a minute: bounded, should that break);
    /// a later one goes on at once.</summary>
    private const string Attempt1Hangs = "if [ \"$SPARKY_ATTEMPT\" = 1 ]; then sleep 60; fi";

    /// <summary>Processes whose environment names this task and attempt.</summary>
    private static List<int> ProcessesOf(string id, int attempt)
    {
        var found = new List<int>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out int pid)) continue;
            try
            {
                var env = File.ReadAllText(Path.Combine(dir, "environ")).Split('\0');
                if (env.Contains($"SPARKY_TASK_ID={id}") && env.Contains($"SPARKY_ATTEMPT={attempt}")) found.Add(pid);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        }
        return found;
    }

    [Fact]
    public async Task A_worker_that_starts_ends_only_its_own_leftovers_not_those_of_a_worker_of_the_same_name_for_another_daemon()
    {
        // Two daemons on this host, each with a worker named w1 (two users' daemons, say). Found by running test classes
        // in parallel: a w1 that started ended every process on the host marked with its name, the other w1's tasks too.
        await using var a = await TestDaemon.StartAsync(WorkerSettings(timeout: 60));
        await using var b = await TestDaemon.StartAsync(WorkerSettings(timeout: 60));
        await using var wa = WorkerProcess.Start(a.Daemon.ZmqEndpoint, "w1", slots: 1);
        await WaitForWorkersAsync(a.Http, 1);
        var started = Path.Combine(a.WorkDir, "started");
        var go = Path.Combine(a.WorkDir, "go");
        var id = await a.SubmitShellAsync($"touch {started}; while [ ! -e {go} ]; do sleep 0.05; done");
        await WaitForFileAsync(started, _ => true);
        await using var wb = WorkerProcess.Start(b.Daemon.ZmqEndpoint, "w1", slots: 1);
        await WaitForWorkersAsync(b.Http, 1);
        File.WriteAllText(go, ""); // the task ran all the while the other w1 started (and ended its leftovers)
        var t = await a.WaitAsync(id, 30);
        Assert.Equal("succeeded", (string?)t["state"]);
        Assert.Equal(1, (int?)t["attempts"]);
    }

    [Fact]
    public async Task A_worker_restarted_under_its_name_is_not_given_a_task_twice()
    {
        // A long timeout: the daemon learns of the restart from the new hello, not from silence.
        await using var d = await TestDaemon.StartAsync(WorkerSettings(timeout: 60));
        var marks = Path.Combine(d.WorkDir, "marks");
        var w = WorkerProcess.Start(d.Daemon.ZmqEndpoint, "w1", slots: 2);
        await WaitForWorkersAsync(d.Http, 1);
        var ids = new List<string>();
        for (int i = 0; i < 2; i++)
            ids.Add(await d.SubmitShellAsync($"echo \"start $SPARKY_TASK_ID $SPARKY_ATTEMPT\" >> {marks}; {Attempt1Hangs}; echo \"end $SPARKY_TASK_ID $SPARKY_ATTEMPT\" >> {marks}"));
        await WaitForFileAsync(marks, t => t.Split('\n').Count(l => l.StartsWith("start")) == 2);
        w.KillHard();
        await w.DisposeAsync();
        await using var again = WorkerProcess.Start(d.Daemon.ZmqEndpoint, "w1", slots: 2);

        foreach (var id in ids)
        {
            var t = await d.WaitAsync(id, 60);
            Assert.Equal("succeeded", (string?)t["state"]);
            Assert.Equal(2, (int?)t["attempts"]);
            Assert.Equal("worker_lost", (string?)t["attempt_list"]![0]!["reason"]);
        }
        // Attempt 1's processes are gone (they die with their worker): none of them can write its end any more.
        foreach (var id in ids)
            for (var until = DateTime.UtcNow.AddSeconds(10); ProcessesOf(id, attempt: 1) is { Count: > 0 } left;)
            {
                Assert.True(DateTime.UtcNow < until, $"attempt 1 of {id} outlived its worker: pids {string.Join(", ", left)}");
                await Task.Delay(50);
            }
        var lines = await File.ReadAllLinesAsync(marks);
        foreach (var id in ids)
        {
            // Attempt 1 died with the old worker; attempt 2 ran once, to its end, on the new one.
            Assert.Equal(1, lines.Count(l => l == $"start {id} 1"));
            Assert.Equal(0, lines.Count(l => l == $"end {id} 1"));
            Assert.Equal(1, lines.Count(l => l == $"start {id} 2"));
            Assert.Equal(1, lines.Count(l => l == $"end {id} 2"));
        }
        Assert.Contains("sparky_workers_connected 1", await d.Http.GetStringAsync("metrics"));
    }

    [Fact]
    public async Task A_restarted_daemon_follows_the_task_its_worker_still_runs_instead_of_running_it_again()
    {
        var root = TestDaemon.NewRoot();
        var data = Path.Combine(root, "data");
        int http = SparkyCli.FreePort(), zmq = SparkyCli.FreePort();
        // Not a test of a loss: a timeout no stall of a loaded machine reaches (with 2 s, a worker silent that long while
        // its task ran was lost and the task ran again). The worker says hello again on the restarted daemon's 410 to its
        // next heartbeat, or after a timeout of silence; the daemon waits two timeouts for it.
        var env = new Dictionary<string, string>
        {
            ["SPARKY_WORKER_CLASSES"] = "cpu_short", ["SPARKY_WORKER_HEARTBEAT"] = "0.2", ["SPARKY_WORKER_TIMEOUT"] = "10",
        };
        var marks = Path.Combine(root, "marks");
        var go = Path.Combine(root, "go");
        var daemon = await DaemonProcess.StartAsync(data, http, zmq, env);
        await using var w = WorkerProcess.Start($"tcp://127.0.0.1:{zmq}", "w1", slots: 1);
        await WaitForWorkersAsync(daemon.Http, 1);
        // It runs until the test has seen the restarted daemon follow it (a fixed sleep could end while no daemon ran).
        var submit = await SparkyCli.RunAsync(["submit", "--server", daemon.Url, "--", "sh", "-c",
            $"echo \"start $SPARKY_ATTEMPT\" >> {marks}; while [ ! -e {go} ]; do sleep 0.05; done; echo \"end $SPARKY_ATTEMPT\" >> {marks}"]);
        Assert.Equal(0, submit.ExitCode);
        var id = submit.Stdout.Trim();
        await WaitForFileAsync(marks, t => t.Contains("start 1"));

        daemon.KillHard();
        await daemon.DisposeAsync();
        await using var restarted = await DaemonProcess.StartAsync(data, http, zmq, env);
        // The restarted daemon lists the running attempt under its worker again: followed, not queued again.
        await WorkersApiTests.WaitForAsync(restarted.Http, l => WorkersApiTests.Worker(l, "w1")?["tasks"]!.AsArray()
            .Any(x => (string?)x!["id"] == id && (int?)x["attempt"] == 1) == true, "the restarted daemon followed the task");
        File.WriteAllText(go, "");
        var t = await WaitTerminalAsync(restarted, id, 60);
        Assert.Equal("succeeded", (string?)t["state"]);
        Assert.Equal(1, (int?)t["attempts"]);
        Assert.Equal(0, (int?)t["exit_code"]);
        Assert.Equal(["start 1", "end 1"], await File.ReadAllLinesAsync(marks));
        Assert.False(w.HasExited, w.Stderr);
    }

    private static async Task<JsonNode> WaitTerminalAsync(DaemonProcess d, string id, double seconds)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (true)
        {
            var t = await d.GetAsync($"api/v1/tasks/{id}");
            if ((string?)t["state"] is "succeeded" or "failed" or "cancelled") return t;
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"task {id} still {(string?)t["state"]}: {d.Stderr}");
            await Task.Delay(50);
        }
    }

    [Fact]
    public async Task A_daemon_without_worker_classes_refuses_a_worker_with_a_clear_error()
    {
        await using var d = await TestDaemon.StartAsync();
        var run = await SparkyCli.RunAsync(["worker", "--connect", d.Daemon.ZmqEndpoint, "--name", "w1"], timeoutSeconds: 30);
        Assert.Equal(2, run.ExitCode);
        Assert.Contains("worker_classes", run.Stderr);
        Assert.Contains("sparky_workers_connected 0", await d.Http.GetStringAsync("metrics"));

        var bad = await SparkyCli.RunAsync(["worker", "--connect", d.Daemon.ZmqEndpoint, "--name", "../etc"], timeoutSeconds: 30);
        Assert.Equal(2, bad.ExitCode);
        Assert.Contains("--name", bad.Stderr);
        Assert.Single(bad.Stderr.Trim().Split('\n'));
    }

    [Fact]
    public async Task An_idle_worker_leaves_by_itself_and_says_so()
    {
        await using var d = await TestDaemon.StartAsync(WorkerSettings());
        // Queued first, and idle for 3 s: the idle time counts from the worker's start, and on a loaded machine its hello,
        // let alone the test's seeing it connected and submitting, can take a second.
        var id = await d.SubmitShellAsync("true");
        await using var w = WorkerProcess.Start(d.Daemon.ZmqEndpoint, "w1", 1, "--idle-timeout", "3");
        Assert.Equal("succeeded", (string?)(await d.WaitAsync(id, 30))["state"]);
        Assert.True(await w.WaitForExitAsync(20), w.Stderr);
        Assert.Equal(0, w.ExitCode);
        Assert.Contains("leaves (idle)", w.Stderr);
        await WaitForWorkersAsync(d.Http, 0);
    }
}
