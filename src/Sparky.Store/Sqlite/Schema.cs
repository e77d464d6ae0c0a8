using Microsoft.Data.Sqlite;

namespace Sparky.Store.Sqlite;

/// <summary>
/// The versioned schema. Each entry moves the database from version i to i+1 (PRAGMA user_version);
/// released entries never change, new ones are appended, so any old store opens and migrates.
/// </summary>
internal static class Schema
{
    public static readonly string[] Migrations =
    [
        // v1
        """
        CREATE TABLE tasks (
            seq          INTEGER PRIMARY KEY,          -- submission order; also the listing cursor
            id           TEXT NOT NULL UNIQUE,
            class        TEXT NOT NULL,
            name         TEXT,
            state        INTEGER NOT NULL,             -- TaskState
            reason       TEXT,
            spec         TEXT NOT NULL,                -- TaskSpec as JSON
            envelope     TEXT NOT NULL,                -- what the client sent, unknown fields kept
            after        TEXT,                         -- dependency ids, comma-separated (duplicated from spec for a cheap restart)
            retries      INTEGER NOT NULL DEFAULT 0,
            attempts     INTEGER NOT NULL DEFAULT 0,
            submitted_at INTEGER NOT NULL,             -- unix ms
            started_at   INTEGER,
            finished_at  INTEGER,
            exit_code    INTEGER,
            signal       INTEGER,
            result       TEXT
        );
        CREATE INDEX tasks_unfinished ON tasks(state) WHERE state < 2;
        CREATE TABLE attempts (
            task_id    TEXT NOT NULL,
            n          INTEGER NOT NULL,
            started_at INTEGER NOT NULL,
            ended_at   INTEGER,
            exit_code  INTEGER,
            signal     INTEGER,
            pid        INTEGER,
            pid_start  INTEGER,                        -- /proc/<pid>/stat start time, to tell a reused pid apart
            host       TEXT,
            outcome    TEXT,
            reason     TEXT,
            exit_file  TEXT,                           -- where the shim writes the exit code, for re-attach
            PRIMARY KEY (task_id, n)
        ) WITHOUT ROWID;
        """,
        // v2: what a task asks for (ResourceRequest.ToStored), so a restart rebuilds the scheduler without parsing specs.
        """
        ALTER TABLE tasks ADD COLUMN resources TEXT;
        """,
        // v3: an attempt run as a Slurm job keeps its job id and Slurm's own start and end (unix ms); host gets its node.
        """
        ALTER TABLE attempts ADD COLUMN slurm_job_id TEXT;
        ALTER TABLE attempts ADD COLUMN slurm_started_at INTEGER;
        ALTER TABLE attempts ADD COLUMN slurm_ended_at INTEGER;
        """,
        // v4: plans (SPEC §5): the file as submitted and the engine's state (PlanJson.State), one row per plan name.
        """
        CREATE TABLE plans (
            name       TEXT PRIMARY KEY,
            path       TEXT,
            base_dir   TEXT,
            text       TEXT NOT NULL,
            status     TEXT NOT NULL,                  -- running | succeeded | stopped
            state      TEXT NOT NULL,                  -- PlanJson.State
            updated_at INTEGER NOT NULL                -- unix ms
        );
        """,
        // v5: the counters a start rebuilds (SqliteStore.RebuildCounters) read this index, not every row: a store of a
        // million tasks counts in tens of milliseconds instead of most of a second. It takes the place of the partial
        // index on unfinished states, which no query used (the restart's read goes in seq order), so a write still
        // keeps one index on the state.
        """
        CREATE INDEX tasks_class_state ON tasks(class, state);
        DROP INDEX IF EXISTS tasks_unfinished;
        """,
        // v6: the drop directory's files taken, by identity (DroppedFile.Key), stored with their task in one transaction,
        // so a file found again after a crash is recognised, not taken twice; and the done files owed, one row per
        // finished task whose done/<id>.json is not written yet, added with its end and removed once written, so a
        // start writes the missing ones without reading every finished task. Tasks stored before hold no row: their
        // files were written, or lost, under the old rules.
        """
        CREATE TABLE intake (
            key     TEXT PRIMARY KEY,
            task_id TEXT NOT NULL
        ) WITHOUT ROWID;
        CREATE TABLE done_owed (
            task_id TEXT PRIMARY KEY
        ) WITHOUT ROWID;
        """,
        // v7: what the end of a task's last attempt left besides its exit: why its result marker gave no result
        // (result_error), and its declared output artifacts (artifacts: TaskJson's "artifacts" object, pending until
        // hashed). The artifacts an ended task owes are hashed off the engine's loop: artifacts_owed holds one row
        // per end whose files are not hashed yet (its attempt, and the directory relative paths start from), added
        // with the end and removed with the recorded artifacts, so a start hashes again what a kill -9 left owed.
        """
        ALTER TABLE tasks ADD COLUMN result_error TEXT;
        ALTER TABLE tasks ADD COLUMN artifacts TEXT;
        CREATE TABLE artifacts_owed (
            task_id TEXT PRIMARY KEY,
            attempt INTEGER NOT NULL,
            base_dir TEXT NOT NULL
        ) WITHOUT ROWID;
        """,
        // v8: what an attempt used, where its cgroups told it: CPU time and peak memory (null elsewhere: a Slurm job,
        // a worker, marker-only containment, or memory not accounted on the host).
        """
        ALTER TABLE attempts ADD COLUMN cpu_ms INTEGER;
        ALTER TABLE attempts ADD COLUMN mem_peak_bytes INTEGER;
        """,
        // v9: the task's last progress line (TaskProgress, SPEC §3) as TaskJson's "progress" object, updated_at included;
        // kept across attempts until a new one reports its own.
        """
        ALTER TABLE tasks ADD COLUMN progress TEXT;
        """,
        // v10: the task list's search (GET /api/v1/tasks?q=): a trigram index of each task's name and command line, so a
        // substring of three characters or more is found without reading every row. Contentless (the text is in tasks
        // already; a search needs only the matching seqs) and without per-row sizes (nothing is ranked). Filled here
        // for the tasks stored before; the writer indexes the new tasks of each commit in the same transaction, in one
        // statement (IndexTasksAfter), not by a trigger: FTS5 writes its pending terms out at every statement that
        // could roll back, and a trigger's row-by-row inserts made storing a burst of tasks several times slower. A
        // task's name and spec never change after it is stored.
        $"""
        CREATE VIRTUAL TABLE tasks_search USING fts5(name, command, content='', columnsize=0, tokenize='trigram');
        INSERT INTO tasks_search (rowid, name, command) SELECT seq, name, {SearchCommandOf("spec")} FROM tasks;
        """,
    ];

    /// <summary>The command line the search looks in, from a stored spec: as the task's JSON shows its command, the argv
    /// joined by spaces or the shell string (null for a payload its class's handler runs). Part of schema v10 (the tasks
    /// it indexed): change it only with a migration that indexes the tasks again.</summary>
    internal static string SearchCommandOf(string spec) =>
        $"CASE WHEN json_type({spec}, '$.argv') = 'array' THEN (SELECT group_concat(value, ' ') FROM json_each({spec}, '$.argv')) ELSE json_extract({spec}, '$.shell') END";

    /// <summary>Indexes for the search the tasks stored after seq <c>$after</c>: a commit's new tasks.</summary>
    internal static readonly string IndexTasksAfter =
        $"INSERT INTO tasks_search (rowid, name, command) SELECT seq, name, {SearchCommandOf("spec")} FROM tasks WHERE seq > $after";

    public static int Current => Migrations.Length;

    public static void Migrate(SqliteConnection conn)
    {
        int version = Convert.ToInt32(Exec(conn, "PRAGMA user_version"));
        if (version > Current)
            throw new InvalidOperationException($"the store was written by a newer Sparky (schema {version}, this one knows {Current})");
        for (int v = version; v < Current; v++)
        {
            using var tx = conn.BeginTransaction();
            using (var cmd = conn.CreateCommand())
            {
                cmd.Transaction = tx;
                cmd.CommandText = Migrations[v] + $"\nPRAGMA user_version = {v + 1};";
                cmd.ExecuteNonQuery();
            }
            tx.Commit();
        }
    }

    private static object? Exec(SqliteConnection conn, string sql)
    {
        using var cmd = conn.CreateCommand();
        cmd.CommandText = sql;
        return cmd.ExecuteScalar();
    }
}
