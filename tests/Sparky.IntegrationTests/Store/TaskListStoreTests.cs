using Microsoft.Data.Sqlite;
using Sparky.Core.Tasks;
using Sparky.Store.Sqlite;

namespace Sparky.IntegrationTests.Store;

/// <summary>The task list's queries against a real SQLite file: every plan finds what a plain reading of every task finds.</summary>
public sealed class TaskListStoreTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "sparky-list-" + Guid.NewGuid().ToString("N")[..8]);
    private string DbPath => Path.Combine(_dir, "sparky.db");

    /// <summary>Names and commands a search must take as text: LIKE's wildcards, FTS5's quotes, operators, column
    /// filters, prefix stars and NEAR, SQL, letters outside ASCII.</summary>
    private static readonly string[] Hostile =
    [
        "50%_off", "say \"hi\" there", "it's 'quoted'", "NEAR(alpha beta)", "name:col ^caret", "pre*fix", "a AND b OR NOT c",
        "'); DROP TABLE tasks; --", "Été-Run", "🚀launch-pad", "back\\slash",
    ];

    private sealed record Made(long Seq, string Id, string Class, string? Name, string? Command, TaskState State);

    /// <summary>Tasks of three classes in every state, with commands as argv (some arguments with spaces) or shell
    /// strings, some named, some hostile; each task's expected name and command line kept for the oracle.</summary>
    private static async Task<List<Made>> FillAsync(SqliteStore store, int n)
    {
        var made = new List<Made>();
        string[] classes = ["cpu_short", "cpu_long", "gpu"];
        var batch = new List<NewTask>();
        for (int i = 0; i < n; i++)
        {
            string cls = classes[i % 3];
            string? name = i % 4 == 0 ? $"Sweep-{i % 7}/run-{i}" : i % 9 == 1 ? Hostile[i % Hostile.Length] : null;
            TaskSpec spec = (i % 5) switch
            {
                0 => new TaskSpec { Argv = ["python", "train.py", "--lr", "3e-4", "--seed", i.ToString()] },
                1 => new TaskSpec { Argv = ["sh", "-c", $"echo 'shard {i}' && true"] },
                2 => new TaskSpec { Shell = $"make -j4 TARGET=Run{i} > build.log" },
                3 => new TaskSpec { Argv = ["./eval.sh", Hostile[i % Hostile.Length]] },
                _ => new TaskSpec { HandlerPayload = "{\"work\":1}" },
            };
            spec = spec with { Class = cls, Name = name };
            string? command = spec.Argv is { } argv ? string.Join(' ', argv) : spec.Shell;
            batch.Add(new NewTask(TaskId.Parse($"t{i:D4}"), spec, "{}", 1000 + i));
            made.Add(new Made(i + 1, $"t{i:D4}", cls, name, command, (TaskState)((i * 7 + i / 5) % 5)));
        }
        Assert.Equal(WriteStatus.Ok, (await store.InsertAsync(batch)).Status);
        // Written without waiting for each (they share commits), in order per task.
        var writes = new List<Task<WriteResult>>();
        foreach (var m in made)
        {
            var id = TaskId.Parse(m.Id);
            var started = new AttemptRecord(1, 5, null, null, null, 1, 1, "h", null, null, null);
            if (m.State is TaskState.Running or TaskState.Succeeded or TaskState.Failed)
                writes.Add(store.AttemptStartedAsync(id, m.Class, TaskState.Queued, started));
            if (m.State is TaskState.Succeeded or TaskState.Failed)
                writes.Add(store.AttemptEndedAsync(id, m.Class, started with
                {
                    EndedAt = 9, ExitCode = m.State == TaskState.Failed ? 1 : 0,
                    Outcome = m.State == TaskState.Failed ? AttemptOutcome.Failed : AttemptOutcome.Succeeded,
                }, m.State, null, null));
            if (m.State == TaskState.Cancelled) writes.Add(store.FinishAsync(id, m.Class, TaskState.Queued, TaskState.Cancelled, "cancelled", 9));
        }
        Assert.All(await Task.WhenAll(writes), r => Assert.Equal(WriteStatus.Ok, r.Status));
        return made;
    }

    /// <summary>Every page of the query, as the plan finds them, cursor to cursor.</summary>
    private static List<string> PageThrough(SqliteStore store, TaskQuery q, TaskListPlan? plan)
    {
        var ids = new List<string>();
        for (int pages = 0; pages < 10_000; pages++)
        {
            var page = plan is { } p ? store.List(q, p) : store.List(q);
            Assert.True(page.Tasks.Count <= q.Limit);
            ids.AddRange(page.Tasks.Select(t => t.Id.Value));
            if (page.NextCursor is not { } next) return ids;
            q = q with { Cursor = next };
        }
        throw new InvalidOperationException("paging did not end");
    }

    private static IEnumerable<string> Expected(List<Made> made, TaskQuery q)
    {
        var rows = made.Where(m => (q.States.Count == 0 || q.States.Contains(m.State)) && (q.Classes.Count == 0 || q.Classes.Contains(m.Class))
            && (q.Text is null || TaskQueries.Matches(m.Name, m.Command, q.Text)));
        return (q.Descending ? rows.OrderByDescending(m => m.Seq) : rows.OrderBy(m => m.Seq)).Select(m => m.Id);
    }

    [Fact]
    public async Task Every_plan_pages_through_exactly_what_the_filters_and_the_search_select()
    {
        await using var store = SqliteStore.Open(DbPath);
        var made = await FillAsync(store, 600);
        string?[] texts = [null, "train.py --LR 3E", "sweep-3/", "run1", "'shard 4", "zzz-nothing", "r_", "50%_", "\"hi\"", "NEAR(", "e*f", "AND b OR",
            "DROP TABLE", "été", "🚀la", "k\\sl"];
        TaskState[][] states = [[], [TaskState.Failed], [TaskState.Queued, TaskState.Running], [TaskState.Succeeded, TaskState.Cancelled, TaskState.Failed]];
        string[][] classes = [[], ["gpu"], ["cpu_short", "cpu_long"]];
        int checkedQueries = 0;
        foreach (var text in texts)
            foreach (var st in states)
                foreach (var cls in classes)
                    foreach (var (limit, desc) in new[] { (7, true), (50, false) })
                    {
                        if (text is not null && TaskQueries.TextProblem(text) is not null) continue; // "r_" is refused at the door
                        var q = new TaskQuery { Text = text, States = st, Classes = cls, Limit = limit, Descending = desc };
                        var expected = Expected(made, q).ToList();
                        TaskListPlan?[] plans = text is null ? [null] : q.Filtered ? [null, TaskListPlan.Search, TaskListPlan.FilterThenMatch] : [null, TaskListPlan.Search];
                        foreach (var plan in plans)
                            Assert.True(expected.SequenceEqual(PageThrough(store, q, plan)),
                                $"{plan?.ToString() ?? "chosen plan"}, q='{text}' state={string.Join(',', st)} class={string.Join(',', cls)} limit={limit} desc={desc}");
                        checkedQueries++;
                    }
        Assert.True(checkedQueries > 300, $"{checkedQueries} queries");
        // The oracle is not empty where it matters: hostile texts do find their tasks.
        Assert.NotEmpty(Expected(made, new TaskQuery { Text = "50%_" }));
        Assert.NotEmpty(Expected(made, new TaskQuery { Text = "🚀la" }));
        Assert.Empty(Expected(made, new TaskQuery { Text = "%%%" }));
        Assert.Empty(PageThrough(store, new TaskQuery { Text = "%%%" }, null));
        Assert.Empty(PageThrough(store, new TaskQuery { Text = "___" }, null));
    }

    [Fact]
    public async Task A_search_under_a_filter_that_rejects_most_matches_comes_back_in_short_pages_that_go_on()
    {
        await using var store = SqliteStore.Open(DbPath);
        var made = await FillAsync(store, 9000);
        // More tasks than the walk's first window spans, few matches of the filter: the walk moves window by window.
        var q = new TaskQuery { Text = "train.py", States = [TaskState.Running], Classes = ["gpu"], Limit = 5, Descending = true };
        var expected = Expected(made, q).ToList();
        Assert.InRange(expected.Count, 20, 200);
        Assert.Equal(expected, PageThrough(store, q, TaskListPlan.Search));
        var ascending = q with { Descending = false };
        Assert.Equal(Expected(made, ascending), PageThrough(store, ascending, TaskListPlan.Search));
    }

    [Fact]
    public async Task The_search_index_holds_what_was_committed_and_nothing_a_refused_insert_tried()
    {
        NewTask T(string id, string cmd, string envelope = "{}") => new(TaskId.Parse(id), new TaskSpec { Argv = ["echo", cmd] }, envelope, 1);
        await using (var store = SqliteStore.Open(DbPath))
        {
            Assert.Equal(WriteStatus.Ok, (await store.InsertAsync([T("a", "alpha-one")])).Status);
            // Refused whole: "b" was inserted, then rolled back with the conflict on "a".
            Assert.Equal(WriteStatus.Conflict, (await store.InsertAsync([T("b", "alpha-two"), T("a", "alpha-one", """{"x":1}""")])).Status);
            // Concurrent single inserts share commits: each one's task is indexed.
            var writes = Enumerable.Range(0, 200).Select(i => store.InsertAsync([T($"c{i}", $"gamma-{i}")])).ToList();
            Assert.All(await Task.WhenAll(writes), r => Assert.Equal(WriteStatus.Ok, r.Status));
            Assert.Equal(["a"], store.List(new TaskQuery { Text = "alpha" }).Tasks.Select(t => t.Id.Value));
            Assert.Equal(200, PageThrough(store, new TaskQuery { Text = "gamma-" }, null).Count);
        }
        await using var reopened = SqliteStore.Open(DbPath);
        Assert.Equal(WriteStatus.Ok, (await reopened.InsertAsync([T("d", "alpha-three")])).Status);
        Assert.Equal(["a", "d"], reopened.List(new TaskQuery { Text = "ALPHA" }).Tasks.Select(t => t.Id.Value));
        Assert.Equal(["c199"], reopened.List(new TaskQuery { Text = "gamma-199" }).Tasks.Select(t => t.Id.Value));
    }

    [Fact]
    public async Task A_schema_6_store_is_searched_once_migrated()
    {
        Directory.CreateDirectory(_dir);
        File.Copy(Path.Combine(AppContext.BaseDirectory, "Fixtures", "schema-v6.db"), DbPath);
        await using var store = SqliteStore.Open(DbPath);
        Assert.Equal(["fixture-1", "fixture-2"], store.List(new TaskQuery { Text = "ECHO" }).Tasks.Select(t => t.Id.Value));
        Assert.Equal(["fixture-blocker"], store.List(new TaskQuery { Text = "sleep 1000" }).Tasks.Select(t => t.Id.Value));
        var later = new TaskQuery { Text = "echo later", States = [TaskState.Queued] };
        foreach (var plan in new[] { TaskListPlan.Search, TaskListPlan.FilterThenMatch })
            Assert.Equal(["fixture-2"], store.List(later, plan).Tasks.Select(t => t.Id.Value));
        // And a task stored after the migration is indexed as the writer stores it.
        await store.InsertAsync([new NewTask(TaskId.Parse("fixture-3"), new TaskSpec { Shell = "echo after" }, "{}", 1)]);
        Assert.Equal(["fixture-1", "fixture-2", "fixture-3"], store.List(new TaskQuery { Text = "echo" }).Tasks.Select(t => t.Id.Value));
    }

    [Fact]
    public void A_search_text_is_one_phrase_whatever_it_holds() =>
        Assert.Equal("\"say \"\"hi\"\" NEAR(a b) *\"", SqliteStore.SearchPhrase("say \"hi\" NEAR(a b) *"));

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        try { Directory.Delete(_dir, true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
