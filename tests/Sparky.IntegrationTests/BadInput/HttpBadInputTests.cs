using System.Diagnostics;
using System.Text;
using System.Text.Json.Nodes;
using Sparky.IntegrationTests.Support;
using Xunit.Abstractions;
using static Sparky.IntegrationTests.BadInput.BadInputSupport;

namespace Sparky.IntegrationTests.BadInput;

/// <summary>
/// Bad input at the two HTTP doors that take tasks, <c>POST /api/v1/tasks</c> and <c>POST /queue/submit</c>:
/// each is refused with the right 4xx as application/problem+json with a detail, nothing is stored, no log
/// appears, and the daemon goes on serving.
/// </summary>
public sealed class HttpBadInputTests(ITestOutputHelper output)
{
    private const string Api = "api/v1/tasks";
    private const string Compat = "queue/submit";
    private static readonly string[] Doors = [Api, Compat];

    private const string Valid = """{"payload":{"command":["true"]}}""";

    /// <summary>A bad body, the status it must get, and a word its detail must hold (case-insensitive).</summary>
    private sealed record Case(string Name, Func<byte[]> Body, int Status, string Keyword, string[]? OnlyAt = null);

    private static Case Text(string name, string json, string keyword, string[]? onlyAt = null) =>
        new(name, () => Encoding.UTF8.GetBytes(json), 400, keyword, onlyAt);

    private static Case Node(string name, JsonNode node, string keyword, string[]? onlyAt = null) =>
        new(name, () => Encoding.UTF8.GetBytes(node.ToJsonString()), 400, keyword, onlyAt);

    private static JsonObject WithId(JsonNode? id) => new() { ["id"] = id, ["payload"] = new JsonObject { ["command"] = new JsonArray("true") } };

    private static JsonObject Payload(string field, JsonNode? value) =>
        new() { ["payload"] = new JsonObject { ["command"] = new JsonArray("true"), [field] = value } };

    private static JsonObject Resources(string field, JsonNode? value) =>
        Payload("resources", new JsonObject { [field] = value });

    private static IEnumerable<Case> BadBodies()
    {
        // ---- not JSON at all, or not quite ----
        yield return Text("malformed JSON (bare names)", """{payload: {command: [true]}}""", "malformed JSON");
        yield return Text("malformed JSON (single quotes)", """{'payload': {'command': ['true']}}""", "malformed JSON");
        yield return Text("malformed JSON (trailing comma)", """{"payload":{"command":["true"]},}""", "malformed JSON");
        yield return Text("malformed JSON (trailing garbage)", Valid + " and then some", "malformed JSON");
        yield return Text("malformed JSON (a comment)", "/* hi */ " + Valid, "malformed JSON");
        yield return Text("malformed JSON (NaN)", """{"payload":{"command":["true"],"retries":NaN}}""", "malformed JSON");
        yield return Text("truncated JSON (half)", Valid[..(Valid.Length / 2)], "malformed JSON");
        yield return Text("truncated JSON (last brace missing)", Valid[..^1], "malformed JSON");
        yield return Text("truncated JSON (one brace)", "{", "malformed JSON");
        yield return Text("truncated JSON (open string)", """{"payload":{"command":["tr""", "malformed JSON");
        yield return new Case("random binary bytes", () =>
        {
            var bytes = new byte[4096];
            new Random(20_240_601).NextBytes(bytes);
            bytes[0] = 0xC3; // never a JSON start, whatever the seed gives
            return bytes;
        }, 400, "JSON");
        yield return new Case("UTF-16 JSON with a BOM", () => Encoding.Unicode.GetPreamble().Concat(Encoding.Unicode.GetBytes(Valid)).ToArray(), 400, "JSON");
        yield return Text("nested 10,000 deep", new string('[', 10_000) + new string(']', 10_000), "deeper than 64");
        yield return Text("empty body", "", "empty");
        yield return Text("whitespace only", "  \r\n\t ", "JSON");

        // ---- JSON, but not a task ----
        yield return Text("JSON null", "null", "object");
        yield return Text("a JSON number", "42", "object");
        yield return Text("a JSON string", "\"run true please\"", "object");
        yield return Text("a JSON bool", "true", "object");
        yield return Text("a JSON array at /queue/submit", $"[{Valid}]", "object", [Compat]);
        yield return Text("an empty JSON array at /api/v1/tasks", "[]", "empty", [Api]);
        yield return Text("an array with one bad task (all or none)", "[" + Valid + """, {"payload":{}}]""", "task [1]", [Api]);
        yield return Text("an array with a number in it", $"[{Valid}, 5]", "task [1]", [Api]);

        // ---- missing command ----
        // A payload without command or execution names work for a handler, and no payload is an empty one: the replaced
        // system's door takes them (they end no_handler), the native door refuses them.
        yield return Text("missing command: {}", "{}", "command", [Api]);
        yield return Text("missing command: empty payload", """{"payload":{}}""", "command", [Api]);
        yield return Text("missing command: class only", """{"class":"cpu_short"}""", "command", [Api]);
        yield return Text("missing command: null", """{"payload":{"command":null}}""", "command");
        yield return Text("missing command: empty array", """{"payload":{"command":[]}}""", "command");
        yield return Text("missing command: empty string", """{"payload":{"command":""}}""", "command");
        yield return Text("missing command: blank string", """{"payload":{"command":"   "}}""", "command");
        yield return Text("missing command: empty argv[0]", """{"payload":{"command":[""]}}""", "command");
        yield return Text("missing command: nested form without one", """{"execution":{"env":{}}}""", "command");

        // ---- wrong types ----
        yield return Text("command as a number", """{"payload":{"command":42}}""", "command");
        yield return Text("command as a bool", """{"payload":{"command":true}}""", "command");
        yield return Text("command as an object", """{"payload":{"command":{"argv":["true"]}}}""", "command");
        yield return Text("command holding a number", """{"payload":{"command":["echo",1]}}""", "command");
        yield return Text("command holding null", """{"payload":{"command":["echo",null]}}""", "command");
        yield return Text("command with a NUL byte", """{"payload":{"command":["echo","a\u0000b"]}}""", "NUL");
        yield return Text("shell command with a NUL byte", """{"payload":{"command":"echo a\u0000b"}}""", "NUL");
        yield return Node("env as an array", Payload("env", new JsonArray("A=1")), "env");
        yield return Node("env as a string", Payload("env", "A=1"), "env");
        yield return Node("env value as an object", Payload("env", new JsonObject { ["A"] = new JsonObject { ["b"] = 1 } }), "env");
        yield return Node("env value as an array", Payload("env", new JsonObject { ["A"] = new JsonArray("x") }), "env");
        yield return Node("env name with '='", Payload("env", new JsonObject { ["A=B"] = "1" }), "env");
        yield return Node("env name empty", Payload("env", new JsonObject { [""] = "1" }), "env");
        yield return Node("env value with a NUL byte", Payload("env", new JsonObject { ["A"] = "x\0y" }), "NUL");
        yield return Node("retries as a string", Payload("retries", "3"), "retries");
        yield return Node("retries negative", Payload("retries", -1), "retries");
        yield return Node("retries fractional", Payload("retries", 1.5), "retries");
        yield return Node("retries huge", Payload("retries", 1_000_000), "retries");
        yield return Text("retries overflowing a double", """{"payload":{"command":["true"],"retries":1e400}}""", "retries");
        yield return Node("timeout_seconds as a string", Payload("timeout_seconds", "1h"), "timeout_seconds");
        yield return Node("timeout_seconds zero", Payload("timeout_seconds", 0), "timeout_seconds");
        yield return Node("timeout_seconds negative", Payload("timeout_seconds", -5), "timeout_seconds");
        yield return Text("timeout_seconds overflowing a double", """{"payload":{"command":["true"],"timeout_seconds":1e400}}""", "timeout_seconds");
        yield return Node("cwd as a number", Payload("cwd", 7), "cwd");
        yield return Node("cwd empty", Payload("cwd", ""), "cwd");
        yield return Node("resources as an array", Payload("resources", new JsonArray(1, 2)), "resources");
        yield return Node("resources.cpus as a string", Resources("cpus", "2"), "cpus");
        yield return Node("resources.cpus negative", Resources("cpus", -1), "cpus");
        yield return Node("resources.memory_mb negative", Resources("memory_mb", -512), "memory_mb");
        yield return Node("resources.gpus fractional", Resources("gpus", 0.5), "gpus");
        yield return Text("payload as a string", """{"payload":"true"}""", "payload", [Api]);
        yield return Text("payload as an array", """{"payload":["true"]}""", "payload", [Api]);
        yield return Text("payload.execution as a string", """{"payload":{"execution":"true"}}""", "payload.execution");
        yield return Text("payload with both command and execution", """{"payload":{"command":["true"],"execution":{"command":["true"]}}}""", "both");
        yield return Text("execution as a string", """{"execution":"true"}""", "execution");
        yield return Text("execution.resources.mem_bytes as a string", """{"execution":{"command":["true"],"resources":{"mem_bytes":"lots"}}}""", "mem_bytes");
        yield return Text("execution.working_dir as a number", """{"execution":{"command":["true"],"working_dir":1}}""", "working_dir");
        yield return Text("class as a number", """{"class":3,"payload":{"command":["true"]}}""", "class");
        yield return Text("name as a number", """{"name":3,"payload":{"command":["true"]}}""", "name");
        yield return Text("name with a control character", """{"name":"a\u0007b","payload":{"command":["true"]}}""", "name");
        yield return Node("name too long", new JsonObject { ["name"] = new string('n', 300), ["payload"] = new JsonObject { ["command"] = new JsonArray("true") } }, "name");
        yield return Text("after as a string", """{"after":"abc","payload":{"command":["true"]}}""", "after");
        yield return Text("after holding a number", """{"after":[42],"payload":{"command":["true"]}}""", "after");
        yield return Text("after holding a hostile id", """{"after":["../../etc/passwd"],"payload":{"command":["true"]}}""", "after");
        yield return Text("array as a number", """{"array":5,"payload":{"command":["true"]}}""", "array");
        yield return Text("array as a bad range", """{"array":"banana","payload":{"command":["true"]}}""", "array");

        // ---- hostile ids ----
        yield return Node("id ../../etc/passwd", WithId("../../etc/passwd"), "id");
        yield return Node("id a/b", WithId("a/b"), "id");
        yield return Node("id with a NUL byte", WithId("a\0b"), "id");
        yield return Node("id of 10,000 characters", WithId(new string('a', 10_000)), "id");
        yield return Node("id of 129 characters", WithId(new string('a', 129)), "id");
        yield return Node("id empty", WithId(""), "id");
        yield return Node("id ..", WithId(".."), "id");
        yield return Node("id starting with a dot", WithId(".hidden"), "id");
        yield return Node("id starting with a dash", WithId("-rf"), "id");
        yield return Node("id with a space", WithId("a b"), "id");
        yield return Node("id with a trailing newline", WithId("abc\n"), "id");
        yield return Node("id with a backslash", WithId("a\\b"), "id");
        yield return Node("id not ASCII", WithId("tâche"), "id");
        yield return Node("id as a number", WithId(42), "id");
        yield return Node("id as an object", WithId(new JsonObject()), "id");

        // ---- unknown class, unknown dependency ----
        yield return Text("unknown class", """{"class":"quantum","payload":{"command":["true"]}}""", "class");
        yield return Text("unknown class (wrong case)", """{"class":"CPU_SHORT","payload":{"command":["true"]}}""", "class");
        yield return Text("unknown class (empty)", """{"class":"","payload":{"command":["true"]}}""", "class");
        yield return Text("unknown dependency in after", """{"after":["no-such-task"],"payload":{"command":["true"]}}""", "dependency");
    }

    [Fact]
    public async Task Bad_bodies_are_refused_with_problem_json_and_nothing_is_stored()
    {
        await using var d = await TestDaemon.StartAsync();
        var counter = new CaseCounter(output, "http");
        var failures = new List<string>();
        Assert.Equal(0, await SubmittedAsync(d.Http));

        foreach (var c in BadBodies())
            foreach (var door in c.OnlyAt ?? Doors)
                await Check(d, counter, failures, door, c.Name, c.Body(), c.Status, c.Keyword, expectedSubmitted: 0);

        counter.Report();
        foreach (var f in failures) output.WriteLine("FAILED: " + f);
        Assert.True(failures.Count == 0, $"{failures.Count} bad-input cases were not refused as they should be:\n{string.Join("\n", failures)}");

        // Nothing at all was stored, and no task ever started.
        Assert.Empty(await AllTasksAsync(d.Http));
        Assert.Empty(LogEntries(d));

        // The daemon still serves, at both doors.
        await AssertStillServes(d);
    }

    /// <summary>
    /// Strings that System.Text.Json only decodes when they are read (invalid UTF-8, a lone surrogate
    /// escape) and duplicate property names (which only throw when a JsonObject builds its dictionary)
    /// are bad input like any other: 400, not an unhandled exception and a 500.
    /// </summary>
    [Fact]
    public async Task Undecodable_strings_and_duplicate_keys_are_400_not_500()
    {
        await using var d = await TestDaemon.StartAsync();
        var counter = new CaseCounter(output, "http");
        var failures = new List<string>();
        byte[] Utf8WithRawByte(string before, byte raw, string after) =>
            [.. Encoding.UTF8.GetBytes(before), raw, .. Encoding.UTF8.GetBytes(after)];

        var cases = new (string Name, byte[] Body)[]
        {
            ("duplicate key at the top level", Encoding.UTF8.GetBytes("""{"payload":{"command":["true"]},"payload":{"command":["false"]}}""")),
            ("duplicate key in env", Encoding.UTF8.GetBytes("""{"payload":{"command":["true"],"env":{"A":"1","A":"2"}}}""")),
            ("lone surrogate in command", Encoding.UTF8.GetBytes("""{"payload":{"command":["\ud800"]}}""")),
            ("lone surrogate in an env name", Encoding.UTF8.GetBytes("""{"payload":{"command":["true"],"env":{"\ud800":"x"}}}""")),
            ("lone surrogate in an unknown field", Encoding.UTF8.GetBytes("""{"payload":{"command":["true"]},"workflow_id":"\udc00"}""")),
            ("invalid UTF-8 in command", Utf8WithRawByte("{\"payload\":{\"command\":[\"", 0xFF, "\"]}}")),
            ("invalid UTF-8 in the id", Utf8WithRawByte("{\"id\":\"", 0xFE, "\",\"payload\":{\"command\":[\"true\"]}}")),
        };
        foreach (var (name, body) in cases)
            foreach (var door in Doors)
                await Check(d, counter, failures, door, name, body, 400, keyword: null, expectedSubmitted: 0);

        counter.Report();
        foreach (var f in failures) output.WriteLine("FAILED: " + f);
        Assert.True(failures.Count == 0, $"{failures.Count} bad-input cases were not refused as they should be:\n{string.Join("\n", failures)}");
        Assert.Empty(await AllTasksAsync(d.Http));
        await AssertStillServes(d);
    }

    /// <summary>A 50 MB body (the bound is 16 MiB) is 413 at each door: one request each, in well under a minute.</summary>
    [Fact]
    public async Task A_50_MB_body_is_413_and_the_daemon_goes_on()
    {
        await using var d = await TestDaemon.StartAsync();
        var counter = new CaseCounter(output, "http");
        // A well-formed envelope padded to 50 MB: only its size is wrong.
        var prefix = Encoding.UTF8.GetBytes("{\"payload\":{\"command\":[\"true\"]},\"pad\":\"");
        var suffix = Encoding.UTF8.GetBytes("\"}");
        var body = new byte[50 * 1024 * 1024];
        Array.Fill(body, (byte)'a');
        prefix.CopyTo(body, 0);
        suffix.CopyTo(body, body.Length - suffix.Length);

        var server = new Uri(d.Daemon.Url);
        foreach (var door in Doors)
        {
            // As curl sends it: Content-Length, no Expect; the answer may come (and the connection close) mid-upload.
            await Check413(d, counter, $"{door} 50 MB body (Content-Length)", () => RawPostAsync(server, door, body, chunked: false));
            // Chunked, no length up front: the bound is found while reading.
            await Check413(d, counter, $"{door} 50 MB body (chunked)", () => RawPostAsync(server, door, body, chunked: true));
            // As a .NET client sends a big body: Expect: 100-continue, so the body is never sent at all.
            await Check413(d, counter, $"{door} 50 MB body (HttpClient, Expect: 100-continue)", async () =>
            {
                using var req = new HttpRequestMessage(HttpMethod.Post, door) { Content = Json(body) };
                req.Headers.ExpectContinue = true;
                using var resp = await d.Http.SendAsync(req);
                return new HttpAnswer((int)resp.StatusCode, resp.Content.Headers.ContentType?.MediaType, await resp.Content.ReadAsStringAsync());
            });
        }
        counter.Report();
        Assert.Empty(await AllTasksAsync(d.Http));
        await AssertStillServes(d);
    }

    [Fact]
    public async Task A_duplicate_client_id_with_another_envelope_is_409_and_changes_nothing()
    {
        await using var d = await TestDaemon.StartAsync();
        var counter = new CaseCounter(output, "http");
        var first = await d.SubmitAsync(JsonNode.Parse("""{"id":"dup-1","payload":{"command":["true"]}}""")!);
        Assert.Equal(["dup-1"], first);
        Assert.Equal("succeeded", (string?)(await d.WaitAsync("dup-1"))["state"]);
        // An array's members take the id's name with _N; those names are taken too.
        Assert.Equal(["arr_0", "arr_1"], await d.SubmitAsync(JsonNode.Parse("""{"id":"arr","array":"0-1","payload":{"command":["true"]}}""")!));
        await d.WaitAsync("arr_0");
        await d.WaitAsync("arr_1");
        long submitted = await SubmittedAsync(d.Http);
        Assert.Equal(3, submitted);

        var failures = new List<string>();
        foreach (var door in Doors)
        {
            await Check(d, counter, failures, door, "the same id again", Encoding.UTF8.GetBytes("""{"id":"dup-1","payload":{"command":["false"]}}"""), 409, "dup-1", submitted);
            await Check(d, counter, failures, door, "an array member's id", Encoding.UTF8.GetBytes("""{"id":"arr_1","payload":{"command":["true"]}}"""), 409, "arr_1", submitted);
            await Check(d, counter, failures, door, "the same id in the nested form", Encoding.UTF8.GetBytes("""{"id":"dup-1","workflow_id":"w","execution":{"command":["true"]}}"""), 409, "dup-1", submitted);
        }
        await Check(d, counter, failures, Api, "a batch with a fresh id and a taken one", Encoding.UTF8.GetBytes("""[{"id":"fresh-1","payload":{"command":["true"]}},{"id":"dup-1","payload":{"command":["false"]}}]"""), 409, "dup-1", submitted);
        await Check(d, counter, failures, Api, "a batch naming one id twice", Encoding.UTF8.GetBytes("""[{"id":"twice","payload":{"command":["true"]}},{"id":"twice","payload":{"command":["true"]}}]"""), 409, "twice", submitted);
        await Check(d, counter, failures, Api, "an array colliding with a taken id", Encoding.UTF8.GetBytes("""{"id":"arr","array":"1-2","payload":{"command":["true"]}}"""), 409, "arr_1", submitted);
        counter.Report();
        Assert.True(failures.Count == 0, string.Join("\n", failures));

        // The batches were all-or-none: their fresh ids are not stored either.
        foreach (var id in new[] { "fresh-1", "twice", "arr_2" })
            Assert.Equal(404, (await SendAsync(d.Http, HttpMethod.Get, $"api/v1/tasks/{id}")).Status);
        // The original is untouched: one attempt, still succeeded, its command still `true`.
        var t = await d.GetTaskAsync("dup-1");
        Assert.Equal("succeeded", (string?)t["state"]);
        Assert.Equal(1, (int?)t["attempts"]);
        Assert.Equal("true", (string?)t["command"]![0]);
        Assert.Equal(submitted, (long)(await AllTasksAsync(d.Http)).Count);
        await AssertStillServes(d);
    }

    /// <summary>
    /// A task that names itself in <c>after</c> can never run. It must be refused (400), or end failed;
    /// it must not sit queued forever, holding its place and its id.
    /// </summary>
    [Fact]
    public async Task A_task_that_depends_on_itself_is_refused_or_fails_and_never_hangs()
    {
        await using var d = await TestDaemon.StartAsync();
        foreach (var door in Doors)
        {
            var id = "self-" + door.Replace('/', '-');
            var a = await SendAsync(d.Http, HttpMethod.Post, door, Json($$$"""{"id":"{{{id}}}","after":["{{{id}}}"],"payload":{"command":["true"]}}"""));
            output.WriteLine($"POST /{door} self-dependency -> {a}");
            if (a.Status == 400)
            {
                Assert.Equal("application/problem+json", a.ContentType);
                Assert.Equal(404, (await SendAsync(d.Http, HttpMethod.Get, $"api/v1/tasks/{id}")).Status);
                continue;
            }
            Assert.True(a.Status is 200 or 201, $"/{door}: {a}");
            var state = "";
            bool ended = await EventuallyAsync(async () =>
                (state = (string)(await d.GetTaskAsync(id))["state"]!) is "failed" or "cancelled" or "succeeded", seconds: 30);
            Assert.True(ended, $"/{door}: a task that depends on itself was accepted and is still '{state}' after 30 s (it can never run)");
            var t = await d.GetTaskAsync(id);
            Assert.Equal("failed", (string?)t["state"]);
            Assert.Equal(0, (int?)t["attempts"]);
        }
        await AssertStillServes(d);
    }

    /// <summary>Two tasks that wait on each other can never run: refused, or both failed, never run.</summary>
    [Fact]
    public async Task A_dependency_cycle_in_one_batch_is_refused_or_fails_and_never_runs()
    {
        await using var d = await TestDaemon.StartAsync();
        var a = await SendAsync(d.Http, HttpMethod.Post, Api, Json("""
            [{"id":"cyc-x","after":["cyc-y"],"payload":{"command":["true"]}},
             {"id":"cyc-y","after":["cyc-x"],"payload":{"command":["true"]}}]
            """));
        output.WriteLine($"POST /{Api} a two-task cycle -> {a}");
        if (a.Status == 400)
        {
            Assert.Equal("application/problem+json", a.ContentType);
            Assert.Equal(0, await SubmittedAsync(d.Http));
            return;
        }
        Assert.Equal(201, a.Status);
        foreach (var id in new[] { "cyc-x", "cyc-y" })
        {
            var state = "";
            bool ended = await EventuallyAsync(async () =>
                (state = (string)(await d.GetTaskAsync(id))["state"]!) is "failed" or "cancelled" or "succeeded", seconds: 30);
            Assert.True(ended, $"{id} of a dependency cycle is still '{state}' after 30 s");
            var t = await d.GetTaskAsync(id);
            Assert.True((string?)t["state"] == "failed" && (int?)t["attempts"] == 0,
                $"{id} is in a dependency cycle, so it can never have its dependency met; yet it ended {t["state"]} after {t["attempts"]} attempt(s)");
        }
    }

    /// <summary>
    /// Within one batch, a task may name a dependency that comes later in the same array; it must still wait
    /// for it (or the batch must be refused) — never start before its dependency has succeeded.
    /// </summary>
    [Fact]
    public async Task A_dependency_named_later_in_the_same_batch_is_still_waited_for()
    {
        await using var d = await TestDaemon.StartAsync();
        var a = await SendAsync(d.Http, HttpMethod.Post, Api, Json("""
            [{"id":"fwd-dependant","after":["fwd-dependency"],"payload":{"command":["true"]}},
             {"id":"fwd-dependency","payload":{"command":["sleep","1"]}}]
            """));
        output.WriteLine($"POST /{Api} a forward reference -> {a}");
        if (a.Status == 400)
        {
            Assert.Equal("application/problem+json", a.ContentType);
            return;
        }
        Assert.Equal(201, a.Status);
        var dependency = await d.WaitAsync("fwd-dependency");
        var dependant = await d.WaitAsync("fwd-dependant");
        Assert.Equal("succeeded", (string?)dependency["state"]);
        Assert.Equal("succeeded", (string?)dependant["state"]);
        var depFinished = DateTimeOffset.Parse((string)dependency["finished_at"]!);
        var started = DateTimeOffset.Parse((string)dependant["started_at"]!);
        Assert.True(started >= depFinished,
            $"fwd-dependant started at {started:HH:mm:ss.fff}, before its dependency fwd-dependency finished at {depFinished:HH:mm:ss.fff}");
    }

    [Fact]
    public async Task Hostile_ids_in_the_url_are_400_or_404_never_500()
    {
        await using var d = await TestDaemon.StartAsync();
        var counter = new CaseCounter(output, "http");
        var failures = new List<string>();
        var longId = new string('a', 10_000);
        var ids = new (string Name, string Escaped, int[] Allowed)[]
        {
            ("../../etc/passwd, escaped", "..%2F..%2Fetc%2Fpasswd", [400, 404]),
            ("../../etc/passwd, raw", "../../etc/passwd", [400, 404]),
            ("a/b, escaped", "a%2Fb", [400, 404]),
            ("a NUL byte", "a%00b", [400, 404]),
            ("%2E%2E", "%2E%2E", [400, 404]),
            ("a dotfile", ".hidden", [400, 404]),
            ("a space", "a%20b", [400, 404]),
            ("a newline", "abc%0A", [400, 404]),
            ("not ASCII", "t%C3%A2che", [400, 404]),
            ("invalid UTF-8", "%FF%FE", [400, 404]),
            ("129 characters", new string('a', 129), [400, 404]),
            ("5,000 characters (under the request-line limit)", new string('a', 5_000), [400, 404]),
            // Past Kestrel's request-line limit the server itself answers 414 URI Too Long.
            ("10,000 characters", longId, [400, 404, 414]),
            ("a well-formed id nobody used", "no-such-task", [404]),
        };
        var routes = new (HttpMethod Method, string Format)[]
        {
            (HttpMethod.Get, "api/v1/tasks/{0}"),
            (HttpMethod.Delete, "api/v1/tasks/{0}"),
            (HttpMethod.Post, "api/v1/tasks/{0}/retry"),
            (HttpMethod.Get, "api/v1/tasks/{0}/logs"),
            (HttpMethod.Get, "slurm/status/{0}"),
        };
        foreach (var (name, escaped, allowed) in ids)
            foreach (var (method, format) in routes)
            {
                var path = string.Format(format, escaped);
                var label = $"{method} {string.Format(format, name)}";
                try
                {
                    var a = await SendAsync(d.Http, method, path);
                    Assert.True(allowed.Contains(a.Status), $"{label}: expected one of {string.Join("/", allowed)}, got {a}");
                    // When Sparky answered (not Kestrel, not the router), it answered in problem+json with a detail.
                    if (a.Raw.Length > 0)
                    {
                        Assert.True(a.ContentType == "application/problem+json", $"{label}: {a}");
                        Assert.False(string.IsNullOrWhiteSpace(a.Detail), $"{label}: no detail in {a}");
                    }
                    counter.Passed(label, $"{a.Status} {a.Detail}");
                }
                catch (Exception e) when (e is Xunit.Sdk.XunitException or HttpRequestException)
                {
                    failures.Add(e.Message);
                }
            }
        counter.Report();
        Assert.True(failures.Count == 0, string.Join("\n", failures));
        Assert.Equal(0, await SubmittedAsync(d.Http));
        Assert.Empty(LogEntries(d));
        await AssertStillServes(d);
    }

    // ---------- helpers ----------

    private static async Task Check413(TestDaemon d, CaseCounter counter, string label, Func<Task<HttpAnswer>> send)
    {
        var sw = Stopwatch.StartNew();
        var a = await send();
        sw.Stop();
        Assert.True(a.Status == 413, $"{label}: expected 413, got {a}");
        Assert.Equal("application/problem+json", a.ContentType);
        Assert.False(string.IsNullOrWhiteSpace(a.Detail), $"{label}: no detail in {a}");
        Assert.Equal(0, await SubmittedAsync(d.Http));
        Assert.Empty(LogEntries(d));
        counter.Passed(label, $"{a.Status} in {sw.ElapsedMilliseconds} ms: {a.Detail}");
    }

    /// <summary>One refused request: the status, problem+json, a detail (holding the keyword), and nothing changed.</summary>
    private static async Task Check(TestDaemon d, CaseCounter counter, List<string> failures, string door, string name, byte[] body,
        int status, string? keyword, long expectedSubmitted)
    {
        var label = $"POST /{door} {name}";
        var logsBefore = LogEntries(d);
        try
        {
            var a = await SendAsync(d.Http, HttpMethod.Post, door, Json(body));
            Assert.True(a.Status == status, $"{label}: expected {status}, got {a}");
            Assert.True(a.ContentType == "application/problem+json", $"{label}: content type {a.ContentType}");
            Assert.False(string.IsNullOrWhiteSpace(a.Detail), $"{label}: no detail in {a}");
            if (keyword is not null)
                Assert.True(a.Detail!.Contains(keyword, StringComparison.OrdinalIgnoreCase), $"{label}: the detail '{a.Detail}' does not mention '{keyword}'");
            var submitted = await SubmittedAsync(d.Http);
            Assert.True(submitted == expectedSubmitted, $"{label}: submitted went from {expectedSubmitted} to {submitted}");
            var logsAfter = LogEntries(d);
            Assert.True(logsAfter.SequenceEqual(logsBefore), $"{label}: new entries under logs/: {string.Join(", ", logsAfter.Except(logsBefore))}");
            counter.Passed(label, $"{a.Status}: {Clip(a.Detail!)}");
        }
        catch (Exception e) when (e is Xunit.Sdk.XunitException or HttpRequestException)
        {
            failures.Add(e.Message);
        }
    }

    /// <summary>A valid task at each door still runs to succeeded.</summary>
    private static async Task AssertStillServes(TestDaemon d)
    {
        var api = await SendAsync(d.Http, HttpMethod.Post, Api, Json(Valid));
        Assert.True(api.Status == 201, $"after the bad input, a valid task at /{Api} got {api}");
        var apiId = (string)JsonNode.Parse(api.Raw)!["ids"]![0]!;
        var compat = await SendAsync(d.Http, HttpMethod.Post, Compat, Json(Valid));
        Assert.True(compat.Status == 200, $"after the bad input, a valid task at /{Compat} got {compat}");
        var reply = JsonNode.Parse(compat.Raw)!;
        Assert.Equal(true, (bool?)reply["ok"]);
        var compatId = (string)reply["id"]!;
        foreach (var id in new[] { apiId, compatId })
        {
            var t = await d.WaitAsync(id);
            Assert.Equal("succeeded", (string?)t["state"]);
            Assert.Equal(0, (int?)t["exit_code"]);
        }
    }

    private static string Clip(string s) => s.Length <= 160 ? s : s[..160] + "…";
}
