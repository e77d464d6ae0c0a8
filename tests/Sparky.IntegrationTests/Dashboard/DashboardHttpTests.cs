using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using Sparky.IntegrationTests.Support;

namespace Sparky.IntegrationTests.Dashboard;

/// <summary>
/// The dashboard as HTTP: its files (types, ETags, the Content-Security-Policy), the dashboard setting, read-only,
/// and signing in where a token is required (the cookies, the CSRF check), against a real daemon. What a browser
/// does with them is in <see cref="DashboardBrowserTests"/>.
/// </summary>
public sealed class DashboardHttpTests
{
    [Fact]
    public async Task The_page_and_its_files_are_served_with_their_types_an_etag_and_a_strict_policy()
    {
        await using var d = await TestDaemon.StartAsync();
        foreach (var (path, type) in new[]
        {
            ("", "text/html"), ("assets/app.css", "text/css"), ("assets/js/main.js", "text/javascript"),
            ("assets/vendor/uPlot.esm.js", "text/javascript"), ("assets/vendor/uPlot.min.css", "text/css"), ("assets/icon.svg", "image/svg+xml"),
        })
        {
            using var resp = await d.Http.GetAsync(path);
            Assert.Equal(HttpStatusCode.OK, resp.StatusCode);
            Assert.Equal(type, resp.Content.Headers.ContentType!.MediaType);
            var csp = string.Join(";", resp.Headers.GetValues("Content-Security-Policy"));
            Assert.StartsWith("default-src 'self';", csp);
            Assert.DoesNotContain("unsafe", csp);
            Assert.Equal("nosniff", resp.Headers.GetValues("X-Content-Type-Options").Single());
            Assert.True(resp.Headers.CacheControl!.NoCache);
            var etag = resp.Headers.ETag!;
            Assert.False(etag.IsWeak);

            // The same file again with its ETag: 304 and no body.
            using var again = new HttpRequestMessage(HttpMethod.Get, path);
            again.Headers.IfNoneMatch.Add(etag);
            using var cached = await d.Http.SendAsync(again);
            Assert.Equal(HttpStatusCode.NotModified, cached.StatusCode);
            Assert.Empty(await cached.Content.ReadAsByteArrayAsync());
        }
        // The page loads its code as modules from this origin: no inline script, which the policy would block.
        var html = await d.Http.GetStringAsync("");
        Assert.Contains("<script type=\"module\" src=\"/assets/js/main.js\"></script>", html);
        Assert.DoesNotMatch("<script(?![^>]*\\ssrc=)", html);
        Assert.DoesNotContain("style=", html);
        using var missing = await d.Http.GetAsync("assets/js/nothing.js");
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        using var outside = await d.Http.GetAsync("assets/..%2F..%2Fsparky.db");
        Assert.Equal(HttpStatusCode.NotFound, outside.StatusCode);
    }

    [Fact]
    public async Task The_sparky_executable_carries_the_dashboard_it_was_built_with()
    {
        // The executable test.sh tests (the native build there: its files are embedded, nothing is read from disk).
        var root = TestDaemon.NewRoot();
        try
        {
            await using var d = await DaemonProcess.StartAsync(Path.Combine(root, "data"), SparkyCli.FreePort(), "--dashboard", "read-only");
            foreach (var path in new[] { "", "assets/js/main.js", "assets/vendor/uPlot.esm.js", "assets/vendor/uPlot.LICENSE.txt" })
            {
                var file = Sparky.Server.Dashboard.DashboardAssets.Get(path.Length == 0 ? "index.html" : path["assets/".Length..])!;
                using var resp = await d.Http.GetAsync(path);
                Assert.Equal(HttpStatusCode.OK, resp.StatusCode);
                Assert.Equal(file.Bytes, await resp.Content.ReadAsByteArrayAsync());
                Assert.Equal(file.ETag, resp.Headers.ETag!.Tag);
            }
            Assert.Equal("read-only", (string)(await d.GetAsync("api/v1/status"))["dashboard"]!);
        }
        finally { Directory.Delete(root, recursive: true); }
    }

    [Fact]
    public async Task The_status_says_version_mode_uptime_and_per_class_counts_and_limits()
    {
        await using var d = await TestDaemon.StartAsync(new() { ["cpu_long_slots"] = "3", ["cpu_long_limiter"] = "fixed" });
        var ok = await d.SubmitShellAsync("true");
        var bad = await d.SubmitShellAsync("exit 2", cls: "cpu_long");
        await d.WaitAsync(ok);
        await d.WaitAsync(bad);
        var s = JsonNode.Parse(await d.Http.GetStringAsync("api/v1/status"))!;
        Assert.StartsWith("0.1.0", (string)s["version"]!);
        Assert.Equal("laptop", (string)s["mode"]!);
        Assert.Equal("on", (string)s["dashboard"]!);
        Assert.InRange((double)s["uptime_seconds"]!, 0, 120);
        Assert.True(DateTimeOffset.Parse((string)s["now"]!) >= DateTimeOffset.Parse((string)s["started_at"]!));
        Assert.Equal(1, (long)s["totals"]!["succeeded"]!);
        Assert.Equal(1, (long)s["totals"]!["failed"]!);
        var classes = s["classes"]!.AsArray();
        Assert.Equal(["cpu_short", "cpu_long", "gpu", "gpu_slurm"], classes.Select(c => (string)c!["class"]!));
        var cpuLong = classes.Single(c => (string)c!["class"]! == "cpu_long")!;
        Assert.Equal((1L, 0L, 3, 3, "fixed", "local"),
            ((long)cpuLong["failed"]!, (long)cpuLong["succeeded"]!, (int)cpuLong["limit"]!, (int)cpuLong["max_slots"]!, (string)cpuLong["limiter"]!, (string)cpuLong["runs_on"]!));
        Assert.Equal("slurm", (string)classes.Single(c => (string)c!["class"]! == "gpu_slurm")!["runs_on"]!);
    }

    [Fact]
    public async Task Dashboard_off_answers_404_and_leaves_the_api_as_it_was()
    {
        await using var d = await TestDaemon.StartAsync(new() { ["dashboard"] = "off" });
        foreach (var path in new[] { "", "assets/js/main.js", "assets/app.css" })
        {
            using var resp = await d.Http.GetAsync(path);
            Assert.Equal(HttpStatusCode.NotFound, resp.StatusCode);
        }
        using var signIn = await d.Http.PostAsync("dashboard/signin", Json(new JsonObject { ["token"] = "x" }));
        Assert.Equal(HttpStatusCode.NotFound, signIn.StatusCode);
        var id = await d.SubmitShellAsync("true");
        Assert.Equal("succeeded", (string)(await d.WaitAsync(id))["state"]!);
        Assert.Equal("off", (string)JsonNode.Parse(await d.Http.GetStringAsync("api/v1/status"))!["dashboard"]!);
    }

    [Fact]
    public async Task Read_only_refuses_what_the_dashboard_asks_to_change_and_no_one_else()
    {
        await using var d = await TestDaemon.StartAsync(new() { ["dashboard"] = "read-only" });
        var id = await d.SubmitShellAsync("sleep 30");
        using var cancel = new HttpRequestMessage(HttpMethod.Delete, $"api/v1/tasks/{id}");
        cancel.Headers.Add("X-Sparky-Dashboard", "1");
        using var refused = await d.Http.SendAsync(cancel);
        Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
        Assert.Equal("application/problem+json", refused.Content.Headers.ContentType!.MediaType);
        Assert.Contains("read-only", await refused.Content.ReadAsStringAsync());
        using var submit = new HttpRequestMessage(HttpMethod.Post, "api/v1/tasks") { Content = Json(new JsonObject { ["payload"] = new JsonObject { ["command"] = "true" } }) };
        submit.Headers.Add("X-Sparky-Dashboard", "1");
        Assert.Equal(HttpStatusCode.Forbidden, (await d.Http.SendAsync(submit)).StatusCode);
        // Reading is what read-only is for.
        using var read = new HttpRequestMessage(HttpMethod.Get, $"api/v1/tasks/{id}");
        read.Headers.Add("X-Sparky-Dashboard", "1");
        Assert.Equal(HttpStatusCode.OK, (await d.Http.SendAsync(read)).StatusCode);
        Assert.NotEqual("cancelled", (string)(await d.GetTaskAsync(id))["state"]!);
        // A script or the CLI is not the dashboard: it still may.
        using var byCli = await d.Http.DeleteAsync($"api/v1/tasks/{id}");
        Assert.Equal(HttpStatusCode.Accepted, byCli.StatusCode);
        Assert.Equal("cancelled", (string)(await d.WaitAsync(id))["state"]!);
    }

    [Fact]
    public async Task A_state_changing_request_from_another_origin_is_refused_token_or_not()
    {
        await using var d = await TestDaemon.StartAsync();
        var authority = new Uri(d.Daemon.Url).Authority;
        foreach (var origin in new[] { "https://evil.example", "null", $"http://{authority}.evil.example" })
        {
            using var req = new HttpRequestMessage(HttpMethod.Post, "api/v1/tasks") { Content = Json(new JsonObject { ["payload"] = new JsonObject { ["command"] = "touch pwned" } }) };
            req.Headers.Add("Origin", origin);
            using var resp = await d.Http.SendAsync(req);
            Assert.Equal(HttpStatusCode.Forbidden, resp.StatusCode);
        }
        var list = JsonNode.Parse(await d.Http.GetStringAsync("api/v1/tasks"))!["tasks"]!.AsArray();
        Assert.Empty(list);
        // The page's own origin, as a browser sends it on its requests, is let through.
        using var same = new HttpRequestMessage(HttpMethod.Post, "api/v1/tasks") { Content = Json(new JsonObject { ["payload"] = new JsonObject { ["command"] = "true" } }) };
        same.Headers.Add("Origin", $"http://{authority}");
        Assert.Equal(HttpStatusCode.Created, (await d.Http.SendAsync(same)).StatusCode);
    }

    [Fact]
    public async Task Without_a_token_a_request_addressed_to_a_name_that_is_not_loopback_is_refused_dns_rebinding()
    {
        await using var d = await TestDaemon.StartAsync();
        int port = new Uri(d.Daemon.Url).Port;
        // A page on attacker.example whose name now resolves to 127.0.0.1 sends its own name as Host, and its requests
        // are same-origin with it: no Origin check helps. Reads are refused too (the log of every task is in them).
        foreach (var (method, path) in new[] { ("GET", "api/v1/tasks"), ("GET", ""), ("POST", "api/v1/tasks") })
        {
            using var req = new HttpRequestMessage(new HttpMethod(method), path);
            req.Headers.Host = $"attacker.example:{port}";
            if (method == "POST") req.Content = Json(new JsonObject { ["payload"] = new JsonObject { ["command"] = "touch pwned" } });
            using var resp = await d.Http.SendAsync(req);
            Assert.Equal(HttpStatusCode.Forbidden, resp.StatusCode);
            Assert.Contains("loopback", await resp.Content.ReadAsStringAsync());
        }
        Assert.Empty(JsonNode.Parse(await d.Http.GetStringAsync("api/v1/tasks"))!["tasks"]!.AsArray());
        // Every name of loopback is this daemon's.
        foreach (var host in new[] { $"localhost:{port}", $"127.0.0.1:{port}", $"LOCALHOST:{port}", $"dash.localhost:{port}", $"[::1]:{port}" })
        {
            using var req = new HttpRequestMessage(HttpMethod.Get, "api/v1/status");
            req.Headers.Host = host;
            Assert.Equal(HttpStatusCode.OK, (await d.Http.SendAsync(req)).StatusCode);
        }
    }

    [Fact]
    public async Task With_a_token_sign_ins_past_a_few_a_minute_get_429_and_the_right_token_waits_too()
    {
        await using var d = await TestDaemon.StartAsync(new() { ["token"] = "tok-8c2e" });
        using var client = new HttpClient { BaseAddress = d.Http.BaseAddress };
        for (int i = 0; i < 10; i++)
            Assert.Equal(HttpStatusCode.Unauthorized, (await client.PostAsync("dashboard/signin", Json(new JsonObject { ["token"] = $"guess-{i}" }))).StatusCode);
        using var limited = await client.PostAsync("dashboard/signin", Json(new JsonObject { ["token"] = "tok-8c2e" }));
        Assert.Equal((HttpStatusCode)429, limited.StatusCode);
        Assert.True(int.Parse(limited.Headers.GetValues("Retry-After").Single()) is >= 1 and <= 60);
        Assert.False(limited.Headers.Contains("Set-Cookie"));
        // The bearer token is not a sign-in: scripts and the CLI go on.
        using var bearer = new HttpRequestMessage(HttpMethod.Get, "api/v1/status");
        bearer.Headers.Authorization = new AuthenticationHeaderValue("Bearer", "tok-8c2e");
        Assert.Equal(HttpStatusCode.OK, (await client.SendAsync(bearer)).StatusCode);
    }

    [Fact]
    public async Task With_a_token_the_sign_in_sets_an_http_only_strict_cookie_and_writes_need_the_csrf_header()
    {
        const string Token = "tok-3f9a1c";
        await using var d = await TestDaemon.StartAsync(new() { ["token"] = Token });
        var cookies = new CookieContainer();
        using var browser = new HttpClient(new HttpClientHandler { CookieContainer = cookies }) { BaseAddress = d.Http.BaseAddress };

        // The page itself loads for anyone (it asks for the token); the API does not.
        Assert.Equal(HttpStatusCode.OK, (await browser.GetAsync("")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await browser.GetAsync("assets/js/main.js")).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await browser.GetAsync("api/v1/status")).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await browser.GetAsync("api/v1/events")).StatusCode);

        using var wrong = await browser.PostAsync("dashboard/signin", Json(new JsonObject { ["token"] = "guess" }));
        Assert.Equal(HttpStatusCode.Unauthorized, wrong.StatusCode);
        Assert.Empty(cookies.GetAllCookies());

        using var right = await browser.PostAsync("dashboard/signin", Json(new JsonObject { ["token"] = Token }));
        Assert.Equal(HttpStatusCode.NoContent, right.StatusCode);
        var setCookies = right.Headers.GetValues("Set-Cookie").ToList();
        var session = Assert.Single(setCookies, c => c.StartsWith("sparky_session=", StringComparison.Ordinal));
        Assert.Contains("httponly", session, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("samesite=strict", session, StringComparison.OrdinalIgnoreCase);
        var csrfCookie = Assert.Single(setCookies, c => c.StartsWith("sparky_csrf=", StringComparison.Ordinal));
        Assert.DoesNotContain("httponly", csrfCookie, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("samesite=strict", csrfCookie, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain(Token, string.Join("\n", setCookies));

        // Signed in: reads pass with the cookie alone.
        Assert.Equal(HttpStatusCode.OK, (await browser.GetAsync("api/v1/status")).StatusCode);
        using var submit = new HttpRequestMessage(HttpMethod.Post, "api/v1/tasks") { Content = Json(new JsonObject { ["payload"] = new JsonObject { ["command"] = "sleep 30" } }) };
        submit.Headers.Authorization = new AuthenticationHeaderValue("Bearer", Token);
        using var submitted = await d.Http.SendAsync(submit);
        var id = (string)JsonNode.Parse(await submitted.EnsureSuccessStatusCode().Content.ReadAsStringAsync())!["id"]!;
        using var noCsrf = await browser.DeleteAsync($"api/v1/tasks/{id}");
        Assert.Equal(HttpStatusCode.Forbidden, noCsrf.StatusCode);
        Assert.Contains("X-Sparky-CSRF", await noCsrf.Content.ReadAsStringAsync());
        using var badCsrf = new HttpRequestMessage(HttpMethod.Delete, $"api/v1/tasks/{id}");
        badCsrf.Headers.Add("X-Sparky-CSRF", "made-up");
        Assert.Equal(HttpStatusCode.Forbidden, (await browser.SendAsync(badCsrf)).StatusCode);
        using var withCsrf = new HttpRequestMessage(HttpMethod.Delete, $"api/v1/tasks/{id}");
        withCsrf.Headers.Add("X-Sparky-CSRF", cookies.GetAllCookies()["sparky_csrf"]!.Value);
        Assert.Equal(HttpStatusCode.Accepted, (await browser.SendAsync(withCsrf)).StatusCode);

        // A session cookie made up, or another daemon's, is no session.
        using var forged = new HttpRequestMessage(HttpMethod.Get, "api/v1/status");
        forged.Headers.Add("Cookie", "sparky_session=99999999999.AAAA");
        Assert.Equal(HttpStatusCode.Unauthorized, (await d.Http.SendAsync(forged)).StatusCode);
        // The bearer token works as before, without any cookie.
        using var bearer = new HttpRequestMessage(HttpMethod.Get, "api/v1/status");
        bearer.Headers.Authorization = new AuthenticationHeaderValue("Bearer", Token);
        Assert.Equal(HttpStatusCode.OK, (await d.Http.SendAsync(bearer)).StatusCode);
    }

    [Fact]
    public async Task A_session_outlives_a_daemon_restart_and_ends_when_the_token_changes()
    {
        var root = TestDaemon.NewRoot();
        try
        {
            string session, csrf;
            await using (var d = await TestDaemon.StartAsync(new() { ["token"] = "first" }, root))
            {
                using var signIn = await d.Http.PostAsync("dashboard/signin", Json(new JsonObject { ["token"] = "first" }));
                var set = signIn.Headers.GetValues("Set-Cookie").ToList();
                session = set.Single(c => c.StartsWith("sparky_session=", StringComparison.Ordinal)).Split(';')[0];
                csrf = set.Single(c => c.StartsWith("sparky_csrf=", StringComparison.Ordinal)).Split(';')[0];
            }
            await using (var again = await TestDaemon.StartAsync(new() { ["token"] = "first" }, root))
                Assert.Equal(HttpStatusCode.OK, await StatusWith(again, session));
            await using (var changed = await TestDaemon.StartAsync(new() { ["token"] = "second" }, root))
                Assert.Equal(HttpStatusCode.Unauthorized, await StatusWith(changed, session));
            Assert.NotEqual(session, csrf);
        }
        finally { Directory.Delete(root, recursive: true); }

        static async Task<HttpStatusCode> StatusWith(TestDaemon d, string cookie)
        {
            using var req = new HttpRequestMessage(HttpMethod.Get, "api/v1/status");
            req.Headers.Add("Cookie", cookie);
            using var resp = await d.Http.SendAsync(req);
            return resp.StatusCode;
        }
    }

    [Fact]
    public async Task The_log_tail_starts_that_many_bytes_before_the_end()
    {
        await using var d = await TestDaemon.StartAsync();
        var id = await d.SubmitShellAsync("seq 1 1000");
        await d.WaitAsync(id);
        var all = await d.Http.GetStringAsync($"api/v1/tasks/{id}/logs");
        Assert.Equal(string.Join("\n", Enumerable.Range(1, 1000)) + "\n", all);
        Assert.Equal("999\n1000\n", await d.Http.GetStringAsync($"api/v1/tasks/{id}/logs?tail=9"));
        Assert.Equal(all, await d.Http.GetStringAsync($"api/v1/tasks/{id}/logs?tail=100000&follow=true"));
        Assert.Equal(HttpStatusCode.BadRequest, (await d.Http.GetAsync($"api/v1/tasks/{id}/logs?tail=-1")).StatusCode);
    }

    private static StringContent Json(JsonNode body) => new(body.ToJsonString(), Encoding.UTF8, "application/json");
}
