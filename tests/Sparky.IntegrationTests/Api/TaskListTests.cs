using System.Text.Json.Nodes;
using Sparky.IntegrationTests.Support;
using Sparky.IntegrationTests.Zmq;
using static Sparky.IntegrationTests.BadInput.BadInputSupport;

namespace Sparky.IntegrationTests.Api;

/// <summary>
/// <c>GET /api/v1/tasks</c>, the list behind the dashboard's table, against a real daemon: several states and classes
/// at once, a search on name and command, all combined, cursor paging that holds while tasks arrive and change state,
/// hostile search text, and wrong parameters refused by name.
/// </summary>
public sealed class TaskListTests
{
    private static JsonObject Task(TestDaemon d, JsonNode command, string? name = null, string cls = "cpu_short", string? after = null)
    {
        var o = new JsonObject { ["class"] = cls, ["payload"] = new JsonObject { ["command"] = command, ["cwd"] = d.WorkDir } };
        if (name is not null) o["name"] = name;
        if (after is not null) o["after"] = new JsonArray(after);
        return o;
    }

    private static async Task<string> SubmitAsync(TestDaemon d, JsonNode command, string? name = null, string cls = "cpu_short", string? after = null) =>
        (await d.SubmitAsync(Task(d, command, name, cls, after)))[0];

    private static async Task<(List<string> Ids, long? Next)> PageAsync(TestDaemon d, string query)
    {
        var page = JsonNode.Parse(await d.Http.GetStringAsync("api/v1/tasks?" + query))!;
        return (((JsonArray)page["tasks"]!).Select(t => (string)t!["id"]!).ToList(), (long?)page["next_cursor"]);
    }

    private static async Task<List<string>> IdsAsync(TestDaemon d, string query) => (await PageAsync(d, query)).Ids;

    private static async Task WaitStateAsync(TestDaemon d, string id, string state) =>
        await TaskLifecycleTests.WaitForAsync(async () => (string?)(await d.GetTaskAsync(id))["state"] == state);

    [Fact]
    public async Task Several_states_and_classes_are_filtered_at_once_and_combine_with_a_search()
    {
        await using var d = await TestDaemon.StartAsync();
        var ok = await SubmitAsync(d, "true", "ok-nightly");
        var bad = await SubmitAsync(d, "exit 3", "bad-nightly", "cpu_long");
        var run = await SubmitAsync(d, new JsonArray("sleep", "30"), "runner", "cpu_long");
        var waiting = await SubmitAsync(d, "true", "waiter-nightly", after: run);
        var cancelled = await SubmitAsync(d, "true", "cancelled-one", after: run);
        await d.WaitAsync(ok);
        await d.WaitAsync(bad);
        await WaitStateAsync(d, run, "running");
        Assert.Equal(202, (await SendAsync(d.Http, HttpMethod.Delete, $"api/v1/tasks/{cancelled}")).Status);
        await d.WaitAsync(cancelled);

        Assert.Equal([bad, cancelled], await IdsAsync(d, "state=failed,cancelled"));
        Assert.Equal([run, waiting], await IdsAsync(d, "state=queued,running"));
        Assert.Equal([waiting, run], await IdsAsync(d, "state=queued,running&order=desc"));
        Assert.Equal([bad, run], await IdsAsync(d, "class=cpu_long"));
        Assert.Equal([ok, bad, run, waiting, cancelled], await IdsAsync(d, "class=cpu_short,cpu_long"));
        Assert.Equal([run], await IdsAsync(d, "class=cpu_long&state=running,queued"));
        Assert.Empty(await IdsAsync(d, "class=gpu"));
        // AND between parameters, OR within one.
        Assert.Equal([ok, bad, waiting], await IdsAsync(d, "q=NIGHTLY"));
        Assert.Equal([bad, waiting], await IdsAsync(d, "q=nightly&state=failed,queued"));
        Assert.Equal([waiting], await IdsAsync(d, "q=nightly&state=failed,queued&class=cpu_short"));
        Assert.Equal([run], await IdsAsync(d, "q=sleep 30&state=running&class=cpu_long"));

        // ZeroMQ's list takes the same parameters and answers the same page.
        using var z = new ZmqTestClient(d.Daemon.ZmqEndpoint);
        var zmq = z.Ok("list", new JsonObject { ["state"] = "failed,queued", ["q"] = "nightly", ["order"] = "desc" })!;
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse(await d.Http.GetStringAsync("api/v1/tasks?state=failed,queued&q=nightly&order=desc")), zmq), zmq.ToJsonString());
        Assert.Equal([waiting, bad], ((JsonArray)zmq["tasks"]!).Select(t => (string)t!["id"]!));
        Assert.Equal((400, "q: must be at least 3 characters (the search matches runs of 3 or more)"), z.Error("list", new JsonObject { ["q"] = "ab" }));
        Assert.Equal(400, z.Error("list", new JsonObject { ["state"] = "done" }).Item1);
        Assert.Equal(202, (await SendAsync(d.Http, HttpMethod.Delete, $"api/v1/tasks/{run}")).Status);
    }

    [Fact]
    public async Task The_search_finds_a_substring_of_the_name_or_of_the_command_line_in_any_case()
    {
        await using var d = await TestDaemon.StartAsync();
        var named = await SubmitAsync(d, "true", "Nightly-Train");
        var argv = await SubmitAsync(d, new JsonArray("sh", "-c", "true", "--lr", "3e-4"));
        var shell = await SubmitAsync(d, "echo TRAINING > /dev/null");
        var other = await SubmitAsync(d, "true", "other");
        var accented = await SubmitAsync(d, "true", "Été-run");
        foreach (var id in new[] { named, argv, shell, other, accented }) await d.WaitAsync(id);

        Assert.Equal([named, shell], await IdsAsync(d, "q=train"));
        Assert.Equal([argv], await IdsAsync(d, "q=" + Uri.EscapeDataString("c true --LR 3E")), StringComparer.Ordinal); // across the argv's words, as the JSON shows them
        Assert.Equal([named], await IdsAsync(d, "q=ightly-"));
        Assert.Equal([accented], await IdsAsync(d, "q=" + Uri.EscapeDataString("été-")));
        Assert.Equal([accented], await IdsAsync(d, "q=" + Uri.EscapeDataString("été-") + "&state=succeeded")); // read from the filter's rows
        Assert.Empty(await IdsAsync(d, "q=nothing-like-it"));
        // Not across the name and the command: "other" ends where "true" begins.
        Assert.Empty(await IdsAsync(d, "q=" + Uri.EscapeDataString("her tr")));
    }

    [Fact]
    public async Task A_search_text_is_data_whatever_it_holds()
    {
        await using var d = await TestDaemon.StartAsync();
        const string HostileName = "50%_off \"quoted\" 'single' NEAR(a b) col:x *star ^caret AND OR NOT";
        var hostile = await SubmitAsync(d, "true", HostileName);
        var plain = await SubmitAsync(d, "true", "plain-task");
        var rocket = await SubmitAsync(d, "true", "🚀launch");
        await d.WaitAsync(hostile);
        await d.WaitAsync(plain);
        await d.WaitAsync(rocket);
        string[] finds = ["%_o", "\"quoted\"", "'single'", "NEAR(a b)", "col:x", "*star", "^caret", "AND OR NOT", "d\" 'si"];
        string[] findsNothing = ["%%%", "___", "a\" OR \"b", "\"*\"", "'); DROP TABLE tasks; --", "NEAR(plain task)", "plain*", "name:plain"];
        foreach (var filter in new[] { "", "&state=succeeded" }) // the index's matches, and the filter's rows matched one by one
        {
            foreach (var text in finds)
                Assert.True(new[] { hostile }.SequenceEqual(await IdsAsync(d, "q=" + Uri.EscapeDataString(text) + filter)), $"q={text}{filter}");
            foreach (var text in findsNothing)
                Assert.True((await IdsAsync(d, "q=" + Uri.EscapeDataString(text) + filter)).Count == 0, $"q={text}{filter}");
            Assert.Equal([rocket], await IdsAsync(d, "q=" + Uri.EscapeDataString("🚀la") + filter));
        }
        Assert.Equal([hostile, plain, rocket], await IdsAsync(d, "")); // the store is whole

        // Too long to be a useful search: refused by name, not run. 10 KB does not fit an HTTP request line (the server
        // answers 414 before the API sees it); over ZeroMQ it arrives, and is refused the same way.
        var longer = await SendAsync(d.Http, HttpMethod.Get, "api/v1/tasks?q=" + Uri.EscapeDataString(new string('%', 2000)));
        Assert.Equal((400, "application/problem+json"), (longer.Status, longer.ContentType));
        Assert.Equal("q: must be at most 200 characters", longer.Detail);
        Assert.Equal(414, (await SendAsync(d.Http, HttpMethod.Get, "api/v1/tasks?q=" + new string('a', 10 * 1024))).Status);
        using var z = new ZmqTestClient(d.Daemon.ZmqEndpoint);
        Assert.Equal((400, "q: must be at most 200 characters"), z.Error("list", new JsonObject { ["q"] = new string('"', 10 * 1024) }));
    }

    [Fact]
    public async Task A_wrong_parameter_is_a_400_problem_that_names_it()
    {
        await using var d = await TestDaemon.StartAsync();
        (string Query, string Detail)[] cases =
        [
            ("state=bogus", "state: unknown state 'bogus' (states: queued, running, succeeded, failed, cancelled)"),
            ("state=queued,done", "state: unknown state 'done'"),
            ("class=nope", "class: unknown class 'nope' (classes: "),
            ("cursor=abc", "cursor: not a cursor this API gave (use a page's next_cursor)"),
            ("cursor=-5", "cursor: not a cursor this API gave"),
            ("limit=ten", "limit: must be an integer, not 'ten'"),
            ("order=sideways", "order: must be asc or desc, not 'sideways'"),
            ("q=ab", "q: must be at least 3 characters"),
            ("q=a%01bc", "q: must not contain control characters"),
        ];
        foreach (var (query, detail) in cases)
        {
            var answer = await SendAsync(d.Http, HttpMethod.Get, "api/v1/tasks?" + query);
            Assert.True((400, "application/problem+json") == (answer.Status, answer.ContentType), $"{query}: {answer}");
            Assert.True(answer.Detail?.StartsWith(detail, StringComparison.Ordinal) == true, $"{query}: {answer}");
        }
        Assert.Equal(200, (await SendAsync(d.Http, HttpMethod.Get, "api/v1/tasks?state=queued&q=abc&limit=5&order=desc&cursor=7")).Status);
    }

    /// <summary>Pages through a search, a search under a filter the index walks (many rows), and one whose rows are read
    /// (few), in both orders, while new matching tasks arrive after every page and the first ones run and end.</summary>
    [Fact]
    public async Task Paging_a_filtered_list_while_tasks_arrive_and_change_state_repeats_none_and_skips_none()
    {
        await using var d = await TestDaemon.StartAsync();
        var first = new List<string>();
        for (int i = 0; i < 30; i++) first.Add(await SubmitAsync(d, "true", $"pg-{i}", i % 3 == 0 ? "cpu_long" : "cpu_short"));
        for (int i = 0; i < 10; i++) await SubmitAsync(d, "true", $"unrelated-{i}");
        int added = 0;
        var queries = new (string Query, int Limit, Func<int, bool> Holds)[]
        {
            ("q=pg-", 4, _ => true),
            ("q=pg-&class=cpu_short", 2, i => i % 3 != 0),
            ("q=pg-&class=cpu_long", 3, i => i % 3 == 0),
            ("class=cpu_short,cpu_long&q=pg-", 5, _ => true),
        };
        foreach (var (query, limit, holds) in queries)
            foreach (var order in new[] { "desc", "asc" })
            {
                var seen = new List<string>();
                long? cursor = null;
                for (int pages = 0; ; pages++)
                {
                    Assert.True(pages < 100, "paging did not end");
                    var (ids, next) = await PageAsync(d, $"{query}&order={order}&limit={limit}{(cursor is { } c ? "&cursor=" + c : "")}");
                    seen.AddRange(ids);
                    // Tasks keep coming while the client pages: new matches of both classes, which start and end too.
                    added++;
                    await SubmitAsync(d, "true", $"pg-new-{added}", added % 2 == 0 ? "cpu_long" : "cpu_short");
                    if (next is null) break;
                    cursor = next;
                }
                Assert.True(seen.Count == seen.Distinct().Count(), $"{query} {order}: a task came twice: {string.Join(' ', seen)}");
                var existed = first.Where((_, i) => holds(i)).ToList();
                Assert.True(existed.Except(seen).Count() == 0, $"{query} {order}: skipped {string.Join(' ', existed.Except(seen))}");
            }
        // They did change state meanwhile.
        foreach (var id in first) Assert.NotEqual("queued", (string?)(await d.GetTaskAsync(id))["state"]);
    }

    /// <summary>A store from an earlier schema (6, before the search index) opens in the real `sparky serve` (the native
    /// build where test.sh names it), is indexed by its migration, and its tasks are found.</summary>
    [Fact]
    public async Task A_store_from_schema_6_is_searched_by_the_real_daemon_after_its_migration()
    {
        var root = TestDaemon.NewRoot();
        var data = Path.Combine(root, "data");
        Directory.CreateDirectory(data);
        File.Copy(Path.Combine(AppContext.BaseDirectory, "Fixtures", "schema-v6.db"), Path.Combine(data, "sparky.db"));
        try
        {
            await using var d = await DaemonProcess.StartAsync(data, SparkyCli.FreePort());
            Assert.Equal(10, (int)JsonNode.Parse(await d.Http.GetStringAsync("readyz"))!["schema"]!);
            var page = JsonNode.Parse(await d.Http.GetStringAsync("api/v1/tasks?q=ECHO"))!;
            Assert.Equal(["fixture-1", "fixture-2"], ((JsonArray)page["tasks"]!).Select(t => (string)t!["id"]!));
            page = JsonNode.Parse(await d.Http.GetStringAsync("api/v1/tasks?q=echo%20hi&state=succeeded&class=cpu_short"))!;
            Assert.Equal(["fixture-1"], ((JsonArray)page["tasks"]!).Select(t => (string)t!["id"]!));
        }
        finally { try { Directory.Delete(root, true); } catch (IOException) { } }
    }
}
