using System.Collections.Concurrent;
using System.Text.Json.Nodes;
using Sparky.Core.Events;
using Sparky.Core.Tasks;
using Sparky.Server.Events;
using Sparky.Store.Sqlite;

namespace Sparky.Server.Outputs;

/// <summary>One end whose declared outputs are owed: what to hash, and from which directory relative paths start.</summary>
public sealed record ArtifactJob(TaskId Id, int Attempt, string Class, string BaseDir, IReadOnlyList<DeclaredOutput> Outputs, bool DoneFile);

/// <summary>
/// Hashes the declared output artifacts of ended tasks (whatever their outcome) off the engine's loop, and records them. The engine commits
/// a task's end at once, with its artifacts <c>pending</c> and owed in the same commit (<c>artifacts_owed</c>); a
/// recorder thread hashes the files, commits them (which pays the debt), then publishes <c>task.artifacts</c>, which
/// the done-file writer waits for. A file of 10 GB takes its thread some seconds and holds up nothing else: other
/// tasks start and end meanwhile, and a second thread keeps small outputs flowing past a large one. After a kill -9
/// between the end and the hash, the next start hashes again what is owed (<see cref="ResumeOwed"/>).
/// </summary>
internal sealed class ArtifactRecorder : IDisposable
{
    private const int Threads = 2;

    private readonly SqliteStore _store;
    private readonly EventHub _events;
    private readonly TimeProvider _clock;
    private readonly Microsoft.Extensions.Logging.ILogger _log;
    private readonly BlockingCollection<ArtifactJob> _jobs = new();
    /// <summary>Ends queued or being hashed: one owed at start and announced again by recovery is hashed once.</summary>
    private readonly ConcurrentDictionary<(string, int), byte> _queued = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly Thread[] _threads;

    public ArtifactRecorder(SqliteStore store, EventHub events, TimeProvider clock, Microsoft.Extensions.Logging.ILogger<ArtifactRecorder> log)
    {
        _log = log;
        _store = store;
        _events = events;
        _clock = clock;
        _threads = Enumerable.Range(0, Threads)
            .Select(i => new Thread(Work) { IsBackground = true, Name = $"sparky-artifacts-{i}", Priority = ThreadPriority.BelowNormal })
            .ToArray();
        foreach (var t in _threads) t.Start();
    }

    /// <summary>Thread-safe; an end already queued is not queued twice.</summary>
    public void Enqueue(ArtifactJob job)
    {
        if (!_queued.TryAdd((job.Id.Value, job.Attempt), 0)) return;
        try { _jobs.Add(job); }
        catch (InvalidOperationException) { } // stopping: it stays owed in the store, for the next start
    }

    /// <summary>What a previous run owed and did not record (it died, or stopped, while hashing): hashed again.</summary>
    public void ResumeOwed()
    {
        try
        {
            foreach (var (id, attempt, baseDir) in _store.OwedArtifacts())
            {
                var spec = _store.SpecOf(id)?.Spec;
                if (spec is null) continue;
                Enqueue(new ArtifactJob(id, attempt, spec.Class, baseDir, spec.Outputs ?? [], spec.DoneFile));
            }
        }
        catch (Microsoft.Data.Sqlite.SqliteException e)
        {
            // A store that cannot be read (/readyz says so) must not keep the daemon from starting; they stay owed.
            OutputsLog.OwedUnreadable(_log, e.Message);
        }
    }

    private void Work()
    {
        try
        {
            foreach (var job in _jobs.GetConsumingEnumerable(_stop.Token))
            {
                try { Record(job); }
                catch (OperationCanceledException) { return; }
                catch (Exception e)
                {
                    // Still owed in the store: the next start tries again.
                    OutputsLog.RecordFailed(_log, job.Id.Value, e.GetType().Name, e.Message);
                }
                finally { _queued.TryRemove((job.Id.Value, job.Attempt), out _); }
            }
        }
        catch (OperationCanceledException) { }
    }

    private void Record(ArtifactJob job)
    {
        var entries = job.Outputs.Select(o => OutputHasher.Hash(o, job.BaseDir, _stop.Token)).ToList();
        var artifacts = ArtifactsJson.RecordedOf(entries, _clock.GetUtcNow());
        // Announced once committed, as an end is: whoever reacts (the done-file writer, a client) reads them stored.
        var result = _store.ArtifactsRecordedAsync(job.Id, job.Attempt, artifacts.ToJsonString()).GetAwaiter().GetResult();
        if (result.Status != WriteStatus.Ok) return; // queued again since (a replay), or the store is closing
        var body = new JsonObject { ["id"] = job.Id.Value, ["class"] = job.Class, ["attempt"] = job.Attempt, ["artifacts"] = artifacts };
        if (job.DoneFile) body["done_file"] = true;
        _events.Publish(new SparkyEvent(SparkyEvent.TaskArtifacts, _clock.GetUtcNow().ToUnixTimeMilliseconds(), body));
    }

    public void Dispose()
    {
        _stop.Cancel();
        _jobs.CompleteAdding();
        foreach (var t in _threads) t.Join(TimeSpan.FromSeconds(5));
    }
}
