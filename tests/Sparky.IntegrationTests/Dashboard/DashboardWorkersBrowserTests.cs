using System.Text.Json.Nodes;
using PuppeteerSharp;
using PuppeteerSharp.Media;
using Sparky.IntegrationTests.Api;
using Sparky.IntegrationTests.Support;
using Sparky.IntegrationTests.Workers;
using Xunit.Abstractions;
using static Sparky.IntegrationTests.Dashboard.DashboardBrowserTests;

namespace Sparky.IntegrationTests.Dashboard;

/// <summary>
/// The dashboard with real <c>sparky worker</c> processes connected: the Workers view follows a worker and the task it
/// runs live, as text; and the screenshots of every main view, which show workers, GPUs held by tasks and a plan.
/// </summary>
[Collection(SerialCollection.Name)] // workers on this host: one class at a time (see SerialCollection)
public sealed class DashboardWorkersBrowserTests(Chromium chromium, ITestOutputHelper output) : IClassFixture<Chromium>
{
    [Fact]
    public async Task The_workers_view_lists_a_connected_worker_and_its_running_task_live_and_as_text()
    {
        const string Name = "<img src=x onerror=alert(1)>";
        const string Pilot = "p-17.a"; // an id: a hello with any other pilot is refused (WorkersApiTests)
        await using var d = await TestDaemon.StartAsync(WorkerTests.WorkerSettings(timeout: 5));
        await using var tab = await BrowserTab.OpenAsync(chromium, d.Daemon.Url + "/#/workers", output);
        await tab.WaitAsync("() => document.querySelector('#live').dataset.state === 'live' && document.querySelector('table.workers tr.empty') !== null");
        Assert.Equal("true", await tab.Page.EvaluateExpressionAsync<string>("document.querySelector('nav a[data-nav=workers]').classList.contains('active').toString()"));
        await tab.Page.EvaluateExpressionAsync("window.notReloaded = true");

        // A worker that joins appears without a reload, with its pilot.
        await using var worker = WorkerProcess.Start(d.Daemon.ZmqEndpoint, "view-w1", slots: 2, "--pilot", Pilot);
        const string Row = "document.querySelector('tr[data-worker=\"view-w1\"]')";
        await tab.WaitAsync($"() => {Row} !== null");
        Assert.Contains("pilot " + Pilot, await tab.Page.EvaluateExpressionAsync<string>($"{Row}.querySelector('td.task').textContent"));
        Assert.Equal(Pilot, await tab.Page.EvaluateExpressionAsync<string>("document.querySelector('table.pilots td.id').textContent"));

        var id = (await d.SubmitAsync(new JsonObject
        {
            ["name"] = Name,
            ["payload"] = new JsonObject { ["command"] = "while [ ! -e go ]; do sleep 0.05; done", ["cwd"] = d.WorkDir, ["timeout_seconds"] = 60 },
        }))[0];
        var link = $"{Row}.querySelector('td.running a[href=\"#/task/{id}\"]')";
        await tab.WaitAsync($"() => {link}?.textContent === {Js(Name)}");
        Assert.Equal("1 / 2", await tab.Page.EvaluateExpressionAsync<string>($"{Row}.querySelector('.credits').textContent"));
        Assert.Matches("^(just now|[0-9.]+ (ms|s) ago)$", await tab.Page.EvaluateExpressionAsync<string>($"{Row}.cells[5].textContent"));

        // Its end shows live too: the worker is idle again.
        await File.WriteAllTextAsync(Path.Combine(d.WorkDir, "go"), "");
        await d.WaitAsync(id);
        await tab.WaitAsync($"() => {Row}.querySelector('td.running').textContent === 'idle'");

        // Paused, the view stands still (no event, no 2 s read moves it) until it is resumed.
        await tab.Page.ClickAsync("#pause");
        var next = await d.SubmitShellAsync("while [ ! -e go2 ]; do sleep 0.05; done", timeout: 60);
        await WorkersApiTests.WaitForAsync(d.Http, l => WorkersApiTests.Worker(l, "view-w1")?["tasks"]!.AsArray().Count == 1, "the worker took the next task");
        await Task.Delay(2500);
        Assert.Equal("idle", await tab.Page.EvaluateExpressionAsync<string>($"{Row}.querySelector('td.running').textContent"));
        await tab.Page.ClickAsync("#pause");
        await tab.WaitAsync($"() => {Row}.querySelector('td.running a[href=\"#/task/{next}\"]') !== null");
        await File.WriteAllTextAsync(Path.Combine(d.WorkDir, "go2"), "");
        await d.WaitAsync(next);
        Assert.True(await tab.Page.EvaluateExpressionAsync<bool>("window.notReloaded === true"));
        // Nothing the worker or the task said became an element.
        Assert.Equal(["/assets/icon.svg"], await tab.Page.EvaluateExpressionAsync<string[]>("[...document.images].map(i => new URL(i.src).pathname)"));
        Assert.Equal(1, await tab.Page.EvaluateExpressionAsync<int>("document.scripts.length"));
        Assert.Empty(tab.Dialogs);
        tab.AssertNoErrors();
    }

    [Fact]
    public async Task Screenshots_of_the_main_views_light_and_dark()
    {
        // SPARKY_SCREENSHOTS=docs/screenshots writes the README's pictures; otherwise they go to a temp dir and are checked.
        var dir = Environment.GetEnvironmentVariable("SPARKY_SCREENSHOTS") is { Length: > 0 } wanted ? Path.GetFullPath(wanted)
            : Path.Combine(Path.GetTempPath(), "sparky-shots-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(dir);
        // Two stand-in GPUs; cpu_long runs on the two workers started here.
        await using var d = await GpuTests.StartWithTwoGpusAsync(new()
        {
            ["cpu_short_slots"] = "4", ["cpu_short_min_slots"] = "2",
            ["worker_classes"] = "cpu_long", ["worker_heartbeat"] = "0.5", ["worker_timeout"] = "10",
        });
        await using var nodeA = WorkerProcess.Start(d.Daemon.ZmqEndpoint, "node-a", slots: 2);
        await using var nodeB = WorkerProcess.Start(d.Daemon.ZmqEndpoint, "node-b", slots: 1);
        await WorkersApiTests.WaitForAsync(d.Http, l => l["workers"]!.AsArray().Count == 2, "both workers joined");
        var shown = await SeedAsync(d);
        await using var tab = await BrowserTab.OpenAsync(chromium, d.Daemon.Url + "/", output);
        // A few samples so the charts have a line.
        await tab.WaitAsync("() => window.sparkyDashboard.samples.length >= 4", timeoutMs: 60_000);
        var shots = new List<string>();
        foreach (var scheme in new[] { "light", "dark" })
        {
            await tab.Page.EmulateMediaFeaturesAsync([new MediaFeatureValue { MediaFeature = MediaFeature.PrefersColorScheme, Value = scheme }]);
            await tab.GoAsync("#/", "() => document.querySelectorAll('.chart canvas').length === 4");
            await Task.Delay(400);
            shots.Add(await tab.ShotAsync(dir, $"overview-{scheme}"));
            await tab.GoAsync("#/tasks", "() => document.querySelectorAll('tbody tr[data-id]').length >= 6");
            shots.Add(await tab.ShotAsync(dir, $"tasks-{scheme}"));
            await tab.GoAsync($"#/task/{shown}", "() => document.querySelector('pre.log span.f2') !== null && document.querySelectorAll('section.panel table tbody tr').length >= 2");
            shots.Add(await tab.ShotAsync(dir, $"task-{scheme}", fullPage: true));
            await tab.GoAsync("#/workers", "() => document.querySelectorAll('table.workers tr[data-worker]').length === 2 && document.querySelectorAll('td.running a').length >= 2");
            shots.Add(await tab.ShotAsync(dir, $"workers-{scheme}"));
            // The cards chart what the view reads every 2 s: a few readings make a line.
            await tab.GoAsync("#/gpus", "() => document.querySelectorAll('.holders li').length >= 2 && document.querySelectorAll('.chart canvas').length === 2");
            await Task.Delay(4500);
            shots.Add(await tab.ShotAsync(dir, $"gpus-{scheme}"));
            await tab.GoAsync("#/plan/tiny", "() => document.querySelector('h1 .badge')?.dataset.state === 'succeeded'");
            shots.Add(await tab.ShotAsync(dir, $"plan-{scheme}"));
        }
        // Last: a phone's viewport reloads the page.
        await tab.Page.SetViewportAsync(new ViewPortOptions { Width = 360, Height = 740, DeviceScaleFactor = 2, IsMobile = true, HasTouch = true });
        foreach (var scheme in new[] { "light", "dark" })
        {
            await tab.Page.EmulateMediaFeaturesAsync([new MediaFeatureValue { MediaFeature = MediaFeature.PrefersColorScheme, Value = scheme }]);
            await tab.GoAsync("#/tasks", "() => document.querySelectorAll('tbody tr[data-id]').length >= 6");
            shots.Add(await tab.ShotAsync(dir, $"tasks-phone-{scheme}"));
        }
        foreach (var shot in shots)
        {
            var bytes = await File.ReadAllBytesAsync(shot);
            Assert.True(bytes.Length > 10_000, $"{shot} is {bytes.Length} bytes");
            Assert.Equal([0x89, (byte)'P', (byte)'N', (byte)'G'], bytes[..4]);
        }
        output.WriteLine("screenshots in " + dir);
        tab.AssertNoErrors();
    }

    /// <summary>Tasks in every state, one with coloured output and a retry, two on the workers, two holding GPUs, and a
    /// plan: what the screenshots show. Returns the task whose page is shown.</summary>
    private static async Task<string> SeedAsync(TestDaemon d)
    {
        async Task<string> Named(string name, string shell, string cls = "cpu_short", int retries = 0, int gpuMemoryMb = 0) =>
            (await d.SubmitAsync(new JsonObject
            {
                ["name"] = name,
                ["class"] = cls,
                ["payload"] = new JsonObject
                {
                    ["command"] = shell, ["cwd"] = d.WorkDir, ["retries"] = retries, ["timeout_seconds"] = 120,
                    ["resources"] = new JsonObject { ["gpu_memory_mb"] = gpuMemoryMb },
                },
            }))[0];
        static string Progress(int done, int total, string message) =>
            $"echo '__SPARKY_PROGRESS__:{{\"done\": {done}, \"total\": {total}, \"message\": \"{message}\"}}'; sleep 100";
        var shown = await Named("train resnet50 (seed 1)",
            "if [ \"$SPARKY_ATTEMPT\" = 1 ]; then printf '\\033[33mwarning:\\033[0m CUDA not found, retrying\\n'; exit 1; fi; " +
            "for e in 1 2 3; do printf '\\033[1mepoch %s\\033[0m loss \\033[32m0.%s1\\033[0m acc \\033[36m0.9%s\\033[0m\\n' $e $((9-e)) $e; done; " +
            "echo '__DSPY_RESULT__:{\"accuracy\": 0.93, \"checkpoint\": \"out/model.pt\"}'", retries: 1);
        var done = new List<string> { shown };
        done.Add(await Named("tokenize shard 0", "echo tokens"));
        done.Add(await Named("evaluate", "echo 'missing file' >&2; exit 2"));
        done.Add(await Named("fetch dataset", "true", "cpu_long"));
        foreach (var id in done) await d.WaitAsync(id);
        var cancelled = await Named("sweep lr=3e-4", "sleep 60");
        await WaitForStateAsync(d, cancelled, "running");
        await d.Http.DeleteAsync($"api/v1/tasks/{cancelled}");
        await d.WaitAsync(cancelled);
        var running = new List<string>
        {
            await Named("train resnet50 (seed 2)", Progress(3, 10, "epoch 3"), "cpu_long"),
            await Named("train resnet50 (seed 3)", "sleep 100", "cpu_long"),
            await Named("finetune llama-8b", "sleep 100", "gpu"),
            await Named("embed corpus (8 GiB share)", Progress(37, 100, "batch 37"), gpuMemoryMb: 8192),
        };
        foreach (var id in running) await WaitForStateAsync(d, id, "running");
        using var started = await d.Http.PostAsync("api/v1/plans", new StringContent(new JsonObject { ["text"] = TinyPlan, ["base_dir"] = d.WorkDir }.ToJsonString()));
        Assert.Equal(System.Net.HttpStatusCode.Accepted, started.StatusCode);
        return shown;
    }
}
