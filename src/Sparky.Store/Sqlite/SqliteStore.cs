using Sparky.Core.Scheduling;
using System.Diagnostics;
using System.Threading.Channels;
using System.Text;
using Microsoft.Data.Sqlite;
using SQLitePCL;
using Sparky.Core.Tasks;

namespace Sparky.Store.Sqlite;

/// <summary>How a write ended; a refusal is a value, not an exception, because clients cause them.
/// <see cref="QueueFull"/>: an insert that would take the queued tasks past its bound.</summary>
public enum WriteStatus { Ok, Conflict, Unavailable, QueueFull }

/// <param name="Queued">With <see cref="WriteStatus.QueueFull"/>: the tasks queued when the insert was refused.</param>
public sealed record WriteResult(WriteStatus Status, string? Detail = null, long Queued = 0)
{
    public static readonly WriteResult Ok = new(WriteStatus.Ok);
}

/// <summary>
/// The store of record: one SQLite file in WAL mode. Every write goes through one writer loop that
/// commits whatever has queued up as one transaction (group commit), so a burst of submissions costs
/// a few fsyncs; a write's task completes only after its transaction is durable (synchronous=FULL).
/// Reads use their own pooled connections and never wait for the writer.
/// </summary>
public sealed class SqliteStore : IAsyncDisposable
{
    private const int MaxBatch = 4096;
    private const int LingerMs = 4;
    /// <summary>The writer is letting state updates gather for one commit (it is woken only for a submission).</summary>
    private bool _lingering;

    private readonly string _connectionString;
    private readonly Channel<WriteOp> _writes = Channel.CreateUnbounded<WriteOp>(new UnboundedChannelOptions { SingleReader = true });
    private readonly SqliteConnection _writer;
    private readonly Thread _writerThread;
    /// <summary>Set by every enqueued write: the writer thread blocks on it rather than awaiting, so a
    /// write reaches it without a thread-pool hop.</summary>
    private readonly AutoResetEvent _writerWake = new(false);

    public Counters Counters { get; } = new();
    public string Path { get; }

    /// <summary>Fsyncs done so far: one per group commit. Exposed for benchmarks and tests.</summary>
    public long Commits => Interlocked.Read(ref _commits);
    private long _commits;

    /// <summary>Reads done so far through the guarded read methods, one per call. Exposed for tests (a plan report
    /// reads its tasks in one call, not one per task).</summary>
    public long Reads => Interlocked.Read(ref _reads);
    private long _reads;

    private SqliteStore(string path)
    {
        Path = path;
        _connectionString = new SqliteConnectionStringBuilder { DataSource = path, Pooling = true, DefaultTimeout = 30 }.ToString();
        _writer = new SqliteConnection(_connectionString);
        _writer.Open();
        Pragma(_writer, "PRAGMA journal_mode=WAL");
        Pragma(_writer, "PRAGMA synchronous=FULL");
        Pragma(_writer, "PRAGMA busy_timeout=30000");
        Schema.Migrate(_writer);
        RebuildCounters();
        _writerThread = new Thread(WriterLoop) { IsBackground = true, Name = "sparky-store-writer" };
        _writerThread.Start();
    }

    public static SqliteStore Open(string path)
    {
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))!);
        return new SqliteStore(path);
    }

    public int SchemaVersion
    {
        get
        {
            using var conn = OpenRead();
            return Convert.ToInt32(Scalar(conn, "PRAGMA user_version"));
        }
    }

    // ---------- writes ----------

    /// <summary>Inserts all the tasks or none: a request with one existing id is a conflict as a whole.
    /// <paramref name="onCommitted"/> runs on the writer thread right after the commit, so callbacks run in
    /// commit order (the engine learns of tasks in the order they were stored). <paramref name="intakeKey"/>, for a
    /// dropped file, is stored in the same transaction (<see cref="IntakeTaskOf"/>); a key stored before is a conflict.</summary>
    /// <summary>Stores new tasks, all or none. <paramref name="onCommitted"/> runs on the writer thread once they are
    /// durable, given the ids that were already stored with the same envelope (sent again, left as they are).
    /// <paramref name="maxQueued"/>: refused (<see cref="WriteStatus.QueueFull"/>) if the new tasks would take the
    /// queued ones past it, counted on the writer, in commit order, so concurrent inserts cannot overshoot it together.</summary>
    public Task<WriteResult> InsertAsync(IReadOnlyList<NewTask> tasks, Action<IReadOnlySet<string>>? onCommitted = null, string? intakeKey = null,
        long maxQueued = long.MaxValue) =>
        Enqueue(new InsertOp(tasks, onCommitted, intakeKey, maxQueued));

    public Task<WriteResult> AttemptStartedAsync(TaskId id, string cls, TaskState from, AttemptRecord attempt) =>
        Enqueue(new StartOp(id, cls, from, attempt));

    /// <summary>An attempt ended. With <paramref name="doneFile"/> and a terminal state, the task's done file is owed
    /// from the same commit (<see cref="OwedDoneFiles"/>). <paramref name="artifactsJson"/> is the task's artifacts as
    /// known at the end; with <paramref name="artifactsBaseDir"/> they are owed from the same commit
    /// (<see cref="OwedArtifacts"/>) until <see cref="ArtifactsRecordedAsync"/>. <paramref name="onCommitted"/> runs on the
    /// writer thread once the end is committed, in commit order, before the returned task completes: for what must follow
    /// the commit and is cheap (publishing the end's event), without a thread-pool hop per end.</summary>
    public Task<WriteResult> AttemptEndedAsync(TaskId id, string cls, AttemptRecord ended, TaskState newState, string? reason, string? resultJson,
        bool doneFile = false, string? resultError = null, string? artifactsJson = null, string? artifactsBaseDir = null, Action? onCommitted = null) =>
        Enqueue(new EndOp(id, cls, ended, newState, reason, resultJson, doneFile, resultError, artifactsJson, artifactsBaseDir, onCommitted));

    /// <summary>The artifacts of attempt <paramref name="attempt"/>'s end are hashed: recorded, and no longer owed.
    /// <see cref="WriteStatus.Conflict"/> when the task is no longer that end (a replay queued it again).</summary>
    public Task<WriteResult> ArtifactsRecordedAsync(TaskId id, int attempt, string artifactsJson) =>
        Enqueue(new ArtifactsOp(id, attempt, artifactsJson));

    /// <summary>A task's last progress (<c>TaskJson</c>'s <c>progress</c> object): nobody waits for it, so it shares the
    /// next commit with the engine's updates.</summary>
    public Task<WriteResult> ProgressAsync(TaskId id, string progressJson) => Enqueue(new ProgressOp(id, progressJson));

    /// <summary>Records what Slurm said about a running attempt: its job id once sbatch answered, the node once it runs.</summary>
    public Task<WriteResult> AttemptSlurmAsync(TaskId id, int n, string? jobId, string? node, long? startedAt = null, long? endedAt = null) =>
        Enqueue(new SlurmOp(id, n, jobId, node, startedAt, endedAt));

    /// <summary>Why a running attempt is being stopped (cancelled, timeout, dependency_failed), kept in its reason
    /// until its end replaces it: a daemon that dies before the end records that end as this stop after its restart.
    /// <paramref name="awaited"/>: a client waits for it (a cancel's answer), so it is committed without delay.</summary>
    public Task<WriteResult> AttemptStoppingAsync(TaskId id, int n, string reason, bool awaited = false) =>
        Enqueue(new StoppingOp(id, n, reason, awaited));

    /// <summary>Ends a task that has no attempt running: a failed dependency, or a cancel while queued.</summary>
    public Task<WriteResult> FinishAsync(TaskId id, string cls, TaskState from, TaskState to, string reason, long at, bool doneFile = false) =>
        Enqueue(new FinishOp(id, cls, from, to, reason, at, doneFile));

    /// <summary>The task's done file is written: no longer owed. Not waited for: if it is lost, the next start writes
    /// the same file again.</summary>
    public Task<WriteResult> DoneFileWrittenAsync(TaskId id) => Enqueue(new DoneWrittenOp(id));

    /// <summary>Queues a finished task again with the same spec (a replay); its attempts so far are kept.</summary>
    public Task<WriteResult> RequeueAsync(TaskId id, string cls, TaskState from, Action? onCommitted = null) => Enqueue(new RequeueOp(id, cls, from, onCommitted));

    /// <summary>Stores a plan's file and state (insert or replace by name). Awaited and durable: the plan runner
    /// stores a decision before carrying it out.</summary>
    public Task<WriteResult> UpsertPlanAsync(PlanRow plan) => Enqueue(new PlanOp(plan));

    /// <summary>Forgets a plan (its row; its tasks stay, as any task does). Awaited and durable.</summary>
    public Task<WriteResult> DeletePlanAsync(string name) => Enqueue(new PlanDeleteOp(name));

    private Task<WriteResult> Enqueue(WriteOp op)
    {
        if (!_writes.Writer.TryWrite(op)) return Task.FromResult(new WriteResult(WriteStatus.Unavailable, "the store is closed"));
        // A lingering writer reads an update at the linger's end; a submission (someone waits) ends the linger now.
        if (op.Awaited || !Volatile.Read(ref _lingering)) _writerWake.Set();
        return op.Done.Task;
    }

    private void WriterLoop()
    {
        var batch = new List<WriteOp>(MaxBatch);
        var cmds = new Commands(_writer, Counters);
        long lastUpdateCommit = 0;
        bool syncFull = true;
        var reader = _writes.Reader;
        var carried = new List<WriteOp>();
        int failures = 0;
        while (true)
        {
            if (!reader.TryPeek(out _) && carried.Count == 0)
            {
                if (reader.Completion.IsCompleted) break;
                // After a failed write (a full disk) an idle store still learns, within a second or two, that it can
                // write again, so /readyz does not stay 503 until the next submission happens to succeed.
                if (_writeFailure is not null && !_writerWake.WaitOne(1000)) ProbeWrite();
                else if (_writeFailure is null) _writerWake.WaitOne();
                continue;
            }
            batch.Clear();
            batch.AddRange(carried);
            carried.Clear();
            while (batch.Count < MaxBatch && reader.TryRead(out var op)) batch.Add(op);
            // Nobody waits on a state update (a start, an end). When they stream in, let a few
            // milliseconds of them share one commit; a lone one, or a submission (which a client
            // waits on), is committed at once.
            // The linger sleeps once, not every millisecond: only a submission wakes it early (see Enqueue), and the
            // updates that came meanwhile are read at its end (a wake per millisecond or per update cost more than
            // the commit they shared on a machine that runs tasks one at a time).
            long lingerUntil = lastUpdateCommit + LingerMs, left;
            if (batch.Count < MaxBatch && !batch.Exists(o => o.Awaited) && lingerUntil > Environment.TickCount64)
            {
                Volatile.Write(ref _lingering, true);
                while (batch.Count < MaxBatch && !batch.Exists(o => o.Awaited) && (left = lingerUntil - Environment.TickCount64) > 0)
                {
                    _writerWake.WaitOne((int)left);
                    while (batch.Count < MaxBatch && reader.TryRead(out var op)) batch.Add(op);
                }
                Interlocked.Exchange(ref _lingering, false); // a full fence: an update enqueued from here on wakes us, and one before is read below
                while (batch.Count < MaxBatch && reader.TryRead(out var op)) batch.Add(op);
            }
            // State updates need not survive a power cut (recovery treats a lost start or end as a lost
            // attempt), only a crash of this process: no fsync for them. A submission's commit is fsynced,
            // and with it every earlier update in the log.
            bool durable = batch.Exists(o => o.Awaited);
            var results = new WriteResult[batch.Count];
            try
            {
                if (durable != syncFull)
                {
                    using var pragma = _writer.CreateCommand();
                    pragma.CommandText = durable ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL";
                    pragma.ExecuteNonQuery();
                    syncFull = durable;
                }
                using var tx = _writer.BeginTransaction();
                cmds.Bind(tx);
                cmds.QueuedInBatch = 0;
                cmds.SeqBeforeInserts = null;
                for (int i = 0; i < batch.Count; i++) results[i] = batch[i].Apply(cmds);
                // The search index takes the batch's new tasks in one statement: FTS5 writes its pending terms out at
                // each statement that could roll back, so one per task (or per insert) made a burst of submissions
                // several times slower.
                if (cmds.SeqBeforeInserts is { } seq) Run(cmds.Index, seq);
                tx.Commit();
                if (!durable) lastUpdateCommit = Environment.TickCount64;
                Interlocked.Increment(ref _commits);
            }
            catch (SqliteException ex)
            {
                // The whole transaction is gone (disk full, I/O error). A submission is refused (its client
                // is told, nothing was acknowledged). A state update is kept and tried again, in order, ahead
                // of newer writes: dropping it would leave the store behind the engine for good.
                var failed = new WriteResult(WriteStatus.Unavailable, $"store write failed: {ex.Message}");
                _writeFailure = $"the store's last write failed: {ex.Message}";
                NoteFailure(ex);
                bool givingUp = reader.Completion.IsCompleted && failures >= 3;
                foreach (var op in batch)
                {
                    if (op.Awaited || givingUp) op.Done.TrySetResult(failed);
                    else carried.Add(op);
                }
                failures++;
                if (carried.Count > 0) Thread.Sleep(Math.Min(5000, 50 << Math.Min(failures, 7)));
                continue;
            }
            failures = 0;
            _writeFailure = null;
            for (int i = 0; i < batch.Count; i++)
            {
                if (results[i].Status == WriteStatus.Ok) batch[i].Committed(Counters);
                batch[i].Done.TrySetResult(results[i]);
            }
        }
    }

    private const long ProbeFreeBytes = 1024 * 1024;

    /// <summary>A real write (page 1 rewritten with the same schema version, one WAL frame) that clears the write
    /// failure once it commits.</summary>
    private void ProbeWrite()
    {
        try
        {
            // Not while the disk is nearly full: one page may fit where a submission does not, and ready must mean
            // that submissions are taken again.
            var dir = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(Path)) ?? ".";
            if (new DriveInfo(dir).AvailableFreeSpace < ProbeFreeBytes) return;
            using var tx = _writer.BeginTransaction();
            using var cmd = _writer.CreateCommand();
            cmd.Transaction = tx;
            cmd.CommandText = "PRAGMA user_version";
            long version = Convert.ToInt64(cmd.ExecuteScalar());
            cmd.CommandText = $"PRAGMA user_version = {version}";
            cmd.ExecuteNonQuery();
            tx.Commit();
            _writeFailure = null;
        }
        catch (SqliteException ex)
        {
            _writeFailure = $"the store's last write failed: {ex.Message}";
            NoteFailure(ex);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException) { }
    }

    /// <summary>Prepared statements, reused for every batch.</summary>
    private sealed class Commands
    {
        public readonly SqliteCommand Savepoint, Release, Rollback, LastSeq, Insert, Index, Start, StartAttempt, End, EndAttempt, Finish, Requeue, Slurm, Stopping, Plan,
            PlanDelete, Intake, Owe, Paid, OweArtifacts, Artifacts, ArtifactsPaid, ArtifactsForget, Progress;
        private readonly SqliteCommand[] _all;
        /// <summary>The committed counts, exact on the writer thread (only it moves them, after each commit).</summary>
        public readonly Counters Counters;
        /// <summary>Tasks queued by inserts applied in the batch being written, not yet in <see cref="Counters"/>.</summary>
        public long QueuedInBatch;
        /// <summary>The last seq before the batch's first insert: seqs only grow and only this writer inserts, so the
        /// batch's new tasks are the rows past it.</summary>
        public long? SeqBeforeInserts;

        public Commands(SqliteConnection c, Counters counters)
        {
            Counters = counters;
            Savepoint = Make(c, "SAVEPOINT op");
            Release = Make(c, "RELEASE op");
            Rollback = Make(c, "ROLLBACK TO op");
            LastSeq = Make(c, "SELECT coalesce(max(seq), 0) FROM tasks");
            Index = Make(c, Schema.IndexTasksAfter, "$after");
            Insert = Make(c, """
                INSERT INTO tasks (id, class, name, state, spec, envelope, after, retries, submitted_at, resources)
                VALUES ($id, $class, $name, 0, $spec, $envelope, $after, $retries, $at, $resources)
                ON CONFLICT(id) DO NOTHING
                """, "$id", "$class", "$name", "$spec", "$envelope", "$after", "$retries", "$at", "$resources");
            Start = Make(c, "UPDATE tasks SET state = 1, attempts = $n, started_at = $at, reason = NULL WHERE id = $id", "$id", "$n", "$at");
            StartAttempt = Make(c, """
                INSERT OR REPLACE INTO attempts (task_id, n, started_at, pid, pid_start, host, exit_file, slurm_job_id)
                VALUES ($id, $n, $at, $pid, $pid_start, $host, $exit_file, $slurm)
                """, "$id", "$n", "$at", "$pid", "$pid_start", "$host", "$exit_file", "$slurm");
            Slurm = Make(c, """
                UPDATE attempts SET slurm_job_id = COALESCE($job, slurm_job_id), host = COALESCE($node, host),
                    slurm_started_at = COALESCE($start, slurm_started_at), slurm_ended_at = COALESCE($end, slurm_ended_at)
                WHERE task_id = $id AND n = $n
                """, "$id", "$n", "$job", "$node", "$start", "$end");
            // Only a running attempt's: an end that was written first keeps its own reason.
            Stopping = Make(c, "UPDATE attempts SET reason = $reason WHERE task_id = $id AND n = $n AND ended_at IS NULL", "$id", "$n", "$reason");
            End = Make(c, """
                UPDATE tasks SET state = $state, reason = $reason, exit_code = $exit, signal = $signal,
                    finished_at = $finished, result = COALESCE($result, result), result_error = $result_error, artifacts = $artifacts
                WHERE id = $id
                """, "$id", "$state", "$reason", "$exit", "$signal", "$finished", "$result", "$result_error", "$artifacts");
            EndAttempt = Make(c, """
                UPDATE attempts SET ended_at = $at, exit_code = $exit, signal = $signal, outcome = $outcome, reason = $reason,
                    cpu_ms = $cpu, mem_peak_bytes = $mem
                WHERE task_id = $id AND n = $n
                """, "$id", "$n", "$at", "$exit", "$signal", "$outcome", "$reason", "$cpu", "$mem");
            Finish = Make(c, "UPDATE tasks SET state = $state, reason = $reason, finished_at = $at WHERE id = $id AND state < 2", "$id", "$state", "$reason", "$at");
            Requeue = Make(c, """
                UPDATE tasks SET state = 0, reason = NULL, exit_code = NULL, signal = NULL, finished_at = NULL, started_at = NULL, result = NULL,
                    result_error = NULL, artifacts = NULL
                WHERE id = $id AND state = $from AND state >= 2
                """, "$id", "$from");
            Plan = Make(c, """
                INSERT INTO plans (name, path, base_dir, text, status, state, updated_at)
                VALUES ($name, $path, $base, $text, $status, $state, $at)
                ON CONFLICT(name) DO UPDATE SET path = excluded.path, base_dir = excluded.base_dir, text = excluded.text,
                    status = excluded.status, state = excluded.state, updated_at = excluded.updated_at
                """, "$name", "$path", "$base", "$text", "$status", "$state", "$at");
            PlanDelete = Make(c, "DELETE FROM plans WHERE name = $name", "$name");
            Intake = Make(c, "INSERT INTO intake (key, task_id) VALUES ($key, $id) ON CONFLICT(key) DO NOTHING", "$key", "$id");
            Owe = Make(c, "INSERT OR IGNORE INTO done_owed (task_id) VALUES ($id)", "$id");
            Paid = Make(c, "DELETE FROM done_owed WHERE task_id = $id", "$id");
            OweArtifacts = Make(c, "INSERT OR REPLACE INTO artifacts_owed (task_id, attempt, base_dir) VALUES ($id, $n, $dir)", "$id", "$n", "$dir");
            // Only onto the end that owed them: a replay since has cleared both, and its own end owes its own.
            Artifacts = Make(c, "UPDATE tasks SET artifacts = $artifacts WHERE id = $id AND attempts = $n AND state >= 2", "$id", "$n", "$artifacts");
            ArtifactsPaid = Make(c, "DELETE FROM artifacts_owed WHERE task_id = $id AND attempt = $n", "$id", "$n");
            ArtifactsForget = Make(c, "DELETE FROM artifacts_owed WHERE task_id = $id", "$id");
            Progress = Make(c, "UPDATE tasks SET progress = $progress WHERE id = $id", "$id", "$progress");
            _all = [Savepoint, Release, Rollback, LastSeq, Insert, Index, Start, StartAttempt, End, EndAttempt, Finish, Requeue, Slurm, Stopping, Plan, PlanDelete, Intake, Owe, Paid,
                OweArtifacts, Artifacts, ArtifactsPaid, ArtifactsForget, Progress];
        }

        public void Bind(SqliteTransaction tx)
        {
            foreach (var c in _all) c.Transaction = tx;
        }

        private static SqliteCommand Make(SqliteConnection c, string sql, params string[] names)
        {
            var cmd = c.CreateCommand();
            cmd.CommandText = sql;
            foreach (var n in names) cmd.Parameters.Add(new SqliteParameter(n, null));
            return cmd;
        }
    }

    private static int Run(SqliteCommand cmd, params object?[] values)
    {
        for (int i = 0; i < values.Length; i++) cmd.Parameters[i].Value = values[i] ?? DBNull.Value;
        return cmd.ExecuteNonQuery();
    }

    private abstract class WriteOp
    {
        public TaskCompletionSource<WriteResult> Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
        /// <summary>Someone waits for this write before answering a client: commit it without delay.</summary>
        public virtual bool Awaited => false;
        public abstract WriteResult Apply(Commands c);
        public virtual void Committed(Counters counters) { }
    }

    /// <summary>
    /// Inserts the tasks, all or none. A task whose id is taken by a task with the same envelope is the same task sent
    /// again (a client's script run twice): it is left as it is and listed in <see cref="Existing"/>. One under a taken
    /// id with another envelope is a conflict, which names what differs.
    /// </summary>
    private sealed class InsertOp(IReadOnlyList<NewTask> tasks, Action<IReadOnlySet<string>>? onCommitted, string? intakeKey, long maxQueued) : WriteOp
    {
        public override bool Awaited => true;
        public HashSet<string> Existing { get; } = new(StringComparer.Ordinal);

        public override WriteResult Apply(Commands c)
        {
            Existing.Clear(); // a batch that failed is applied again
            c.Savepoint.ExecuteNonQuery();
            c.SeqBeforeInserts ??= (long)c.LastSeq.ExecuteScalar()!;
            foreach (var t in tasks)
            {
                var after = t.Spec.After.Count == 0 ? null : string.Join(',', t.Spec.After);
                if (Run(c.Insert, t.Id.Value, t.Spec.Class, t.Spec.Name, SpecJson.Serialize(t.Spec), t.EnvelopeJson, after, t.Spec.Retries, t.SubmittedAt, t.Spec.Asks.ToStored()) == 0)
                {
                    var differs = Differences(c.Insert, t);
                    if (differs.Count == 0) { Existing.Add(t.Id.Value); continue; }
                    c.Rollback.ExecuteNonQuery();
                    c.Release.ExecuteNonQuery();
                    return new WriteResult(WriteStatus.Conflict,
                        $"a task with id '{t.Id}' exists with another envelope (differs in {string.Join(", ", differs)}); send the same envelope to get it, or another id");
                }
            }
            if (intakeKey is not null && Run(c.Intake, intakeKey, tasks[0].Id.Value) == 0)
            {
                c.Rollback.ExecuteNonQuery();
                c.Release.ExecuteNonQuery();
                return new WriteResult(WriteStatus.Conflict, "this file was taken before");
            }
            long added = tasks.Count - Existing.Count, queued = c.Counters.Total(TaskState.Queued) + c.QueuedInBatch;
            if (added > 0 && queued + added > maxQueued)
            {
                c.Rollback.ExecuteNonQuery();
                c.Release.ExecuteNonQuery();
                return new WriteResult(WriteStatus.QueueFull, Queued: queued);
            }
            c.QueuedInBatch += added;
            c.Release.ExecuteNonQuery();
            return WriteResult.Ok;
        }

        public override void Committed(Counters counters)
        {
            foreach (var t in tasks)
                if (!Existing.Contains(t.Id.Value)) counters.Add(t.Spec.Class, TaskState.Queued, 1);
            onCommitted?.Invoke(Existing);
        }

        /// <summary>Where the stored task's envelope differs from this one's; none: the same task.</summary>
        private static IReadOnlyList<string> Differences(SqliteCommand insert, NewTask t)
        {
            using var read = insert.Connection!.CreateCommand();
            read.Transaction = insert.Transaction;
            read.CommandText = "SELECT envelope FROM tasks WHERE id = $id";
            read.Parameters.AddWithValue("$id", t.Id.Value);
            if (read.ExecuteScalar() is not string stored) return ["the envelope"];
            try { return EnvelopeDiff.Paths(System.Text.Json.Nodes.JsonNode.Parse(stored), System.Text.Json.Nodes.JsonNode.Parse(t.EnvelopeJson)); }
            catch (System.Text.Json.JsonException) { return ["the envelope"]; }
        }
    }

    private sealed class StartOp(TaskId id, string cls, TaskState from, AttemptRecord a) : WriteOp
    {
        public override WriteResult Apply(Commands c)
        {
            Run(c.Start, id.Value, a.N, a.StartedAt);
            Run(c.StartAttempt, id.Value, a.N, a.StartedAt, a.Pid, a.PidStart, a.Host, a.ExitFile, a.SlurmJobId);
            return WriteResult.Ok;
        }

        public override void Committed(Counters counters) => counters.Move(cls, from, TaskState.Running);
    }

    private sealed class SlurmOp(TaskId id, int n, string? jobId, string? node, long? startedAt, long? endedAt) : WriteOp
    {
        public override WriteResult Apply(Commands c)
        {
            Run(c.Slurm, id.Value, n, jobId, node, startedAt, endedAt);
            return WriteResult.Ok;
        }
    }

    private sealed class ProgressOp(TaskId id, string progress) : WriteOp
    {
        public override WriteResult Apply(Commands c)
        {
            Run(c.Progress, id.Value, progress);
            return WriteResult.Ok;
        }
    }

    private sealed class StoppingOp(TaskId id, int n, string reason, bool awaited) : WriteOp
    {
        public override bool Awaited => awaited;

        public override WriteResult Apply(Commands c)
        {
            Run(c.Stopping, id.Value, n, reason);
            return WriteResult.Ok;
        }
    }

    private sealed class EndOp(TaskId id, string cls, AttemptRecord a, TaskState state, string? reason, string? result, bool doneFile,
        string? resultError, string? artifacts, string? artifactsBaseDir, Action? onCommitted) : WriteOp
    {
        public override WriteResult Apply(Commands c)
        {
            Run(c.EndAttempt, id.Value, a.N, a.EndedAt, a.ExitCode, a.Signal, a.Outcome?.Name(), a.Reason, a.CpuMs, a.MemPeakBytes);
            Run(c.End, id.Value, (int)state, reason, a.ExitCode, a.Signal, state.IsTerminal() ? a.EndedAt : null, result, resultError, artifacts);
            if (doneFile && state.IsTerminal()) Run(c.Owe, id.Value);
            if (artifactsBaseDir is not null && state.IsTerminal()) Run(c.OweArtifacts, id.Value, a.N, artifactsBaseDir);
            return WriteResult.Ok;
        }

        public override void Committed(Counters counters)
        {
            counters.Move(cls, TaskState.Running, state);
            onCommitted?.Invoke();
        }
    }

    private sealed class FinishOp(TaskId id, string cls, TaskState from, TaskState to, string reason, long at, bool doneFile) : WriteOp
    {
        private bool _changed;

        public override WriteResult Apply(Commands c)
        {
            _changed = Run(c.Finish, id.Value, (int)to, reason, at) > 0;
            if (_changed && doneFile) Run(c.Owe, id.Value);
            return WriteResult.Ok;
        }

        public override void Committed(Counters counters)
        {
            if (_changed) counters.Move(cls, from, to);
        }
    }

    private sealed class ArtifactsOp(TaskId id, int attempt, string artifacts) : WriteOp
    {
        public override WriteResult Apply(Commands c)
        {
            int changed = Run(c.Artifacts, id.Value, attempt, artifacts);
            Run(c.ArtifactsPaid, id.Value, attempt);
            return changed > 0 ? WriteResult.Ok : new WriteResult(WriteStatus.Conflict, "the task has been queued again since that end");
        }
    }

    private sealed class DoneWrittenOp(TaskId id) : WriteOp
    {
        public override WriteResult Apply(Commands c)
        {
            Run(c.Paid, id.Value);
            return WriteResult.Ok;
        }
    }

    private sealed class PlanOp(PlanRow p) : WriteOp
    {
        public override bool Awaited => true;

        public override WriteResult Apply(Commands c)
        {
            Run(c.Plan, p.Name, p.Path, p.BaseDir, p.Text, p.Status, p.StateJson, p.UpdatedAt);
            return WriteResult.Ok;
        }
    }

    private sealed class PlanDeleteOp(string name) : WriteOp
    {
        public override bool Awaited => true;

        public override WriteResult Apply(Commands c)
        {
            Run(c.PlanDelete, name);
            return WriteResult.Ok;
        }
    }

    private sealed class RequeueOp(TaskId id, string cls, TaskState from, Action? onCommitted) : WriteOp
    {
        public override bool Awaited => true;

        public override WriteResult Apply(Commands c)
        {
            if (Run(c.Requeue, id.Value, (int)from) == 0) return new WriteResult(WriteStatus.Conflict, "the task is not finished");
            Run(c.ArtifactsForget, id.Value); // a replay's end owes its own
            return WriteResult.Ok;
        }

        public override void Committed(Counters counters)
        {
            counters.Move(cls, from, TaskState.Queued);
            onCommitted?.Invoke();
        }
    }


    // ---------- reads ----------

    public SqliteConnection OpenRead()
    {
        var conn = new SqliteConnection(_connectionString);
        conn.Open();
        return conn;
    }

    /// <summary>What <see cref="Counters"/> starts from: answered from the (class, state) index, not by reading every row.</summary>
    internal const string CountsByClassAndState = "SELECT class, state, count(*) FROM tasks GROUP BY class, state";

    private void RebuildCounters()
    {
        Counters.Reset();
        using var cmd = _writer.CreateCommand();
        cmd.CommandText = CountsByClassAndState;
        using var r = cmd.ExecuteReader();
        while (r.Read()) Counters.Add(r.GetString(0), (TaskState)r.GetInt32(1), r.GetInt64(2));
    }

    /// <summary>The columns <see cref="ReadAttempt"/> reads, in its order.</summary>
    private const string AttemptColumns = "n, started_at, ended_at, exit_code, signal, pid, pid_start, host, outcome, reason, exit_file, slurm_job_id, slurm_started_at, slurm_ended_at, cpu_ms, mem_peak_bytes";

    private const string TaskColumns = "seq, id, class, name, state, reason, spec, envelope, attempts, submitted_at, started_at, finished_at, exit_code, signal, result, result_error, artifacts, progress";

    public TaskRecord? Get(TaskId id) => Guarded(() => GetTask(id));

    private TaskRecord? GetTask(TaskId id)
    {
        using var conn = OpenRead();
        using var cmd = conn.CreateCommand();
        cmd.CommandText = $"SELECT {TaskColumns} FROM tasks WHERE id = $id";
        cmd.Parameters.AddWithValue("$id", id.Value);
        using var r = cmd.ExecuteReader();
        if (!r.Read()) return null;
        var rec = ReadTask(r, []);
        return rec with { AttemptList = Attempts(conn, id) };
    }

    /// <summary>
    /// What a report shows of many tasks (state, reason, attempts, times, exit code, progress), read in one query whatever their
    /// number: the ids go in as one JSON array. Ids that are not stored are left out.
    /// </summary>
    public IReadOnlyDictionary<string, TaskBrief> Briefs(IReadOnlyCollection<string> ids) => Guarded(() =>
    {
        var found = new Dictionary<string, TaskBrief>(ids.Count, StringComparer.Ordinal);
        if (ids.Count == 0) return (IReadOnlyDictionary<string, TaskBrief>)found;
        using var conn = OpenRead();
        using var cmd = conn.CreateCommand();
        cmd.CommandText = """
            SELECT id, state, reason, attempts, started_at, finished_at, exit_code, progress FROM tasks
            WHERE id IN (SELECT value FROM json_each($ids))
            """;
        var json = new System.Text.Json.Nodes.JsonArray();
        foreach (var id in ids) json.Add((System.Text.Json.Nodes.JsonNode?)id);
        cmd.Parameters.AddWithValue("$ids", json.ToJsonString());
        using var r = cmd.ExecuteReader();
        while (r.Read())
            found[r.GetString(0)] = new TaskBrief((TaskState)r.GetInt32(1), NStr(r, 2), r.GetInt32(3), NLong(r, 4), NLong(r, 5), NInt(r, 6), NStr(r, 7));
        return found;
    });

    public TaskState? StateOf(TaskId id) => Guarded(() => ReadState(id));

    private TaskState? ReadState(TaskId id)
    {
        using var conn = OpenRead();
        using var cmd = conn.CreateCommand();
        cmd.CommandText = "SELECT state FROM tasks WHERE id = $id";
        cmd.Parameters.AddWithValue("$id", id.Value);
        var v = cmd.ExecuteScalar();
        return v is null ? null : (TaskState)Convert.ToInt32(v);
    }

    /// <summary>A page of the task list (<see cref="TaskQuery"/>), each task with its attempts, and the cursor of the next
    /// page. It reads about one page, never every task: see <see cref="TaskListPlan"/> for how each kind of query finds it.</summary>
    public TaskPage List(TaskQuery query) => Guarded(() => ListTasks(query, null));

    /// <summary>The page as <paramref name="plan"/> finds it, whatever the counts say: every plan must find the same.</summary>
    internal TaskPage List(TaskQuery query, TaskListPlan plan) => ListTasks(query, plan);

    private TaskPage ListTasks(TaskQuery q, TaskListPlan? plan)
    {
        using var conn = OpenRead();
        plan ??= TaskQueries.Plan(q, q.Text is not null && q.Filtered ? FilterRows(q) : 0, FilterRows(new TaskQuery()));
        var (seqs, next) = plan switch
        {
            TaskListPlan.Scan => Paged(ScanSeqs(conn, q), q),
            TaskListPlan.Search => SearchSeqs(conn, q),
            _ => Paged(FilterThenMatchSeqs(conn, q), q),
        };
        if (seqs.Count == 0) return new TaskPage([], next);
        using var cmd = conn.CreateCommand();
        cmd.CommandText = $"SELECT {TaskColumns} FROM tasks WHERE seq IN (SELECT value FROM json_each($seqs)) ORDER BY seq {(q.Descending ? "DESC" : "ASC")}";
        cmd.Parameters.AddWithValue("$seqs", "[" + string.Join(',', seqs) + "]");
        var list = new List<TaskRecord>(seqs.Count);
        using (var r = cmd.ExecuteReader())
            while (r.Read()) list.Add(ReadTask(r, []));
        return new TaskPage(WithAttempts(conn, list), next);
    }

    /// <summary>A page read in full: another follows it when it is full.</summary>
    private static (List<long>, long?) Paged(List<long> seqs, TaskQuery q) => (seqs, seqs.Count == q.Limit ? seqs[^1] : null);

    /// <summary>How many tasks the query's filter holds (every task, with none), from the counters.</summary>
    private long FilterRows(TaskQuery q)
    {
        IEnumerable<string> classes = q.Classes.Count > 0 ? q.Classes : Counters.Classes;
        IReadOnlyList<TaskState> states = q.States.Count > 0 ? q.States : Enum.GetValues<TaskState>();
        return classes.Sum(c => states.Sum(s => Counters.Get(c, s)));
    }

    /// <summary>
    /// The query's filter as SQL on <c>tasks t</c>, with its parameters bound on <paramref name="cmd"/>: " AND …", or
    /// empty for none. It names both columns of the (class, state) index as IN lists, the classes left open being every
    /// class the store holds and the states every state: SQLite then walks each (class, state) range of the index in
    /// seq order from the cursor and stops each once the page is full, so a filter costs a page whatever its size,
    /// with no index kept for it alone. (A class is in the counters from its first task's commit on.)
    /// </summary>
    private string Filter(SqliteCommand cmd, TaskQuery q)
    {
        if (!q.Filtered) return "";
        var classes = q.Classes.Count > 0 ? q.Classes : Counters.Classes.ToList();
        var names = new List<string>(classes.Count);
        for (int i = 0; i < classes.Count; i++)
        {
            names.Add("$c" + i);
            cmd.Parameters.AddWithValue("$c" + i, classes[i]);
        }
        IReadOnlyList<TaskState> states = q.States.Count > 0 ? q.States : Enum.GetValues<TaskState>();
        return $" AND t.class IN ({string.Join(',', names)}) AND t.state IN ({string.Join(',', states.Select(s => (int)s))})";
    }

    /// <summary>The rows past the query's cursor, in its order, as SQL on <paramref name="seq"/>: " AND …" or empty.</summary>
    private static string PastCursor(SqliteCommand cmd, TaskQuery q, string seq)
    {
        if (q.Cursor is not { } c) return "";
        cmd.Parameters.AddWithValue("$cursor", c);
        return q.Descending ? $" AND {seq} < $cursor" : $" AND {seq} > $cursor";
    }

    private static string Order(TaskQuery q, string seq) => $"ORDER BY {seq} {(q.Descending ? "DESC" : "ASC")}";

    /// <summary><see cref="TaskListPlan.Scan"/>: the filter's index (or the table) in seq order, one page.</summary>
    private List<long> ScanSeqs(SqliteConnection conn, TaskQuery q)
    {
        using var cmd = conn.CreateCommand();
        cmd.CommandText = $"SELECT t.seq FROM tasks t WHERE 1{Filter(cmd, q)}{PastCursor(cmd, q, "t.seq")} {Order(q, "t.seq")} LIMIT $limit";
        cmd.Parameters.AddWithValue("$limit", q.Limit);
        return ReadSeqs(cmd, []);
    }

    /// <summary><see cref="TaskListPlan.FilterThenMatch"/>: the seqs of a small filter past the cursor, in order, from
    /// its index; then their names and command lines (as the search index holds them) a chunk at a time, matched here
    /// until the page is full, so a text most of them hold reads one chunk.</summary>
    private List<long> FilterThenMatchSeqs(SqliteConnection conn, TaskQuery q)
    {
        List<long> filtered;
        using (var cmd = conn.CreateCommand())
        {
            cmd.CommandText = $"SELECT t.seq FROM tasks t WHERE 1{Filter(cmd, q)}{PastCursor(cmd, q, "t.seq")} {Order(q, "t.seq")}";
            filtered = ReadSeqs(cmd, []);
        }
        using var text = conn.CreateCommand();
        text.CommandText = $"SELECT seq, name, {Schema.SearchCommandOf("spec")} FROM tasks WHERE seq IN (SELECT value FROM json_each($seqs))";
        var chunkParam = text.Parameters.Add("$seqs", SqliteType.Text);
        var seqs = new List<long>();
        const int Chunk = 256;
        for (int at = 0; at < filtered.Count && seqs.Count < q.Limit; at += Chunk)
        {
            var chunk = filtered.GetRange(at, Math.Min(Chunk, filtered.Count - at));
            chunkParam.Value = "[" + string.Join(',', chunk) + "]";
            var matching = new HashSet<long>();
            using (var r = text.ExecuteReader())
                while (r.Read())
                    if (TaskQueries.Matches(NStr(r, 1), NStr(r, 2), q.Text!)) matching.Add(r.GetInt64(0));
            seqs.AddRange(chunk.Where(matching.Contains).Take(q.Limit - seqs.Count));
        }
        return seqs;
    }

    /// <summary>
    /// <see cref="TaskListPlan.Search"/>: the search index's matches in seq order (it holds them so, and takes a range of
    /// seqs), each checked against the filter by its row (CROSS JOIN keeps the index outermost); under a filter one
    /// window of seqs at a time as <see cref="SearchWalk"/> sizes them, without one all at once. The next cursor is the
    /// last task's when the page is full, else where the walk stopped, or none once every task was walked.
    /// </summary>
    private (List<long>, long?) SearchSeqs(SqliteConnection conn, TaskQuery q)
    {
        long last;
        using (var max = conn.CreateCommand())
        {
            max.CommandText = "SELECT coalesce(max(seq), 0) FROM tasks";
            last = (long)max.ExecuteScalar()!;
        }
        // The walk's edge, exclusive: the side of the next window nearer the cursor.
        long edge = q.Descending ? Math.Min(q.Cursor ?? long.MaxValue, last + 1) : q.Cursor ?? 0;
        bool Walked() => q.Descending ? edge <= 1 : edge >= last;
        using var cmd = conn.CreateCommand();
        var join = q.Filtered ? "CROSS JOIN tasks t ON t.seq = tasks_search.rowid" : "";
        var window = q.Descending ? "tasks_search.rowid < $edge AND tasks_search.rowid >= $far" : "tasks_search.rowid > $edge AND tasks_search.rowid <= $far";
        cmd.CommandText = $"SELECT tasks_search.rowid FROM tasks_search {join} WHERE tasks_search MATCH $match AND {window}{Filter(cmd, q)} " +
            $"{Order(q, "tasks_search.rowid")} LIMIT $limit";
        cmd.Parameters.AddWithValue("$match", SearchPhrase(q.Text!));
        var (edgeParam, farParam, limitParam) = (cmd.Parameters.Add("$edge", SqliteType.Integer), cmd.Parameters.Add("$far", SqliteType.Integer),
            cmd.Parameters.Add("$limit", SqliteType.Integer));
        var seqs = new List<long>();
        var walk = Stopwatch.StartNew();
        for (long span = q.Filtered ? SearchWalk.FirstSpan : long.MaxValue; span > 0 && !Walked();)
        {
            long far = q.Descending ? Math.Max(1, edge - span) : edge + Math.Min(span, last - edge);
            (edgeParam.Value, farParam.Value, limitParam.Value) = (edge, far, q.Limit - seqs.Count);
            var before = walk.Elapsed;
            ReadSeqs(cmd, seqs);
            if (seqs.Count == q.Limit) return (seqs, seqs[^1]);
            edge = far;
            span = SearchWalk.NextSpan(span, walk.Elapsed - before, walk.Elapsed);
        }
        return (seqs, Walked() ? null : edge);
    }

    private static List<long> ReadSeqs(SqliteCommand cmd, List<long> seqs)
    {
        using var r = cmd.ExecuteReader();
        while (r.Read()) seqs.Add(r.GetInt64(0));
        return seqs;
    }

    /// <summary>A search text as one FTS5 phrase: in double quotes, a quote inside doubled. Nothing in it is then
    /// syntax (no operator, column filter, prefix star or NEAR): the whole text is matched as written.</summary>
    internal static string SearchPhrase(string text) => "\"" + text.Replace("\"", "\"\"") + "\"";

    private static List<TaskRecord> WithAttempts(SqliteConnection conn, List<TaskRecord> list)
    {
        if (list.Count == 0) return list;
        // The page's attempts in one query, not one per task.
        using var ac = conn.CreateCommand();
        var names = new List<string>(list.Count);
        for (int i = 0; i < list.Count; i++)
        {
            names.Add("$i" + i);
            ac.Parameters.AddWithValue("$i" + i, list[i].Id.Value);
        }
        ac.CommandText = $"SELECT task_id, {AttemptColumns} FROM attempts WHERE task_id IN ({string.Join(',', names)}) ORDER BY task_id, n";
        var byTask = new Dictionary<string, List<AttemptRecord>>(StringComparer.Ordinal);
        using (var r = ac.ExecuteReader())
            while (r.Read())
            {
                var id = r.GetString(0);
                if (!byTask.TryGetValue(id, out var l)) byTask[id] = l = [];
                l.Add(ReadAttempt(r, 1));
            }
        return list.Select(t => byTask.TryGetValue(t.Id.Value, out var a) ? t with { AttemptList = a } : t).ToList();
    }

    /// <summary>
    /// Every task that is not finished, oldest first: what the engine rebuilds its state from after a start.
    /// Streamed, one row at a time, because a restart may read a million of them: nothing is kept per row but the
    /// id, the class is one shared string per class, and a row whose dependencies or resources read the same as the
    /// previous row's (an array, a fan-in) shares its parsed value. The rows are read through SQLite's own column
    /// accessors (the connection's handle) so that a column the engine does not keep is never made a string.
    /// </summary>
    public IEnumerable<ActiveTask> ReadUnfinished()
    {
        using var conn = OpenRead();
        var attempts = new Dictionary<string, AttemptRecord>(StringComparer.Ordinal);
        using (var cmd = conn.CreateCommand())
        {
            // Only running tasks have an attempt that matters for recovery.
            cmd.CommandText = $"""
                SELECT task_id, {AttemptColumns} FROM attempts a
                WHERE EXISTS (SELECT 1 FROM tasks t WHERE t.id = a.task_id AND t.state = 1 AND t.attempts = a.n)
                """;
            using var r = cmd.ExecuteReader();
            while (r.Read()) attempts[r.GetString(0)] = ReadAttempt(r, 1);
        }
        var db = conn.Handle!;
        int rc = raw.sqlite3_prepare_v2(db, "SELECT seq, id, class, state, after, attempts, retries, resources FROM tasks WHERE state < 2 ORDER BY seq", out sqlite3_stmt stmt);
        if (rc != raw.SQLITE_OK) SqliteException.ThrowExceptionForRC(rc, db);
        using (stmt)
        {
            var classes = new List<(byte[] Utf8, string Name)>();
            var after = new SameAsLast<IReadOnlyList<TaskId>>(text => text.Split(',').Select(TaskId.Parse).ToArray());
            var resources = new SameAsLast<ResourceRequest>(ResourceRequest.FromStored);
            while ((rc = raw.sqlite3_step(stmt)) == raw.SQLITE_ROW)
            {
                var id = TaskId.Parse(Encoding.UTF8.GetString(raw.sqlite3_column_blob(stmt, 1)));
                yield return new ActiveTask(
                    raw.sqlite3_column_int64(stmt, 0), id, ClassName(classes, raw.sqlite3_column_blob(stmt, 2)),
                    (TaskState)raw.sqlite3_column_int(stmt, 3),
                    raw.sqlite3_column_type(stmt, 4) == raw.SQLITE_NULL ? [] : after.Get(raw.sqlite3_column_blob(stmt, 4)),
                    raw.sqlite3_column_int(stmt, 5), raw.sqlite3_column_int(stmt, 6), attempts.GetValueOrDefault(id.Value),
                    raw.sqlite3_column_type(stmt, 7) == raw.SQLITE_NULL ? ResourceRequest.None : resources.Get(raw.sqlite3_column_blob(stmt, 7)));
            }
            if (rc != raw.SQLITE_DONE) SqliteException.ThrowExceptionForRC(rc, db);
        }
    }

    /// <summary>One string per class name, however many rows carry it.</summary>
    private static string ClassName(List<(byte[] Utf8, string Name)> seen, ReadOnlySpan<byte> utf8)
    {
        foreach (var (bytes, name) in seen)
            if (utf8.SequenceEqual(bytes)) return name;
        var added = Encoding.UTF8.GetString(utf8);
        seen.Add((utf8.ToArray(), added));
        return added;
    }

    /// <summary>Parses a column's text, or hands back the previous row's value when the text is the same.</summary>
    private sealed class SameAsLast<T>(Func<string, T> parse)
    {
        private byte[]? _last;
        private T? _value;

        public T Get(ReadOnlySpan<byte> utf8)
        {
            if (_last is not null && utf8.SequenceEqual(_last)) return _value!;
            _value = parse(Encoding.UTF8.GetString(utf8));
            _last = utf8.ToArray();
            return _value;
        }
    }

    /// <summary>The finished tasks whose done file is owed: not yet written (a full disk, a kill -9 before the write).
    /// Read from the rows owed alone, never from every finished task.</summary>
    public IReadOnlyList<TaskId> OwedDoneFiles() => Guarded(ReadOwedDoneFiles);

    private IReadOnlyList<TaskId> ReadOwedDoneFiles()
    {
        using var conn = OpenRead();
        using var cmd = conn.CreateCommand();
        // A file whose artifacts are still owed is written once they are recorded (OwedArtifacts), not before.
        cmd.CommandText = """
            SELECT o.task_id FROM done_owed o JOIN tasks t ON t.id = o.task_id
            WHERE t.state >= 2 AND NOT EXISTS (SELECT 1 FROM artifacts_owed a WHERE a.task_id = o.task_id)
            """;
        using var r = cmd.ExecuteReader();
        var list = new List<TaskId>();
        while (r.Read()) list.Add(TaskId.Parse(r.GetString(0)));
        return list;
    }

    /// <summary>The ends whose declared artifacts are not hashed yet: the task, its attempt, the directory its relative
    /// paths start from. Read from the rows owed alone.</summary>
    public IReadOnlyList<(TaskId Id, int Attempt, string BaseDir)> OwedArtifacts() => Guarded(() =>
    {
        using var conn = OpenRead();
        using var cmd = conn.CreateCommand();
        cmd.CommandText = "SELECT task_id, attempt, base_dir FROM artifacts_owed";
        using var r = cmd.ExecuteReader();
        var list = new List<(TaskId, int, string)>();
        while (r.Read()) list.Add((TaskId.Parse(r.GetString(0)), r.GetInt32(1), r.GetString(2)));
        return (IReadOnlyList<(TaskId, int, string)>)list;
    });

    /// <summary>Whether the task's artifacts are owed (its done file waits for them).</summary>
    public bool ArtifactsOwed(TaskId id) => Guarded(() =>
    {
        using var conn = OpenRead();
        using var cmd = conn.CreateCommand();
        cmd.CommandText = "SELECT 1 FROM artifacts_owed WHERE task_id = $id";
        cmd.Parameters.AddWithValue("$id", id.Value);
        return cmd.ExecuteScalar() is not null;
    });

    /// <summary>The task a dropped file was stored as, by the file's identity (<see cref="InsertAsync"/>'s intake key).</summary>
    public TaskId? IntakeTaskOf(string key)
    {
        using var conn = OpenRead();
        using var cmd = conn.CreateCommand();
        cmd.CommandText = "SELECT task_id FROM intake WHERE key = $key";
        cmd.Parameters.AddWithValue("$key", key);
        return cmd.ExecuteScalar() is string id ? TaskId.Parse(id) : null;
    }

    /// <summary>Every stored plan, by name.</summary>
    public IReadOnlyList<PlanRow> LoadPlans()
    {
        using var conn = OpenRead();
        using var cmd = conn.CreateCommand();
        cmd.CommandText = "SELECT name, path, base_dir, text, status, state, updated_at FROM plans ORDER BY name";
        using var r = cmd.ExecuteReader();
        var list = new List<PlanRow>();
        while (r.Read())
            list.Add(new PlanRow(r.GetString(0), NStr(r, 1), NStr(r, 2), r.GetString(3), r.GetString(4), r.GetString(5), r.GetInt64(6)));
        return list;
    }

    /// <summary>What the engine needs to start a task: its spec, attempts so far and when it was submitted.</summary>
    public (TaskSpec Spec, int Attempts, long SubmittedAt)? SpecOf(TaskId id) => Guarded(() => ReadSpec(id));

    private (TaskSpec Spec, int Attempts, long SubmittedAt)? ReadSpec(TaskId id)
    {
        using var conn = OpenRead();
        using var cmd = conn.CreateCommand();
        cmd.CommandText = "SELECT spec, attempts, submitted_at FROM tasks WHERE id = $id";
        cmd.Parameters.AddWithValue("$id", id.Value);
        using var r = cmd.ExecuteReader();
        return r.Read() ? (SpecJson.Deserialize(r.GetString(0)), r.GetInt32(1), r.GetInt64(2)) : null;
    }

    private static IReadOnlyList<AttemptRecord> Attempts(SqliteConnection conn, TaskId id)
    {
        using var cmd = conn.CreateCommand();
        cmd.CommandText = $"SELECT {AttemptColumns} FROM attempts WHERE task_id = $id ORDER BY n";
        cmd.Parameters.AddWithValue("$id", id.Value);
        using var r = cmd.ExecuteReader();
        var list = new List<AttemptRecord>();
        while (r.Read()) list.Add(ReadAttempt(r, 0));
        return list;
    }

    private static AttemptRecord ReadAttempt(SqliteDataReader r, int o) => new(
        r.GetInt32(o), r.GetInt64(o + 1), NLong(r, o + 2), NInt(r, o + 3), NInt(r, o + 4), NInt(r, o + 5), NLong(r, o + 6),
        NStr(r, o + 7), AttemptOutcomes.Parse(NStr(r, o + 8)), NStr(r, o + 9), NStr(r, o + 10), NStr(r, o + 11), NLong(r, o + 12), NLong(r, o + 13), NLong(r, o + 14), NLong(r, o + 15));

    private static TaskRecord ReadTask(SqliteDataReader r, IReadOnlyList<AttemptRecord> attempts) => new(
        r.GetInt64(0), TaskId.Parse(r.GetString(1)), r.GetString(2), NStr(r, 3), (TaskState)r.GetInt32(4), NStr(r, 5),
        SpecJson.Deserialize(r.GetString(6)), r.GetString(7), r.GetInt32(8), r.GetInt64(9), NLong(r, 10), NLong(r, 11),
        NInt(r, 12), NInt(r, 13), NStr(r, 14), attempts, NStr(r, 15), NStr(r, 16), NStr(r, 17));

    private static string? NStr(SqliteDataReader r, int i) => r.IsDBNull(i) ? null : r.GetString(i);
    private static long? NLong(SqliteDataReader r, int i) => r.IsDBNull(i) ? null : r.GetInt64(i);
    private static int? NInt(SqliteDataReader r, int i) => r.IsDBNull(i) ? null : r.GetInt32(i);

    private static void Pragma(SqliteConnection c, string sql)
    {
        using var cmd = c.CreateCommand();
        cmd.CommandText = sql;
        cmd.ExecuteNonQuery();
    }

    private static object? Scalar(SqliteConnection c, string sql)
    {
        using var cmd = c.CreateCommand();
        cmd.CommandText = sql;
        return cmd.ExecuteScalar();
    }

    // ---------- health ----------

    private volatile string? _writeFailure;
    private volatile string? _corruption;
    private volatile string? _integrity;

    /// <summary>Why the store cannot be trusted with new work: it failed its integrity check, or a read or write found
    /// the file corrupt (SQLITE_CORRUPT, SQLITE_NOTADB). Kept until a restart: a corrupt file does not heal. Submissions
    /// are refused (503) meanwhile, rather than acknowledged into a store that answers 500 to reads.</summary>
    public string? Corruption => _integrity ?? _corruption;

    /// <summary>Why <c>/readyz</c> says not ready: <see cref="Corruption"/>, or the writer's last commit failed (a full
    /// disk: SQLITE_FULL) and none has succeeded since. Null when healthy.</summary>
    public string? Unhealthy => Corruption ?? _writeFailure;

    /// <summary><c>PRAGMA quick_check</c> on a thread of its own, the result kept in <see cref="Corruption"/>. Started
    /// by the daemon once it is serving: on a large store the check reads every page, and a restart should not wait.</summary>
    public void StartIntegrityCheck()
    {
        new Thread(() =>
        {
            try
            {
                using var conn = OpenRead();
                using var cmd = conn.CreateCommand();
                cmd.CommandText = "PRAGMA quick_check(5)";
                cmd.CommandTimeout = 0;
                var found = new List<string>();
                using (var r = cmd.ExecuteReader()) while (r.Read()) found.Add(r.GetString(0));
                if (found is not ["ok"]) _integrity = $"the store failed its integrity check (PRAGMA quick_check): {Clip(string.Join("; ", found))}";
            }
            catch (SqliteException e) { _integrity = $"the store failed its integrity check (PRAGMA quick_check): {e.Message}"; }
            catch (ObjectDisposedException) { }
        }) { IsBackground = true, Name = "sparky-store-check", Priority = ThreadPriority.BelowNormal }.Start();
    }

    /// <summary>Keeps a corruption found by any read or write (the API's, the engine's) in <see cref="Corruption"/>.</summary>
    public void NoteFailure(Exception e)
    {
        if (e is SqliteException { SqliteErrorCode: 11 or 26 } s) _corruption ??= $"the store's file is corrupt: {s.Message}";
    }

    private static string Clip(string s)
    {
        s = s.ReplaceLineEndings("; ");
        return s.Length <= 300 ? s : s[..300] + "…";
    }

    private T Guarded<T>(Func<T> read)
    {
        Interlocked.Increment(ref _reads);
        try { return read(); }
        catch (SqliteException e) when (Noted(e)) { throw; }

        bool Noted(SqliteException e) { NoteFailure(e); return false; }
    }

    public async ValueTask DisposeAsync()
    {
        _writes.Writer.TryComplete();
        _writerWake.Set();
        await Task.Run(_writerThread.Join).ConfigureAwait(false);
        _writer.Dispose();
        SqliteConnection.ClearAllPools();
    }
}
