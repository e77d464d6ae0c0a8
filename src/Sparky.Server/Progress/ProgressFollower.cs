using System.Collections.Concurrent;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using Sparky.Core.Events;
using Sparky.Core.Tasks;
using Sparky.Server.Daemon;
using Sparky.Server.Events;
using Sparky.Server.Executors;
using Sparky.Store.Sqlite;

namespace Sparky.Server.Progress;

/// <summary>What the engine tells of its attempts as they start and end, on its loop: a queue push each, nothing more.</summary>
public interface IAttemptFollower
{
    /// <summary>Attempt <paramref name="attempt"/> of a task is under way (started, or followed again after a restart),
    /// writing its stdout to <paramref name="stdoutPath"/>.</summary>
    void Began(TaskId id, int attempt, string cls, string stdoutPath);
    /// <summary>The attempt ended (or was taken back before it ran).</summary>
    void Ended(TaskId id, int attempt);

    /// <summary>Follows nothing: an engine without a follower (tests of one part).</summary>
    public static readonly IAttemptFollower None = new Nobody();

    private sealed class Nobody : IAttemptFollower
    {
        public void Began(TaskId id, int attempt, string cls, string stdoutPath) { }
        public void Ended(TaskId id, int attempt) { }
    }
}

/// <summary>
/// Reads what each running attempt's stdout gained, every <see cref="Interval"/>, on a thread of its own, and keeps its
/// task's last <see cref="TaskProgress"/> (SPEC §3): announced as <c>task.progress</c> and stored at the pace of
/// <see cref="ProgressPace"/>, and shown by the API over the stored value until the store has it. Tasks write their
/// output straight to their log files, so this reads those files: a local attempt's, a Slurm job's, and a worker's
/// where its log is on this file system (a pilot, a worker on this host); an attempt whose file is not here is a failed
/// <c>stat</c> per look.
/// <para>Cost: the engine's loop pushes two notes per attempt (about 0.1 µs each). Here, per attempt and look, a
/// <c>stat</c>, and where the file grew an open, a read of the new bytes (at most <see cref="MaxBytesPerLook"/>; more
/// than <see cref="MaxBacklog"/> behind, only the newest are read) and one vectorised search for the marker; lines are
/// parsed only where a marker starts one. An attempt that ends between two looks costs one such look. Nothing runs while nothing runs.</para>
/// </summary>
internal sealed class ProgressFollower : IAttemptFollower, IDisposable
{
    public static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(250);
    /// <summary>Read per attempt per look, at most; the rest is read at the next look.</summary>
    public const int MaxBytesPerLook = 4 << 20;
    /// <summary>Further behind than this (a task writing tens of MB a second), only the newest output is read.</summary>
    public const long MaxBacklog = 64 << 20;

    private abstract record Note(TaskId Id, int Attempt);
    private sealed record BeganNote(TaskId Id, int Attempt, string Class, string Path) : Note(Id, Attempt);
    private sealed record EndedNote(TaskId Id, int Attempt) : Note(Id, Attempt);

    /// <summary>A task being followed: its current attempt's file and how far it is read, and its progress's pace.</summary>
    private sealed class Followed(string cls)
    {
        public string Class = cls;
        public int Attempt;
        public string Path = "";
        public long Offset;
        public bool Ended;
        public readonly ProgressScanner Scanner = new();
        public readonly ProgressPace Pace = new();
        /// <summary>The latest progress as its JSON (<see cref="TaskProgress.ToJson"/>), with the time it was seen.</summary>
        public string? Json;
    }

    private readonly SqliteStore _store;
    private readonly EventHub _events;
    private readonly TimeProvider _clock;
    private readonly ILogger _log;
    private readonly ConcurrentQueue<Note> _notes = new();
    /// <summary>The follower's thread only.</summary>
    private readonly Dictionary<TaskId, Followed> _followed = new();
    /// <summary>Each task's latest progress not yet committed: what the API shows instead of the stored one.</summary>
    private readonly ConcurrentDictionary<TaskId, string> _unstored = new();
    private readonly byte[] _buffer = new byte[64 * 1024];
    private readonly AutoResetEvent _wake = new(false);
    private readonly Thread _thread;
    private volatile bool _stopping;
    /// <summary>1 while the thread waits with nothing to follow: only then does a start wake it.</summary>
    private int _idle;

    public ProgressFollower(SqliteStore store, EventHub events, TimeProvider clock, ILogger<ProgressFollower> log)
    {
        _store = store;
        _events = events;
        _clock = clock;
        _log = log;
        _thread = new Thread(Run) { IsBackground = true, Name = "sparky-progress" };
        _thread.Start();
    }

    public void Began(TaskId id, int attempt, string cls, string stdoutPath)
    {
        _notes.Enqueue(new BeganNote(id, attempt, cls, stdoutPath));
        if (Volatile.Read(ref _idle) == 1 && Interlocked.Exchange(ref _idle, 0) == 1) _wake.Set();
    }

    public void Ended(TaskId id, int attempt) => _notes.Enqueue(new EndedNote(id, attempt));

    /// <summary>A task's latest progress JSON that the store does not have yet, or null (then the stored one is the
    /// latest), for a record whose stored state is <paramref name="stored"/>. Any thread.
    /// It is read from a running attempt's output, which can be ahead of the store: an attempt's start is committed a
    /// moment after its process starts (nobody waits on it), so under load a task can print progress while the store
    /// still has it queued. Shown on such a record, an answer said "queued" with a running attempt's progress, and a
    /// list by state (<c>state=running</c>) left out the task whose progress showed. So a record still queued gets
    /// none; once the start is committed the newer progress shows with it.</summary>
    public string? Unstored(TaskId id, TaskState stored) => stored == TaskState.Queued ? null : _unstored.GetValueOrDefault(id);

    private void Run()
    {
        while (!_stopping)
        {
            if (_followed.Count == 0 && _notes.IsEmpty)
            {
                Interlocked.Exchange(ref _idle, 1); // a full fence: the queue is read after the flag is seen set
                // A note pushed before the flag was set would not wake us: look again.
                if (_notes.IsEmpty && !_stopping) _wake.WaitOne();
                Volatile.Write(ref _idle, 0);
            }
            else _wake.WaitOne(Interval);
            if (_stopping) break;
            try { Look(); }
            catch (Exception e) { ProgressLog.LookFailed(_log, e.GetType().Name, e.Message); }
        }
    }

    /// <summary>One look: the notes since the last, then each attempt's new output, then what is due.</summary>
    private void Look()
    {
        long now = Environment.TickCount64;
        while (_notes.TryDequeue(out var note))
        {
            if (note is BeganNote began) Begin(began);
            else if (_followed.TryGetValue(note.Id, out var ended) && ended.Attempt == note.Attempt && !ended.Ended) End(note.Id, ended);
        }
        List<TaskId>? done = null;
        foreach (var (id, f) in _followed)
        {
            if (!f.Ended) Read(id, f);
            Carry(id, f, now);
            if (f.Ended && f.Pace.Settled) (done ??= []).Add(id);
        }
        if (done is not null) foreach (var id in done) _followed.Remove(id);
    }

    /// <summary>A new attempt: read from its start. Its task keeps its last progress until the attempt prints its own.</summary>
    private void Begin(BeganNote note)
    {
        if (_followed.TryGetValue(note.Id, out var f))
        {
            if (f.Attempt == note.Attempt && !f.Ended) return; // followed already
            if (!f.Ended) End(note.Id, f);
        }
        else _followed[note.Id] = f = new Followed(note.Class);
        (f.Class, f.Attempt, f.Path, f.Offset, f.Ended) = (note.Class, note.Attempt, note.Path, 0, false);
        f.Scanner.Reset();
    }

    /// <summary>The attempt ended: what it wrote last is read, and a last line without its newline counts.</summary>
    private void End(TaskId id, Followed f)
    {
        Read(id, f, final: true);
        if (f.Scanner.Finish() is { } last) Saw(id, f, last);
        f.Ended = true;
    }

    private void Read(TaskId id, Followed f, bool final = false)
    {
        try
        {
            // Not there (not started yet, on another host's file system, removed), or not a plain file: nothing to read.
            if (Posix.LStat(f.Path, out var file) != 0 || file.Kind != Posix.Kind.Regular) return;
            long length = (long)file.Size;
            if (length < f.Offset)
            {
                // Shorter than what was read: truncated or replaced. Read again from its start.
                f.Offset = 0;
                f.Scanner.Reset();
            }
            if (length - f.Offset > MaxBacklog)
            {
                // Far behind: only the newest output counts. From one byte earlier, so a line that starts right there is read.
                f.Offset = length - MaxBytesPerLook - 1;
                f.Scanner.Skip();
            }
            // What the attempt wrote last is read whole at its end.
            if (!final) length = Math.Min(length, f.Offset + MaxBytesPerLook);
            if (length == f.Offset) return;
            // Never through a link: a task cannot make the daemon read another file for it.
            using var handle = Posix.OpenToRead(f.Path, out _);
            if (handle is null) return;
            while (f.Offset < length)
            {
                int n = RandomAccess.Read(handle, _buffer.AsSpan(0, (int)Math.Min(_buffer.Length, length - f.Offset)), f.Offset);
                if (n <= 0) break;
                f.Offset += n;
                if (f.Scanner.Feed(_buffer.AsSpan(0, n)) is { } progress) Saw(id, f, progress);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { } // looked at again next time
    }

    private void Saw(TaskId id, Followed f, TaskProgress progress)
    {
        if (!f.Pace.Saw(progress)) return;
        f.Json = progress.ToJson(_clock.GetUtcNow()).ToJsonString();
        _unstored[id] = f.Json;
    }

    /// <summary>Announces and stores what is due. The API shows the latest value until its write is committed.</summary>
    private void Carry(TaskId id, Followed f, long now, bool stopping = false)
    {
        if (f.Json is not { } json) return;
        if (!stopping && f.Pace.TakeEvent(now))
            _events.Publish(TaskEvents.Of(SparkyEvent.TaskProgress, id, f.Class, _clock.GetUtcNow(), new JsonObject { ["progress"] = JsonNode.Parse(json) }));
        if (f.Pace.TakeStore(now, ended: f.Ended || stopping))
            _store.ProgressAsync(id, json).ContinueWith(_ => _unstored.TryRemove(new KeyValuePair<TaskId, string>(id, json)),
                TaskContinuationOptions.ExecuteSynchronously);
    }

    /// <summary>Stops looking; what is owed to the store is written (before the store closes: the daemon disposes this first).</summary>
    public void Dispose()
    {
        _stopping = true;
        _wake.Set();
        _thread.Join();
        try
        {
            Look(); // the notes and output since the last look
            long now = Environment.TickCount64;
            foreach (var (id, f) in _followed) Carry(id, f, now, stopping: true);
        }
        catch (Exception e) { ProgressLog.LookFailed(_log, e.GetType().Name, e.Message); }
        _wake.Dispose();
    }
}
