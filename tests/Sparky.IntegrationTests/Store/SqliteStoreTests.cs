using Sparky.Core.Scheduling;
using Microsoft.Data.Sqlite;
using Sparky.Core.Tasks;
using Sparky.Store.Sqlite;

namespace Sparky.IntegrationTests.Store;

/// <summary>The store against a real SQLite file.</summary>
public sealed class SqliteStoreTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "sparky-store-" + Guid.NewGuid().ToString("N")[..8]);
    private string DbPath => Path.Combine(_dir, "sparky.db");

    private static NewTask Task(string id, string cls = "cpu_short") =>
        new(TaskId.Parse(id), new TaskSpec { Argv = ["true"], Class = cls }, "{}", 1);

    [Fact]
    public async Task A_burst_of_10000_concurrent_submissions_costs_a_handful_of_commits()
    {
        await using var store = SqliteStore.Open(DbPath);
        long before = store.Commits;
        var writes = Enumerable.Range(0, 10_000).Select(i => store.InsertAsync([Task($"t{i}")])).ToList();
        var results = await System.Threading.Tasks.Task.WhenAll(writes);
        Assert.All(results, r => Assert.Equal(WriteStatus.Ok, r.Status));
        long commits = store.Commits - before;
        Assert.InRange(commits, 1, 200);
        Assert.Equal(10_000, store.Counters.Total(TaskState.Queued));
    }

    [Fact]
    public async Task A_request_with_one_existing_id_is_refused_whole()
    {
        await using var store = SqliteStore.Open(DbPath);
        Assert.Equal(WriteStatus.Ok, (await store.InsertAsync([Task("a")])).Status);
        var r = await store.InsertAsync([Task("b"), Task("a"), Task("c")]);
        Assert.Equal(WriteStatus.Conflict, r.Status);
        Assert.Contains("'a'", r.Detail);
        Assert.Null(store.StateOf(TaskId.Parse("b")));
        Assert.Null(store.StateOf(TaskId.Parse("c")));
        Assert.Equal(1, store.Counters.Total(TaskState.Queued));
    }

    [Fact]
    public async Task Counters_are_rebuilt_from_the_file_at_open()
    {
        await using (var store = SqliteStore.Open(DbPath))
        {
            await store.InsertAsync([Task("a", "cpu_long"), Task("b"), Task("c")]);
            await store.AttemptStartedAsync(TaskId.Parse("b"), "cpu_short", TaskState.Queued, new AttemptRecord(1, 5, null, null, null, 123, 456, "h", null, null, null));
            await store.AttemptEndedAsync(TaskId.Parse("b"), "cpu_short", new AttemptRecord(1, 5, 9, 0, null, 123, 456, "h", "succeeded", null, null), TaskState.Succeeded, null, "{\"x\":1}");
            await store.FinishAsync(TaskId.Parse("c"), "cpu_short", TaskState.Queued, TaskState.Cancelled, "cancelled", 10);
        }
        await using var reopened = SqliteStore.Open(DbPath);
        Assert.Equal(1, reopened.Counters.Get("cpu_long", TaskState.Queued));
        Assert.Equal(1, reopened.Counters.Get("cpu_short", TaskState.Succeeded));
        Assert.Equal(1, reopened.Counters.Get("cpu_short", TaskState.Cancelled));
        var b = reopened.Get(TaskId.Parse("b"))!;
        Assert.Equal(0, b.ExitCode);
        Assert.Equal("{\"x\":1}", b.ResultJson);
        Assert.Single(b.AttemptList);
        Assert.Equal(123, b.AttemptList[0].Pid);
        Assert.Equal(["a"], reopened.ReadUnfinished().Select(t => t.Id.Value));
    }

    [Fact]
    public async Task The_store_is_in_WAL_mode_with_a_versioned_schema_and_refuses_a_newer_one()
    {
        await using (var store = SqliteStore.Open(DbPath))
        {
            Assert.Equal(6, store.SchemaVersion);
            using var conn = store.OpenRead();
            using var cmd = conn.CreateCommand();
            cmd.CommandText = "PRAGMA journal_mode";
            Assert.Equal("wal", cmd.ExecuteScalar());
        }
        using (var conn = new SqliteConnection($"Data Source={DbPath};Pooling=False"))
        {
            conn.Open();
            using var cmd = conn.CreateCommand();
            cmd.CommandText = "PRAGMA user_version = 99";
            cmd.ExecuteNonQuery();
        }
        var e = Assert.Throws<InvalidOperationException>(() => SqliteStore.Open(DbPath));
        Assert.Contains("newer Sparky", e.Message);
    }

    [Fact]
    public async Task The_counters_a_start_rebuilds_are_read_from_an_index_not_from_every_row()
    {
        await using var store = SqliteStore.Open(DbPath);
        await store.InsertAsync([Task("a"), Task("b", "cpu_long")]);
        using var conn = store.OpenRead();
        using var cmd = conn.CreateCommand();
        cmd.CommandText = "EXPLAIN QUERY PLAN " + SqliteStore.CountsByClassAndState;
        using var r = cmd.ExecuteReader();
        var plan = new List<string>();
        while (r.Read()) plan.Add(r.GetString(3));
        Assert.Contains(plan, step => step.Contains("COVERING INDEX tasks_class_state"));
        Assert.DoesNotContain(plan, step => step.StartsWith("SCAN tasks") && !step.Contains("INDEX"));
    }

    [Fact]
    public async Task Plans_are_upserted_by_name_and_survive_a_reopen()
    {
        await using (var store = SqliteStore.Open(DbPath))
        {
            Assert.Empty(store.LoadPlans());
            Assert.Equal(WriteStatus.Ok, (await store.UpsertPlanAsync(new PlanRow("p", "/x/p.yaml", "/x", "name: p", "running", "{}", 1))).Status);
            Assert.Equal(WriteStatus.Ok, (await store.UpsertPlanAsync(new PlanRow("p", "/x/p.yaml", "/x", "name: p", "stopped", "{\"v\":1}", 2))).Status);
        }
        await using var reopened = SqliteStore.Open(DbPath);
        var row = Assert.Single(reopened.LoadPlans());
        Assert.Equal(new PlanRow("p", "/x/p.yaml", "/x", "name: p", "stopped", "{\"v\":1}", 2), row);
    }

    /// <summary>A database written by each released schema must open and migrate: fixtures are checked in.</summary>
    [Theory]
    [InlineData("schema-v1.db")]
    public async Task A_store_from_a_released_schema_opens_and_keeps_its_tasks(string fixture)
    {
        Directory.CreateDirectory(_dir);
        File.Copy(Path.Combine(AppContext.BaseDirectory, "Fixtures", fixture), DbPath);
        await using var store = SqliteStore.Open(DbPath);
        Assert.Equal(6, store.SchemaVersion); // migrated to the current schema
        var t = store.Get(TaskId.Parse("fixture-1"))!;
        Assert.Equal(TaskState.Succeeded, t.State);
        Assert.Equal(["echo", "hi"], t.Spec.Argv);
        Assert.Equal(1, store.Counters.Get("cpu_short", TaskState.Succeeded));
        Assert.Equal(1, store.Counters.Get("cpu_short", TaskState.Queued));
        // A task stored before v2 asks for no resources: it restarts as it was.
        var unfinished = store.ReadUnfinished().ToList();
        Assert.Equal(["fixture-blocker", "fixture-2"], unfinished.Select(t => t.Id.Value));
        Assert.All(unfinished, t => Assert.Equal(ResourceRequest.None, t.Asks));
    }

    [Fact]
    public async Task Unfinished_tasks_are_read_back_in_submission_order_with_their_class_dependencies_and_resources()
    {
        static NewTask With(string id, string[] after, string cls = "cpu_short", double? cpus = null) =>
            new(TaskId.Parse(id), new TaskSpec { Argv = ["true"], Class = cls, After = after, Cpus = cpus }, "{}", 1);
        await using (var store = SqliteStore.Open(DbPath))
        {
            await store.InsertAsync([
                With("root", []), With("x", []), With("a1", ["root"]), With("a2", ["root"]), With("b", ["root", "x"]),
                With("c1", [], "cpu_long", 2), With("c2", [], "cpu_long", 2), With("c3", [], "gpu", 0.5), With("done", []),
            ]);
            await store.FinishAsync(TaskId.Parse("done"), "cpu_short", TaskState.Queued, TaskState.Cancelled, "cancelled", 10);
            await store.AttemptStartedAsync(TaskId.Parse("x"), "cpu_short", TaskState.Queued, new AttemptRecord(1, 5, null, null, null, 77, 88, "h", null, null, null));
        }
        await using var reopened = SqliteStore.Open(DbPath);
        var rows = reopened.ReadUnfinished().ToList();

        Assert.Equal(["root", "x", "a1", "a2", "b", "c1", "c2", "c3"], rows.Select(t => t.Id.Value));
        Assert.Equal([TaskState.Queued, TaskState.Running], rows.Take(2).Select(t => t.State));
        Assert.Equal(77, rows[1].LastAttempt!.Pid);
        Assert.Null(rows[0].LastAttempt);
        Assert.Equal(["root"], rows[2].After.Select(d => d.Value));
        Assert.Equal(["root", "x"], rows[4].After.Select(d => d.Value));
        Assert.Empty(rows[5].After);
        Assert.Equal(["cpu_short", "cpu_short", "cpu_short", "cpu_short", "cpu_short", "cpu_long", "cpu_long", "gpu"], rows.Select(t => t.Class));
        Assert.Equal(new ResourceRequest(2000, 0, 0, 0), rows[5].Asks);
        Assert.Equal(new ResourceRequest(500, 0, 0, 0), rows[7].Asks);
        Assert.Equal(ResourceRequest.None, rows[0].Asks);
        // A restart reads a million rows: equal neighbours share one parsed value, one string per class.
        Assert.Same(rows[2].After, rows[3].After);
        Assert.Same(rows[0].Class, rows[4].Class);
        Assert.Same(rows[5].Class, rows[6].Class);
    }

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }
}
