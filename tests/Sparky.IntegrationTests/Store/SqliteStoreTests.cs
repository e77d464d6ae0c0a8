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

    private static NewTask Task(string id, string cls = "cpu_short", string envelope = "{}") =>
        new(TaskId.Parse(id), new TaskSpec { Argv = ["true"], Class = cls }, envelope, 1);

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
        var r = await store.InsertAsync([Task("b"), Task("a", envelope: """{"name":"another"}"""), Task("c")]);
        Assert.Equal(WriteStatus.Conflict, r.Status);
        Assert.Contains("'a'", r.Detail);
        Assert.Contains("name (new)", r.Detail);
        Assert.Null(store.StateOf(TaskId.Parse("b")));
        Assert.Null(store.StateOf(TaskId.Parse("c")));
        Assert.Equal(1, store.Counters.Total(TaskState.Queued));
    }

    [Fact]
    public async Task An_id_sent_again_with_the_same_envelope_is_left_as_it_is_and_the_others_are_stored()
    {
        await using var store = SqliteStore.Open(DbPath);
        const string Envelope = """{"payload":{"command":"true","env":{"A":"1","B":"2"}}}""";
        Assert.Equal(WriteStatus.Ok, (await store.InsertAsync([Task("a", envelope: Envelope)])).Status);
        await store.AttemptStartedAsync(TaskId.Parse("a"), "cpu_short", TaskState.Queued, new AttemptRecord(1, 5, null, null, null, 1, 1, "h", null, null, null));
        IReadOnlySet<string>? existing = null;
        // The same envelope with its fields in another order is the same task.
        var r = await store.InsertAsync([Task("a", envelope: """{"payload":{"env":{"B":"2","A":"1"},"command":"true"}}"""), Task("b")],
            onCommitted: e => existing = e);
        Assert.Equal(WriteStatus.Ok, r.Status);
        Assert.Equal(["a"], existing!);
        Assert.Equal(TaskState.Running, store.StateOf(TaskId.Parse("a"))); // not queued again
        Assert.Equal(TaskState.Queued, store.StateOf(TaskId.Parse("b")));
        Assert.Equal(1, store.Counters.Total(TaskState.Queued));
        Assert.Equal(1, store.Counters.Total(TaskState.Running));
    }

    [Fact]
    public async Task Counters_are_rebuilt_from_the_file_at_open()
    {
        await using (var store = SqliteStore.Open(DbPath))
        {
            await store.InsertAsync([Task("a", "cpu_long"), Task("b"), Task("c")]);
            await store.AttemptStartedAsync(TaskId.Parse("b"), "cpu_short", TaskState.Queued, new AttemptRecord(1, 5, null, null, null, 123, 456, "h", null, null, null));
            await store.AttemptEndedAsync(TaskId.Parse("b"), "cpu_short", new AttemptRecord(1, 5, 9, 0, null, 123, 456, "h", AttemptOutcome.Succeeded, null, null), TaskState.Succeeded, null, "{\"x\":1}");
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
        Assert.Equal(AttemptOutcome.Succeeded, b.AttemptList[0].Outcome);
        Assert.Equal(["a"], reopened.ReadUnfinished().Select(t => t.Id.Value));
    }

    [Fact]
    public async Task An_attempts_outcome_and_a_specs_dependencies_are_stored_as_the_same_text_as_before()
    {
        await using (var store = SqliteStore.Open(DbPath))
        {
            await store.InsertAsync([Task("a"), new NewTask(TaskId.Parse("b"), new TaskSpec { Argv = ["true"], After = [TaskId.Parse("a")] }, "{}", 1)]);
            await store.AttemptStartedAsync(TaskId.Parse("a"), "cpu_short", TaskState.Queued, new AttemptRecord(1, 5, null, null, null, 1, 1, "h", null, null, null));
            await store.AttemptEndedAsync(TaskId.Parse("a"), "cpu_short", new AttemptRecord(1, 5, 9, 1, null, 1, 1, "h", AttemptOutcome.Failed, "exit_code", null), TaskState.Failed, "exit_code", null);
        }
        using (var conn = new SqliteConnection($"Data Source={DbPath}"))
        {
            conn.Open();
            using var cmd = conn.CreateCommand();
            cmd.CommandText = "SELECT outcome FROM attempts WHERE task_id = 'a'";
            Assert.Equal("failed", cmd.ExecuteScalar());
            cmd.CommandText = "SELECT spec FROM tasks WHERE id = 'b'";
            Assert.Contains("\"after\":[\"a\"]", (string)cmd.ExecuteScalar()!);
        }
        // A spec stored by an earlier version (ids as strings) reads back as typed ids.
        Assert.Equal(["x", "y"], SpecJson.Deserialize("""{"argv":["true"],"after":["x","y"]}""").After.Select(d => d.Value));
        Assert.ThrowsAny<System.Text.Json.JsonException>(() => SpecJson.Deserialize("""{"argv":["true"],"after":["../x"]}"""));
    }

    [Fact]
    public async Task The_store_is_in_WAL_mode_with_a_versioned_schema_and_refuses_a_newer_one()
    {
        await using (var store = SqliteStore.Open(DbPath))
        {
            Assert.Equal(10, store.SchemaVersion);
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
    [InlineData("schema-v6.db")]
    public async Task A_store_from_a_released_schema_opens_and_keeps_its_tasks(string fixture)
    {
        Directory.CreateDirectory(_dir);
        File.Copy(Path.Combine(AppContext.BaseDirectory, "Fixtures", fixture), DbPath);
        await using var store = SqliteStore.Open(DbPath);
        Assert.Equal(10, store.SchemaVersion); // migrated to the current schema
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

    /// <summary>Schema 7: a done file owed under schema 6 stays owed (no artifacts are owed for tasks stored before), and
    /// the tasks read back with no result error and no artifacts.</summary>
    [Fact]
    public async Task A_schema_6_store_keeps_its_done_files_owed_and_owes_no_artifacts()
    {
        Directory.CreateDirectory(_dir);
        File.Copy(Path.Combine(AppContext.BaseDirectory, "Fixtures", "schema-v6.db"), DbPath);
        await using var store = SqliteStore.Open(DbPath);
        Assert.Equal(["fixture-1"], store.OwedDoneFiles().Select(id => id.Value));
        Assert.Empty(store.OwedArtifacts());
        var t = store.Get(TaskId.Parse("fixture-1"))!;
        Assert.Null(t.ResultError);
        Assert.Null(t.ArtifactsJson);
    }

    /// <summary>Artifacts owed with an end hold its done file back until they are recorded onto that same end; a replay in
    /// between drops the debt, and a late record for the old end changes nothing.</summary>
    [Fact]
    public async Task Artifacts_owed_hold_back_the_done_file_until_recorded_onto_their_own_end()
    {
        await using var store = SqliteStore.Open(DbPath);
        var id = TaskId.Parse("art");
        await store.InsertAsync([Task("art")]);
        await store.AttemptStartedAsync(id, "cpu_short", TaskState.Queued, new AttemptRecord(1, 5, null, null, null, 1, 1, "h", null, null, null));
        await store.AttemptEndedAsync(id, "cpu_short", new AttemptRecord(1, 5, 9, 0, null, 1, 1, "h", AttemptOutcome.Succeeded, null, null), TaskState.Succeeded, null,
            null, doneFile: true, resultError: "bad json", artifactsJson: "{\"state\":\"pending\"}", artifactsBaseDir: "/w");
        Assert.Equal([(id, 1, "/w")], store.OwedArtifacts());
        Assert.True(store.ArtifactsOwed(id));
        Assert.Empty(store.OwedDoneFiles()); // waits for the artifacts
        Assert.Equal("bad json", store.Get(id)!.ResultError);

        Assert.Equal(WriteStatus.Ok, (await store.ArtifactsRecordedAsync(id, 1, "{\"state\":\"recorded\"}")).Status);
        Assert.Empty(store.OwedArtifacts());
        Assert.Equal([id], store.OwedDoneFiles());
        Assert.Equal("{\"state\":\"recorded\"}", store.Get(id)!.ArtifactsJson);

        // A replay before they are recorded drops the debt; the record that comes late for the old end changes nothing.
        var other = TaskId.Parse("art2");
        await store.InsertAsync([Task("art2")]);
        await store.AttemptStartedAsync(other, "cpu_short", TaskState.Queued, new AttemptRecord(1, 5, null, null, null, 1, 1, "h", null, null, null));
        await store.AttemptEndedAsync(other, "cpu_short", new AttemptRecord(1, 5, 9, 0, null, 1, 1, "h", AttemptOutcome.Succeeded, null, null), TaskState.Succeeded, null,
            null, doneFile: true, artifactsJson: "{\"state\":\"pending\"}", artifactsBaseDir: "/w");
        Assert.Equal(WriteStatus.Ok, (await store.RequeueAsync(other, "cpu_short", TaskState.Succeeded)).Status);
        Assert.Empty(store.OwedArtifacts());
        Assert.Null(store.Get(other)!.ArtifactsJson);
        Assert.Equal(WriteStatus.Conflict, (await store.ArtifactsRecordedAsync(other, 1, "{\"state\":\"recorded\"}")).Status);
        Assert.Null(store.Get(other)!.ArtifactsJson);
    }

    [Fact]
    public async Task Unfinished_tasks_are_read_back_in_submission_order_with_their_class_dependencies_and_resources()
    {
        static NewTask With(string id, string[] after, string cls = "cpu_short", double? cpus = null) =>
            new(TaskId.Parse(id), new TaskSpec { Argv = ["true"], Class = cls, After = after.Select(TaskId.Parse).ToList(), Cpus = cpus }, "{}", 1);
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
