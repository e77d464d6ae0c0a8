using System.Text;
using System.Text.Json.Nodes;
using Sparky.IntegrationTests.Support;
using Xunit.Abstractions;
using static Sparky.IntegrationTests.BadInput.BadInputSupport;

namespace Sparky.IntegrationTests.BadInput;

/// <summary>
/// Bad input at the drop directory, <c>&lt;data&gt;/queue/pending/</c>: files are written the way a producer
/// must (under a dot or <c>.tmp</c> name, then renamed), and each bad one must end in <c>rejected/</c> beside a
/// readable <c>.reason</c>, with nothing stored; a good one ends in <c>accepted/</c>, runs, and its done file
/// keeps the envelope it came in.
/// </summary>
public sealed class DropDirBadInputTests(ITestOutputHelper output)
{
    private sealed record Case(string Name, byte[] Body, string Keyword);

    private static Case Text(string name, string json, string keyword) => new(name, Encoding.UTF8.GetBytes(json), keyword);

    private static Case Node(string name, JsonNode node, string keyword) => new(name, Encoding.UTF8.GetBytes(node.ToJsonString()), keyword);

    private static JsonObject WithId(JsonNode? id) => new() { ["id"] = id, ["payload"] = new JsonObject { ["command"] = new JsonArray("true") } };

    private static JsonObject Payload(string field, JsonNode? value) =>
        new() { ["payload"] = new JsonObject { ["command"] = new JsonArray("true"), [field] = value } };

    private const string Valid = """{"payload":{"command":["true"]}}""";

    private static IEnumerable<Case> BadFiles()
    {
        yield return Text("malformed", """{payload: {command: [true]}}""", "malformed JSON");
        yield return Text("trailing-garbage", Valid + " and then some", "malformed JSON");
        yield return Text("truncated-half", Valid[..(Valid.Length / 2)], "malformed JSON");
        yield return Text("truncated-brace", Valid[..^1], "malformed JSON");
        var binary = new byte[4096];
        new Random(20_240_602).NextBytes(binary);
        binary[0] = 0xC3;
        yield return new Case("binary", binary, "JSON");
        yield return Text("empty", "", "JSON");
        yield return Text("nested-deep", new string('[', 10_000) + new string(']', 10_000), "malformed JSON");
        yield return Text("json-null", "null", "object");
        yield return Text("json-array", $"[{Valid}]", "object");
        yield return Text("json-number", "42", "object");
        yield return Text("missing-command", """{"payload":{"command":null}}""", "command");
        yield return Text("missing-command-in-execution", """{"execution":{"env":{}}}""", "command");
        yield return Text("missing-command-empty-argv", """{"payload":{"command":[]}}""", "command");
        yield return Text("command-number", """{"payload":{"command":42}}""", "command");
        yield return Text("command-holding-a-number", """{"payload":{"command":["echo",1]}}""", "command");
        yield return Text("command-with-nul", """{"payload":{"command":["echo","a\u0000b"]}}""", "NUL");
        yield return Node("env-array", Payload("env", new JsonArray("A=1")), "env");
        yield return Node("env-value-object", Payload("env", new JsonObject { ["A"] = new JsonObject() }), "env");
        yield return Node("retries-string", Payload("retries", "3"), "retries");
        yield return Node("retries-negative", Payload("retries", -1), "retries");
        yield return Node("timeout-string", Payload("timeout_seconds", "1h"), "timeout_seconds");
        yield return Node("resources-array", Payload("resources", new JsonArray()), "resources");
        yield return Text("payload-execution-string", """{"payload":{"execution":"true"}}""", "payload.execution");
        yield return Text("execution-bad-mem", """{"execution":{"command":["true"],"resources":{"mem_bytes":"lots"}}}""", "mem_bytes");
        yield return Node("id-dotdot-etc-passwd", WithId("../../etc/passwd"), "id");
        yield return Node("id-slash", WithId("a/b"), "id");
        yield return Node("id-nul", WithId("a\0b"), "id");
        yield return Node("id-10000-chars", WithId(new string('a', 10_000)), "id");
        yield return Node("id-dot", WithId(".hidden"), "id");
        yield return Node("id-number", WithId(42), "id");
        yield return Text("unknown-class", """{"class":"quantum","payload":{"command":["true"]}}""", "class");
        yield return Text("class-number", """{"class":1,"payload":{"command":["true"]}}""", "class");
        yield return Text("unknown-dependency", """{"after":["no-such-task"],"payload":{"command":["true"]}}""", "dependency");
        yield return Text("after-hostile", """{"after":["../x"],"payload":{"command":["true"]}}""", "after");
        yield return Text("array-bad-range", """{"array":"9-1","payload":{"command":["true"]}}""", "array");
        // Over the bound (max_body_mb = 1): a well-formed envelope of 2 MiB.
        yield return new Case("over-the-size-bound", Padded(2 * 1024 * 1024), "bytes");
    }

    private static byte[] Padded(int size)
    {
        var prefix = Encoding.UTF8.GetBytes("{\"payload\":{\"command\":[\"true\"]},\"pad\":\"");
        var bytes = new byte[size];
        Array.Fill(bytes, (byte)'a');
        prefix.CopyTo(bytes, 0);
        "\"}"u8.ToArray().CopyTo(bytes, size - 2);
        return bytes;
    }

    [Fact]
    public async Task Bad_files_end_in_rejected_with_a_reason_and_nothing_is_stored()
    {
        await using var d = await TestDaemon.StartAsync(new() { ["max_body_mb"] = "1" });
        var counter = new CaseCounter(output, "drop");
        var cases = BadFiles().ToList();
        int i = 0;
        foreach (var c in cases) Drop(d, c.Name + ".json", c.Body, dotTemp: i++ % 2 == 0);

        var failures = new List<string>();
        foreach (var c in cases)
        {
            var name = c.Name + ".json";
            try
            {
                var reason = await WaitRejectedAsync(d, name, seconds: 20);
                Assert.True(reason is not null, $"{name}: not in rejected/ with a .reason after 20 s (pending/ holds: {string.Join(", ", Names(d, "pending"))})");
                AssertReadable(name, reason!);
                Assert.True(reason!.Contains(c.Keyword, StringComparison.OrdinalIgnoreCase), $"{name}: the reason '{reason.TrimEnd()}' does not mention '{c.Keyword}'");
                // The file is moved as it was, for the producer to inspect.
                Assert.True(File.ReadAllBytes(Path.Combine(Queue(d, "rejected"), name)).AsSpan().SequenceEqual(c.Body), $"{name}: the rejected file is not the file dropped");
                Assert.False(File.Exists(Path.Combine(Queue(d, "pending"), name)), $"{name}: still in pending/");
                counter.Passed(name, reason.TrimEnd());
            }
            catch (Xunit.Sdk.XunitException e) { failures.Add(e.Message); }
        }
        counter.Report();
        foreach (var f in failures) output.WriteLine("FAILED: " + f);
        Assert.True(failures.Count == 0, $"{failures.Count} bad files were not rejected as they should be:\n{string.Join("\n", failures)}");

        // Nothing was stored, nothing was accepted, nothing ran.
        Assert.Equal(0, await SubmittedAsync(d.Http));
        Assert.Empty(await AllTasksAsync(d.Http));
        Assert.Empty(Names(d, "accepted"));
        Assert.Empty(Names(d, "pending"));
        Assert.Empty(LogEntries(d));

        // And the drop directory still takes a good file.
        Drop(d, "after-the-bad-ones.json", Encoding.UTF8.GetBytes("""{"id":"after-bad","payload":{"command":["true"]}}"""), dotTemp: false);
        Assert.True(await EventuallyAsync(() => Task.FromResult(File.Exists(Path.Combine(Queue(d, "done"), "after-bad.json"))), seconds: 20),
            "a valid file dropped after the bad ones did not run to a done file");
        Assert.Equal("succeeded", (string?)(await d.GetTaskAsync("after-bad"))["state"]);
    }

    /// <summary>
    /// The same lazily-decoded JSON that gives a 500 over HTTP: the drop directory's worker throws, logs one
    /// line, and leaves the file in pending/ forever, with no reason for the producer. It must be rejected.
    /// A valid file dropped after them is the clock: the worker takes files in order, so once it is accepted,
    /// the bad ones before it have been dealt with.
    /// </summary>
    [Fact]
    public async Task Undecodable_strings_and_duplicate_keys_are_rejected_not_left_in_pending()
    {
        await using var d = await TestDaemon.StartAsync();
        var counter = new CaseCounter(output, "drop");
        byte[] Raw(string before, byte raw, string after) => [.. Encoding.UTF8.GetBytes(before), raw, .. Encoding.UTF8.GetBytes(after)];
        var cases = new (string Name, byte[] Body)[]
        {
            ("duplicate-key.json", Encoding.UTF8.GetBytes("""{"payload":{"command":["true"]},"payload":{"command":["false"]}}""")),
            ("duplicate-env-key.json", Encoding.UTF8.GetBytes("""{"payload":{"command":["true"],"env":{"A":"1","A":"2"}}}""")),
            ("lone-surrogate.json", Encoding.UTF8.GetBytes("""{"payload":{"command":["\ud800"]}}""")),
            ("invalid-utf8.json", Raw("{\"payload\":{\"command\":[\"", 0xFF, "\"]}}")),
        };
        foreach (var (name, body) in cases) Drop(d, name, body, dotTemp: true);
        Drop(d, "canary.json", Encoding.UTF8.GetBytes("""{"id":"canary","payload":{"command":["true"]}}"""), dotTemp: true);
        Assert.True(await EventuallyAsync(() => Task.FromResult(File.Exists(Path.Combine(Queue(d, "accepted"), "canary.json"))), seconds: 20),
            "the canary was not accepted");

        // The canary is no clock for files the daemon's start-up scan found (it takes them in the directory's order,
        // not the order they came in): wait until each bad file has left pending/.
        await EventuallyAsync(() => Task.FromResult(cases.All(c => !File.Exists(Path.Combine(Queue(d, "pending"), c.Name)))), seconds: 20);
        var failures = new List<string>();
        foreach (var (name, _) in cases)
        {
            var reasonPath = Path.Combine(Queue(d, "rejected"), name + ".reason");
            if (File.Exists(Path.Combine(Queue(d, "rejected"), name)) && File.Exists(reasonPath))
                counter.Passed(name, File.ReadAllText(reasonPath).TrimEnd());
            else
                failures.Add($"{name}: not rejected (in pending/: {File.Exists(Path.Combine(Queue(d, "pending"), name))}; rejected/ holds: {string.Join(", ", Names(d, "rejected"))})");
        }
        counter.Report();
        Assert.True(failures.Count == 0, string.Join("\n", failures));
        Assert.Equal(1, await SubmittedAsync(d.Http));
    }

    [Fact]
    public async Task A_valid_envelope_is_accepted_runs_and_its_done_file_keeps_the_envelope()
    {
        await using var d = await TestDaemon.StartAsync();
        var pending = Queue(d, "pending");
        // Files still being written are left alone: a .tmp name, and a dot name.
        var halfWritten = Path.Combine(pending, "half-written.json.tmp");
        var hidden = Path.Combine(pending, ".being-written.json");
        File.WriteAllText(halfWritten, """{"id":"must-not-run-1","payload":{"command":["true"]}}""");
        File.WriteAllText(hidden, """{"id":"must-not-run-2","payload":{"command":["true"]}}""");

        Drop(d, "drop-ok.json", Encoding.UTF8.GetBytes("""{"id":"drop-ok","workflow_id":"wf-42","tenant":"acme","payload":{"command":["true"]}}"""), dotTemp: true);
        var accepted = Path.Combine(Queue(d, "accepted"), "drop-ok.json");
        var done = Path.Combine(Queue(d, "done"), "drop-ok.json");
        Assert.True(await EventuallyAsync(() => Task.FromResult(File.Exists(accepted)), seconds: 20), "drop-ok.json never reached accepted/");
        Assert.False(File.Exists(Path.Combine(pending, "drop-ok.json")));
        Assert.True(await EventuallyAsync(() => Task.FromResult(File.Exists(done)), seconds: 20), "done/drop-ok.json never appeared");

        var doneFile = JsonNode.Parse(File.ReadAllText(done))!;
        output.WriteLine("done/drop-ok.json: " + doneFile.ToJsonString());
        Assert.Equal("drop-ok", (string?)doneFile["id"]);
        Assert.Equal("succeeded", (string?)doneFile["state"]);
        Assert.Equal(0, (int?)doneFile["exit_code"]);
        Assert.Equal("cpu_short", (string?)doneFile["class"]);
        Assert.Equal("wf-42", (string?)doneFile["workflow_id"]);   // an unknown field, kept
        Assert.Equal("acme", (string?)doneFile["tenant"]);
        Assert.Equal(["true"], ((JsonArray)doneFile["payload"]!["command"]!).Select(x => (string)x!));
        Assert.NotNull((string?)doneFile["completed_at"]);
        Assert.True((long?)doneFile["duration_ms"] >= 0);
        Assert.Equal("succeeded", (string?)(await d.GetTaskAsync("drop-ok"))["state"]);

        // The same id again is a conflict: rejected, with the reason naming it; nothing more stored.
        Drop(d, "drop-ok-again.json", Encoding.UTF8.GetBytes("""{"id":"drop-ok","payload":{"command":["false"]}}"""), dotTemp: false);
        var reason = await WaitRejectedAsync(d, "drop-ok-again.json", seconds: 20);
        Assert.NotNull(reason);
        AssertReadable("drop-ok-again.json", reason!);
        Assert.Contains("drop-ok", reason);
        output.WriteLine("drop-ok-again.json rejected: " + reason.TrimEnd());

        // The nested form of the replaced runner: a fresh id, and its fields kept too.
        Drop(d, "nested.json", Encoding.UTF8.GetBytes("""{"workflow_id":"wf-7","execution":{"command":["true"],"resources":{"cpu_millicores":500}}}"""), dotTemp: false);
        string? nestedId = null;
        Assert.True(await EventuallyAsync(() =>
        {
            nestedId = Names(d, "accepted").Select(Path.GetFileNameWithoutExtension).FirstOrDefault(n => n != "drop-ok");
            return Task.FromResult(nestedId is not null);
        }, seconds: 20), "nested.json never reached accepted/");
        var nestedDone = Path.Combine(Queue(d, "done"), nestedId + ".json");
        Assert.True(await EventuallyAsync(() => Task.FromResult(File.Exists(nestedDone)), seconds: 20), $"done/{nestedId}.json never appeared");
        var nested = JsonNode.Parse(File.ReadAllText(nestedDone))!;
        Assert.Equal("succeeded", (string?)nested["state"]);
        Assert.Equal("wf-7", (string?)nested["workflow_id"]);

        // The files still being written were never taken.
        Assert.True(File.Exists(halfWritten) && File.Exists(hidden), "a .tmp or dot file in pending/ was taken");
        Assert.Equal(2, await SubmittedAsync(d.Http));
        Assert.Equal(404, (await SendAsync(d.Http, HttpMethod.Get, "api/v1/tasks/must-not-run-1")).Status);
        Assert.Equal(404, (await SendAsync(d.Http, HttpMethod.Get, "api/v1/tasks/must-not-run-2")).Status);
    }

    // ---------- helpers ----------

    private static string Queue(TestDaemon d, string dir) => Path.Combine(d.DataDir, "queue", dir);

    private static List<string> Names(TestDaemon d, string dir) =>
        Directory.EnumerateFiles(Queue(d, dir)).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToList()!;

    /// <summary>Writes the file the way a producer must: under a name the daemon leaves alone, then renamed in place.</summary>
    private static void Drop(TestDaemon d, string name, byte[] body, bool dotTemp)
    {
        var pending = Queue(d, "pending");
        var temp = Path.Combine(pending, dotTemp ? "." + name + ".part" : name + ".tmp");
        File.WriteAllBytes(temp, body);
        File.Move(temp, Path.Combine(pending, name));
    }

    /// <summary>The reason once <c>rejected/&lt;name&gt;</c> and its complete <c>.reason</c> are there; null at the deadline.</summary>
    private static async Task<string?> WaitRejectedAsync(TestDaemon d, string name, double seconds)
    {
        var file = Path.Combine(Queue(d, "rejected"), name);
        var reasonFile = file + ".reason";
        string? reason = null;
        await EventuallyAsync(() =>
        {
            if (!File.Exists(file) || !File.Exists(reasonFile)) return Task.FromResult(false);
            var text = File.ReadAllText(reasonFile);
            if (text.Length == 0 || !text.EndsWith('\n')) return Task.FromResult(false);
            reason = text;
            return Task.FromResult(true);
        }, seconds);
        return reason;
    }

    /// <summary>A reason a person can read: one short line of printable text.</summary>
    private static void AssertReadable(string name, string reason)
    {
        var line = reason.TrimEnd('\n');
        Assert.True(line.Trim().Length > 0, $"{name}: the reason is blank");
        Assert.True(line.Length <= 2000, $"{name}: the reason is {line.Length} characters long");
        Assert.False(line.Any(char.IsControl), $"{name}: the reason holds control characters: {line}");
        Assert.DoesNotContain('\uFFFD', line);
    }
}
