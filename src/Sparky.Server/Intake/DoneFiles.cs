using System.Collections.Concurrent;
using System.Text;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Sparky.Core.Events;
using Sparky.Core.Tasks;
using Sparky.Server.Daemon;
using Sparky.Server.Events;
using Sparky.Server.Http;

namespace Sparky.Server.Intake;

/// <summary>
/// Writes <c>&lt;queue_dir&gt;/done/&lt;id&gt;.json</c> for each finished task that asked for one
/// (<see cref="TaskSpec.DoneFile"/>), off the engine's loop. The store owes the file from the end's own commit
/// (<see cref="Sparky.Store.Sqlite.SqliteStore.OwedDoneFiles"/>) until it is written, so nothing is lost to a full disk
/// (a failed write is tried again, with backoff, until it succeeds) or to a kill -9 (a start writes every file owed).
/// A file is written once: a start does not write again what a producer has already taken away. A task that declared
/// output artifacts gets its file once they are hashed and recorded (<see cref="Outputs.ArtifactRecorder"/>), so the file
/// holds their sizes and checksums.
/// </summary>
internal sealed class DoneFiles : IDisposable
{
    /// <summary>Quotes, '+' and non-ASCII text as themselves (as the replaced orchestrator wrote them), not as \u escapes:
    /// the file is for people and scripts as much as for parsers. Still valid JSON.</summary>
    private static readonly System.Text.Json.JsonWriterOptions Readable = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    private static readonly TimeSpan FirstBackoff = TimeSpan.FromMilliseconds(100), MaxBackoff = TimeSpan.FromSeconds(5);

    private readonly SparkyDaemon _d;
    private readonly ILogger _log;
    private readonly string _dir;
    private readonly EventHub.Subscription _sub;
    private readonly Channel<TaskId> _ids = Channel.CreateUnbounded<TaskId>(new UnboundedChannelOptions { SingleReader = true });
    /// <summary>The ids queued or being written: an end announced while the start's list still holds the id is one write.</summary>
    private readonly ConcurrentDictionary<string, byte> _queued = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _pump, _worker;

    public DoneFiles(SparkyDaemon d)
    {
        _d = d;
        _log = d.Logs.CreateLogger<DoneFiles>();
        _dir = Path.Combine(Path.GetFullPath(d.Config.QueueDir), "done");
        Directory.CreateDirectory(_dir);
        // A task with declared artifacts is announced by task.artifacts once they are recorded, not by task.finished.
        _sub = d.Events.Subscribe(capacity: 1_000_000,
            filter: e => e.Topic is SparkyEvent.TaskFinished or SparkyEvent.TaskArtifacts && e.Body["done_file"] is not null);
        _pump = Task.Run(async () =>
        {
            await foreach (var e in _sub.Reader.ReadAllAsync())
                if (TaskId.TryParse((string?)e.Body["id"], out var id)) Enqueue(id);
        });
        // What a previous run owed and did not write (it died, or the disk was full until it stopped).
        // A store that cannot be read (corrupt pages: /readyz says so) must not keep the daemon from starting; the
        // files stay owed in it, for the next start.
        try { foreach (var id in d.Store.OwedDoneFiles()) Enqueue(id); }
        catch (Microsoft.Data.Sqlite.SqliteException e) { IntakeLog.DoneFilesOwedUnreadable(_log, e.Message); }
        _worker = Task.Run(Work);
    }

    private void Enqueue(TaskId id)
    {
        if (_queued.TryAdd(id.Value, 0)) _ids.Writer.TryWrite(id);
    }

    private async Task Work()
    {
        var backoff = FirstBackoff;
        DateTime? failingSince = null, lastLogged = null;
        await foreach (var id in _ids.Reader.ReadAllAsync())
        {
            string? error;
            try { error = Write(id); }
            catch (Exception e) { error = e.Message; }
            if (error is null)
            {
                if (failingSince is { } since)
                    IntakeLog.DoneFilesWrittenAgain(_log, (long)Math.Round((DateTime.UtcNow - since).TotalSeconds));
                failingSince = lastLogged = null;
                backoff = FirstBackoff;
                continue;
            }
            // The causes are the file system's (full, read-only, done/ gone), not the file's: every file waits, and
            // the writer tries again after a pause that grows to 5 s, this file behind those waiting. One line a minute at most.
            failingSince ??= DateTime.UtcNow;
            if (lastLogged is null || DateTime.UtcNow - lastLogged > TimeSpan.FromMinutes(1))
            {
                IntakeLog.DoneFileFailing(_log, id.Value, error, _queued.Count);
                lastLogged = DateTime.UtcNow;
            }
            try { await Task.Delay(backoff, _stop.Token); }
            catch (OperationCanceledException) { return; }
            backoff = TimeSpan.FromTicks(Math.Min(MaxBackoff.Ticks, backoff.Ticks * 2));
            _ids.Writer.TryWrite(id); // still in _queued
        }
    }

    /// <summary>Writes the file from the stored task, then tells the store it is paid. Null once done (or nothing to do).</summary>
    private string? Write(TaskId id)
    {
        var t = _d.Store.Get(id);
        // Not finished (a replay queued it again): its next end owes the file again.
        if (t is null || !t.State.IsTerminal())
        {
            _queued.TryRemove(id.Value, out _);
            return null;
        }
        // Artifacts are owed only where the end recorded some (pending): most tasks declare none and cost no look-up.
        if (t.ArtifactsJson is not null && _d.Store.ArtifactsOwed(id))
        {
            // Written once its artifacts are recorded: task.artifacts queues it again. If that came while this id was
            // still queued here, it was dropped as a duplicate: look once more after letting go of the id.
            _queued.TryRemove(id.Value, out _);
            if (!_d.Store.ArtifactsOwed(id)) Enqueue(id);
            return null;
        }
        Directory.CreateDirectory(_dir); // deleted from under the daemon: made again
        var tmp = Path.Combine(_dir, "." + id.Value + ".json.tmp");
        File.Delete(tmp); // one a kill -9 left, whatever its mode: the file is created afresh with the mode below
        // The envelope holds the task's environment: the owner's alone, from the moment the file exists.
        var options = new FileStreamOptions
        {
            Mode = FileMode.CreateNew, Access = FileAccess.Write, Share = FileShare.None,
            UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
        };
        try
        {
            using (var f = new FileStream(tmp, options))
            {
                using (var w = new System.Text.Json.Utf8JsonWriter(f, Readable)) TaskJson.DoneFile(t).WriteTo(w);
                f.Flush(flushToDisk: true); // its content on disk before a name points at it
            }
            File.Move(tmp, Path.Combine(_dir, id.Value + ".json"), overwrite: true);
            // And the name, before the store forgets the file is owed: that removal reaches the disk with the next
            // submission's fsync, and a power cut must not leave it there with the file lost (a producer waiting for ever).
            Sparky.Execution.Host.DurableDirectory.Sync(_dir);
        }
        catch
        {
            try { File.Delete(tmp); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            throw;
        }
        _queued.TryRemove(id.Value, out _);
        _ = _d.Store.DoneFileWrittenAsync(id);
        return null;
    }

    public void Dispose()
    {
        _stop.Cancel();
        _sub.Dispose();
        _ids.Writer.TryComplete();
        try { Task.WaitAll([_pump, _worker], TimeSpan.FromSeconds(5)); }
        catch (AggregateException e) { IntakeLog.DoneFilesStopped(_log, e.InnerException?.Message); }
    }
}
