using System.Text.Json.Nodes;
using PuppeteerSharp;
using Sparky.IntegrationTests.Support;
using Xunit.Abstractions;

namespace Sparky.IntegrationTests.Dashboard;

/// <summary>
/// The web dashboard in a real headless Chromium against a real daemon on loopback: it loads without a console error,
/// follows the daemon live, cancels, filters, keeps hostile text as text, honours read-only and the sign-in, comes back
/// after a restart, and renders ANSI colours. One browser for the class (<see cref="Chromium"/>); each test has its own
/// daemon and its own browser context.
/// </summary>
public sealed class DashboardBrowserTests(Chromium chromium, ITestOutputHelper output) : IClassFixture<Chromium>
{
        [Fact]
    public async Task Every_view_loads_with_no_console_error()
    {
        await using var d = await TestDaemon.StartAsync();
        var id = await d.SubmitShellAsync("echo hello");
        await d.WaitAsync(id);
        await using var tab = await BrowserTab.OpenAsync(chromium, d.Daemon.Url + "/", output);
        await tab.WaitAsync("() => document.querySelectorAll('.card').length === 4 && document.querySelector('#live').dataset.state === 'live'");
        // The charts come from the embedded uPlot, loaded as a module when the overview first shows one.
        await tab.WaitAsync("() => document.querySelectorAll('.chart canvas').length === 4");
        Assert.Equal("Sparky", await tab.Page.GetTitleAsync());
        await tab.GoAsync("#/tasks", $"() => document.querySelector('tr[data-id=\"{id}\"]') !== null");
        await tab.GoAsync($"#/task/{id}", "() => document.querySelector('pre.log')?.textContent.includes('hello')");
        await tab.GoAsync("#/gpus", "() => /GPU/.test(document.querySelector('main .panel p')?.textContent ?? '')");
        await tab.GoAsync("#/plans", "() => document.querySelector('main table') !== null");
        await tab.GoAsync("#/no/such/view", "() => document.querySelector('main h1')?.textContent === 'Not found'");
        tab.AssertNoErrors();
    }

    [Fact]
    public async Task A_submitted_task_appears_and_changes_state_live_without_a_reload()
    {
        await using var d = await TestDaemon.StartAsync();
        await using var tab = await BrowserTab.OpenAsync(chromium, d.Daemon.Url + "/#/tasks", output);
        await tab.WaitAsync("() => document.querySelector('#live').dataset.state === 'live' && document.querySelector('tbody tr') !== null");
        await tab.Page.EvaluateExpressionAsync("window.notReloaded = true");

        // It runs until the page has shown it running: a browser starved of CPU could take in its start and end together.
        var id = await d.SubmitShellAsync("while [ ! -e go ]; do sleep 0.05; done");
        await tab.WaitAsync($"() => document.querySelector('tr[data-id=\"{id}\"]')?.dataset.state === 'running'");
        File.WriteAllText(Path.Combine(d.WorkDir, "go"), "");
        await tab.WaitAsync($"() => document.querySelector('tr[data-id=\"{id}\"]')?.dataset.state === 'succeeded'");
        Assert.True(await tab.Page.EvaluateExpressionAsync<bool>("window.notReloaded === true"));
        Assert.Equal("0", await tab.Page.EvaluateExpressionAsync<string>($"document.querySelector('tr[data-id=\"{id}\"] td.exit').textContent"));
        tab.AssertNoErrors();
    }

    [Fact]
    public async Task A_paused_view_stops_moving_until_it_is_resumed()
    {
        await using var d = await TestDaemon.StartAsync();
        await using var tab = await BrowserTab.OpenAsync(chromium, d.Daemon.Url + "/#/tasks", output);
        await tab.WaitAsync("() => document.querySelector('#live').dataset.state === 'live' && document.querySelector('tbody tr') !== null");
        await tab.Page.ClickAsync("#pause");
        var id = await d.SubmitShellAsync("true");
        await d.WaitAsync(id);
        // The events came (the button counts them), the table did not move.
        await tab.WaitAsync("() => /Resume \\(\\d+ new\\)/.test(document.querySelector('#pause').textContent)");
        await Task.Delay(1500);
        Assert.False(await tab.Page.EvaluateExpressionAsync<bool>($"document.querySelector('tr[data-id=\"{id}\"]') !== null"));
        await tab.Page.ClickAsync("#pause");
        await tab.WaitAsync($"() => document.querySelector('tr[data-id=\"{id}\"]')?.dataset.state === 'succeeded'");
        Assert.Equal("Pause", await tab.Page.EvaluateExpressionAsync<string>("document.querySelector('#pause').textContent"));
        tab.AssertNoErrors();
    }

    [Fact]
    public async Task Cancel_on_the_task_page_cancels_the_task()
    {
        await using var d = await TestDaemon.StartAsync();
        var id = await d.SubmitShellAsync("echo started; sleep 60", timeout: 30);
        await WaitForStateAsync(d, id, "running");
        await using var tab = await BrowserTab.OpenAsync(chromium, d.Daemon.Url + $"/#/task/{id}", output);
        await tab.WaitAsync("() => document.querySelector('button[data-action=cancel]') !== null");
        await tab.WaitAsync("() => document.querySelector('pre.log').textContent.includes('started')");
        await tab.Page.ClickAsync("button[data-action=cancel]");
        Assert.Equal("cancelled", (string)(await d.WaitAsync(id))["state"]!);
        // The page follows: the badge turns, and a finished task offers a retry instead.
        await tab.WaitAsync("() => document.querySelector('.title .badge')?.dataset.state === 'cancelled' && document.querySelector('button[data-action=retry]') !== null");
        await tab.Page.ClickAsync("button[data-action=retry]");
        await WaitForStateAsync(d, id, "running");
        tab.AssertNoErrors();
    }

    [Fact]
    public async Task State_and_class_filters_narrow_the_table()
    {
        await using var d = await TestDaemon.StartAsync();
        var ok = await d.SubmitShellAsync("true");
        var bad = await d.SubmitShellAsync("exit 3");
        var longOne = await d.SubmitShellAsync("exit 4", cls: "cpu_long");
        foreach (var id in new[] { ok, bad, longOne }) await d.WaitAsync(id);
        await using var tab = await BrowserTab.OpenAsync(chromium, d.Daemon.Url + "/#/tasks", output);
        await tab.WaitAsync($"() => document.querySelectorAll('tbody tr[data-id]').length === 3");

        await tab.Page.ClickAsync(".chip[data-state=failed]");
        await tab.WaitAsync(Rows([bad, longOne]));
        Assert.Contains("state=failed", await tab.Page.EvaluateExpressionAsync<string>("location.hash"));

        await tab.Page.SelectAsync("select[name=class]", "cpu_long");
        await tab.WaitAsync(Rows([longOne]));
        await tab.Page.ClickAsync(".chip[data-state=failed]");
        await tab.Page.ClickAsync(".chip[data-state=succeeded]");
        await tab.WaitAsync("() => document.querySelector('tr.empty')?.textContent === 'No task matches.'");

        // The filters are in the address: the same view opens from it.
        await tab.Page.GoToAsync(d.Daemon.Url + "/#/tasks?state=succeeded");
        await tab.WaitAsync(Rows([ok]));
        Assert.Equal("true", await tab.Page.EvaluateExpressionAsync<string>("document.querySelector('.chip[data-state=succeeded]').getAttribute('aria-pressed')"));
        tab.AssertNoErrors();

        static string Rows(string[] ids) =>
            $"() => [...document.querySelectorAll('tbody tr[data-id]')].map(r => r.dataset.id).sort().join() === '{string.Join(",", ids.Order(StringComparer.Ordinal))}'";
    }

    [Fact]
    public async Task A_hostile_task_name_command_and_output_stay_text()
    {
        const string Name = "<img src=x onerror=alert(1)>";
        await using var d = await TestDaemon.StartAsync();
        var ids = await d.SubmitAsync(new JsonObject
        {
            ["name"] = Name,
            ["payload"] = new JsonObject
            {
                ["command"] = "echo '<img src=y onerror=alert(2)><script>alert(3)</script>'; echo '__DSPY_RESULT__:{\"html\": \"<img src=z onerror=alert(4)>\"}'",
                ["cwd"] = d.WorkDir,
            },
        });
        var id = ids[0];
        await d.WaitAsync(id);
        await using var tab = await BrowserTab.OpenAsync(chromium, d.Daemon.Url + "/#/tasks", output);
        await tab.WaitAsync($"() => document.querySelector('tr[data-id=\"{id}\"] .name')?.textContent === {Js(Name)}");
        await tab.GoAsync($"#/task/{id}", "() => document.querySelector('pre.log').textContent.includes('<script>alert(3)</script>')");
        await tab.WaitAsync($"() => document.querySelector('.title').textContent.includes({Js(Name)}) && document.querySelector('pre.json')?.textContent.includes('onerror=alert(4)')");
        // Nothing the task wrote became an element: the only image is the page's own icon, the only script its module.
        Assert.Equal(["/assets/icon.svg"], await tab.Page.EvaluateExpressionAsync<string[]>("[...document.images].map(i => new URL(i.src).pathname)"));
        Assert.Equal(1, await tab.Page.EvaluateExpressionAsync<int>("document.scripts.length"));
        Assert.Empty(tab.Dialogs);
        tab.AssertNoErrors();
    }

    [Fact]
    public async Task A_plan_shows_its_phases_workstreams_tasks_and_gate_checks_live()
    {
        await using var d = await TestDaemon.StartAsync();
        await using var tab = await BrowserTab.OpenAsync(chromium, d.Daemon.Url + "/#/plans", output);
        await tab.WaitAsync("() => document.querySelector('#live').dataset.state === 'live' && document.querySelector('main .note')?.textContent.includes('No plans yet')");
        using var started = await d.Http.PostAsync("api/v1/plans", new StringContent(new JsonObject { ["text"] = TinyPlan, ["base_dir"] = d.WorkDir }.ToJsonString()));
        Assert.Equal(System.Net.HttpStatusCode.Accepted, started.StatusCode);
        await tab.WaitAsync("() => document.querySelector('a[href=\"#/plan/tiny\"]') !== null");
        await tab.Page.ClickAsync("a[href=\"#/plan/tiny\"]");
        await tab.WaitAsync("() => document.querySelector('h1 .badge')?.dataset.state === 'succeeded'");
        var phases = await tab.Page.EvaluateExpressionAsync<string[]>("[...document.querySelectorAll('.phase > h2')].map(h => h.textContent)");
        Assert.Equal(["passed prepare", "passed train"], phases);
        Assert.Equal("fetched", await tab.Page.EvaluateExpressionAsync<string>("document.querySelector('.gate pre.output').textContent"));
        Assert.Equal("run: cat data.txt", await tab.Page.EvaluateExpressionAsync<string>("document.querySelector('.gate code').textContent"));
        // Each workstream's task links to its page.
        Assert.Equal(2, await tab.Page.EvaluateExpressionAsync<int>("document.querySelectorAll('.workstream a[href^=\"#/task/\"]').length"));
        tab.AssertNoErrors();
    }

    [Fact]
    public async Task Read_only_hides_cancel_and_the_daemon_refuses_it_from_the_page()
    {
        await using var d = await TestDaemon.StartAsync(new() { ["dashboard"] = "read-only" });
        var id = await d.SubmitShellAsync("sleep 60", timeout: 30);
        await WaitForStateAsync(d, id, "running");
        await using var tab = await BrowserTab.OpenAsync(chromium, d.Daemon.Url + $"/#/task/{id}", output);
        await tab.WaitAsync("() => document.querySelector('.actions')?.textContent === 'read-only'");
        Assert.False(await tab.Page.EvaluateExpressionAsync<bool>("document.querySelector('button[data-action]') !== null"));
        Assert.False(await tab.Page.EvaluateExpressionAsync<bool>("document.querySelector('#mode').hidden"));
        // The page's own request, made anyway, is refused.
        var status = await tab.Page.EvaluateFunctionAsync<int>(
            "id => fetch('/api/v1/tasks/' + id, { method: 'DELETE', headers: { 'X-Sparky-Dashboard': '1' } }).then(r => r.status)", id);
        Assert.Equal(403, status);
        Assert.Equal("running", (string)(await d.GetTaskAsync(id))["state"]!);
        tab.AssertNoErrors(allow: "403");
    }

    [Fact]
    public async Task Dashboard_off_answers_404_in_the_browser()
    {
        await using var d = await TestDaemon.StartAsync(new() { ["dashboard"] = "off" });
        await using var tab = await BrowserTab.OpenAsync(chromium, null, output);
        var response = await tab.Page.GoToAsync(d.Daemon.Url + "/");
        Assert.Equal(System.Net.HttpStatusCode.NotFound, response.Status);
    }

    [Fact]
    public async Task With_a_token_the_page_signs_in_and_then_cancels_through_the_csrf_check()
    {
        const string Token = "dash-token-51";
        await using var d = await TestDaemon.StartAsync(new() { ["token"] = Token });
        await using var tab = await BrowserTab.OpenAsync(chromium, d.Daemon.Url + "/#/tasks", output);
        await tab.WaitAsync("() => location.hash === '#/signin' && document.querySelector('input[name=token]') !== null");
        await tab.Page.TypeAsync("input[name=token]", "not-it");
        await tab.Page.ClickAsync("form.signin button");
        await tab.WaitAsync("() => document.querySelector('.note .error')?.textContent === 'That is not the token.'");

        await tab.Page.EvaluateExpressionAsync("document.querySelector('input[name=token]').value = ''");
        await tab.Page.TypeAsync("input[name=token]", Token);
        await tab.Page.ClickAsync("form.signin button");
        // Back where it was sent from, and live: the event stream is authenticated by the cookie.
        await tab.WaitAsync("() => location.hash === '#/tasks' && document.querySelector('#live').dataset.state === 'live'");
        var cookies = await tab.Page.EvaluateExpressionAsync<string>("document.cookie");
        Assert.Contains("sparky_csrf=", cookies);
        Assert.DoesNotContain("sparky_session", cookies); // HttpOnly: no script can read it
        Assert.DoesNotContain(Token, cookies);

        using var submit = new HttpRequestMessage(HttpMethod.Post, "api/v1/tasks")
        {
            Content = new StringContent(new JsonObject { ["payload"] = new JsonObject { ["command"] = "sleep 60", ["timeout_seconds"] = 30 } }.ToJsonString()),
        };
        submit.Headers.Authorization = new("Bearer", Token);
        using var answer = await d.Http.SendAsync(submit);
        var id = (string)JsonNode.Parse(await answer.EnsureSuccessStatusCode().Content.ReadAsStringAsync())!["id"]!;
        await tab.WaitAsync($"() => document.querySelector('tr[data-id=\"{id}\"]') !== null");
        // Without the CSRF header the cookie alone changes nothing; the page's button sends it.
        Assert.Equal(403, await tab.Page.EvaluateFunctionAsync<int>("id => fetch('/api/v1/tasks/' + id, { method: 'DELETE' }).then(r => r.status)", id));
        await tab.GoAsync($"#/task/{id}", "() => document.querySelector('button[data-action=cancel]') !== null");
        await tab.Page.ClickAsync("button[data-action=cancel]");
        await tab.WaitAsync("() => document.querySelector('.title .badge')?.dataset.state === 'cancelled'");
        tab.AssertNoErrors(allow: "40");
    }

    [Fact]
    public async Task After_a_daemon_restart_the_page_reconnects_and_catches_up()
    {
        var root = TestDaemon.NewRoot();
        var settings = new Dictionary<string, string> { ["http"] = $"127.0.0.1:{SparkyCli.FreePort()}" };
        try
        {
            var d = await TestDaemon.StartAsync(settings, root);
            var before = await d.SubmitShellAsync("true");
            await d.WaitAsync(before);
            await using var tab = await BrowserTab.OpenAsync(chromium, d.Daemon.Url + "/#/tasks", output);
            await tab.WaitAsync($"() => document.querySelector('#live').dataset.state === 'live' && document.querySelector('tr[data-id=\"{before}\"]') !== null");
            await tab.Page.EvaluateExpressionAsync("window.notReloaded = true");

            await d.DisposeAsync();
            await tab.WaitAsync("() => document.querySelector('#live').dataset.state === 'reconnecting'");
            await using var again = await TestDaemon.StartAsync(settings, root);
            // Submitted before the page is back on the stream: its event is missed, and the catch-up finds it.
            var after = await again.SubmitShellAsync("true");
            await again.WaitAsync(after);
            await tab.WaitAsync($"() => document.querySelector('#live').dataset.state === 'live' && document.querySelector('tr[data-id=\"{after}\"]')?.dataset.state === 'succeeded'");
            Assert.True(await tab.Page.EvaluateExpressionAsync<bool>("window.notReloaded === true"));
            Assert.Empty(tab.PageErrors);
        }
        finally { Directory.Delete(root, recursive: true); }
    }

    [Fact]
    public async Task The_log_tail_renders_ansi_colours_and_follows_a_retry_to_its_new_attempt()
    {
        await using var d = await TestDaemon.StartAsync();
        // Attempt 1 prints red and fails once the test has seen it; attempt 2 prints green and succeeds.
        var id = await d.SubmitShellAsync(
            "if [ \"$SPARKY_ATTEMPT\" = 1 ]; then printf '\\033[1;31mFAIL\\033[0m first \\033]0;title\\007\\033[2Kend\\n'; " +
            "while [ ! -e go ]; do sleep 0.05; done; exit 1; fi; printf 'tick 1\\rtick 2\\n\\033[32mPASS\\033[0m second\\n'", retries: 1, timeout: 30);
        await using var tab = await BrowserTab.OpenAsync(chromium, d.Daemon.Url + $"/#/task/{id}", output);
        await tab.WaitAsync("() => document.querySelector('pre.log span.f1.b')?.textContent === 'FAIL'");
        Assert.Equal("FAIL first end", await tab.Page.EvaluateExpressionAsync<string>("document.querySelector('pre.log .ln:not(.note)').textContent"));
        await File.WriteAllTextAsync(Path.Combine(d.WorkDir, "go"), "");
        // The retry starts: the tail moves on to attempt 2's log by itself.
        await tab.WaitAsync("() => document.querySelector('pre.log span.f2')?.textContent === 'PASS'");
        var lines = await tab.Page.EvaluateExpressionAsync<string[]>("[...document.querySelectorAll('pre.log .ln')].map(l => l.textContent)");
        Assert.Equal(["— attempt 2 of 2 —", "tick 2", "PASS second"], lines);
        Assert.Equal("succeeded", (string)(await d.WaitAsync(id))["state"]!);
        await tab.WaitAsync("() => document.querySelectorAll('section.panel table tbody tr').length >= 2");
        tab.AssertNoErrors();
    }

    [Fact]
    public async Task A_gpu_card_shows_its_temperature_and_the_tasks_that_hold_it_with_their_share()
    {
        // Two stand-in A100s at 33 and 31 °C; cpu_long has room for a share beside the whole-GPU task.
        await using var d = await Api.GpuTests.StartWithTwoGpusAsync(new() { ["cpu_long_slots"] = "2" });
        const string Name = "<img src=x onerror=alert(1)>";
        var whole = (await d.SubmitAsync(new JsonObject
        {
            ["class"] = "gpu", ["name"] = Name,
            ["payload"] = new JsonObject { ["command"] = "while [ ! -e go ]; do sleep 0.05; done", ["cwd"] = d.WorkDir, ["timeout_seconds"] = 60 },
        }))[0];
        var share = (await d.SubmitAsync(new JsonObject
        {
            ["class"] = "cpu_long",
            ["payload"] = new JsonObject
            {
                ["command"] = "while [ ! -e go ]; do sleep 0.05; done", ["cwd"] = d.WorkDir, ["timeout_seconds"] = 60,
                ["resources"] = new JsonObject { ["gpu_memory_mb"] = 10240 },
            },
        }))[0];
        await WaitForStateAsync(d, whole, "running");
        await WaitForStateAsync(d, share, "running");
        await using var tab = await BrowserTab.OpenAsync(chromium, d.Daemon.Url + "/#/gpus", output);
        string Card(string uuid) => $"document.querySelector('.card[data-uuid=\"{uuid}\"]')";
        await tab.WaitAsync($"() => {Card(Api.GpuTests.GpuA)} !== null && {Card(Api.GpuTests.GpuB)} !== null");
        Assert.Equal("33 °C", await tab.Page.EvaluateExpressionAsync<string>($"{Card(Api.GpuTests.GpuA)}.querySelector('.temperature').textContent"));
        Assert.Equal("31 °C", await tab.Page.EvaluateExpressionAsync<string>($"{Card(Api.GpuTests.GpuB)}.querySelector('.temperature').textContent"));
        // Each task on the card of the GPU the daemon gave it, with its share, linking to its page.
        var gpus = await d.Http.GetStringAsync("api/v1/gpus");
        foreach (var (id, words) in new[] { (whole, "whole GPU"), (share, "10.0 GiB share") })
        {
            var uuid = JsonNode.Parse(gpus)!["gpus"]!.AsArray().Single(g => g!["tasks"]!.AsArray().Any(t => (string?)t!["id"] == id))!["uuid"]!.GetValue<string>();
            var li = $"{Card(uuid)}.querySelector('.holders li[data-id=\"{id}\"]')";
            await tab.WaitAsync($"() => {li}?.querySelector('.share')?.textContent === {Js(words)}");
            Assert.Equal($"#/task/{id}", await tab.Page.EvaluateExpressionAsync<string>($"{li}.querySelector('a').getAttribute('href')"));
            // Named by its name once the page has asked for it, as text (the whole-GPU task's is markup).
            var name = (string?)(await d.GetTaskAsync(id))["name"] is { Length: > 0 } n ? n : id;
            if (id == whole) Assert.Equal(Name, name);
            await tab.WaitAsync($"() => {li}.querySelector('a').textContent === {Js(name)}");
        }
        await File.WriteAllTextAsync(Path.Combine(d.WorkDir, "go"), "");
        await d.WaitAsync(whole);
        await d.WaitAsync(share);
        // The cards follow: no task holds either GPU any more.
        await tab.WaitAsync("() => [...document.querySelectorAll('.holders h3')].every(x => x.textContent === 'Held by no task')");
        Assert.Equal(["/assets/icon.svg"], await tab.Page.EvaluateExpressionAsync<string[]>("[...document.images].map(i => new URL(i.src).pathname)"));
        Assert.Empty(tab.Dialogs);
        tab.AssertNoErrors();
    }

    [Fact]
    public async Task The_ansi_parser_and_the_progress_bar_in_the_browser()
    {
        await using var d = await TestDaemon.StartAsync();
        await using var tab = await BrowserTab.OpenAsync(chromium, d.Daemon.Url + "/", output);
        await tab.WaitAsync("() => document.querySelector('.card') !== null");
        // The module the log view uses, fed in two chunks that cut a sequence in half.
        var ops = await tab.Page.EvaluateExpressionAsync<JsonNode>("""
            import('/assets/js/ansi.js').then(({ createAnsiParser, styleOf }) => {
              const p = createAnsiParser();
              const ops = [...p.feed('a\x1b[1;3'), ...p.feed('1mB\x1b[38;5;208mC\x1b[48;2;1;2;3mD\x1b[0m\x1b[?25l\x07E\r\n')];
              return ops.map(o => o.newline ? '\\n' : o.cr ? '\\r' : [o.text, ...styleOf(o.style).classes, styleOf(o.style).color, styleOf(o.style).background].filter(Boolean).join('|'));
            })
            """);
        Assert.Equal(["a", "B|b|f1", "C|b|rgb(255,135,0)", "D|b|rgb(255,135,0)|rgb(1,2,3)", "E", "\\n"], ops!.AsArray().Select(o => (string)o!));
        // A task's progress as the table and the task page show it: a bar as wide as done/total, the message as text.
        var bar = await tab.Page.EvaluateExpressionAsync<JsonNode>("""
            import('/assets/js/dom.js').then(({ progressBar }) => {
              const el = progressBar({ done: 5, total: 20, message: '<b>epoch</b> 5', updated_at: '2026-01-01T00:00:00Z' });
              const bare = progressBar({ message: 'warming up' });
              return { width: el.querySelector('.fill').style.width, words: el.querySelector('.words').textContent,
                       tags: el.querySelectorAll('b').length, bare: bare.querySelector('.bar').className, bareWords: bare.textContent,
                       none: progressBar(null) };
            })
            """);
        Assert.Equal("25%", (string)bar!["width"]!);
        Assert.Equal("5 / 20 · <b>epoch</b> 5", (string)bar["words"]!);
        Assert.Equal(0, (int)bar["tags"]!);
        Assert.Equal("bar indeterminate", (string)bar["bare"]!);
        Assert.Equal("warming up", (string)bar["bareWords"]!);
        Assert.Null(bar["none"]);
        tab.AssertNoErrors();
    }

    internal static async Task WaitForStateAsync(TestDaemon d, string id, string state)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while ((string)(await d.GetTaskAsync(id))["state"]! != state)
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"task {id} never became {state}");
            await Task.Delay(20);
        }
    }

    /// <summary>Two phases, the first with a gate that reads what its workstream wrote.</summary>
    internal const string TinyPlan = """
        name: tiny
        phases:
          - name: prepare
            workstreams:
              - {name: fetch, run: "echo fetched > data.txt"}
            gate:
              - run: cat data.txt
          - name: train
            workstreams:
              - {name: fit, run: "true"}
        """;

    internal static string Js(string s) => System.Text.Json.JsonSerializer.Serialize(s);
}
