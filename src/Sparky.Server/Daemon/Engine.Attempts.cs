using System.Text.Json.Nodes;
using Sparky.Core.Events;
using Sparky.Core.Lifecycle;
using Sparky.Core.Limiting;
using Sparky.Core.Scheduling;
using Sparky.Core.Tasks;
using Sparky.Execution.Processes;
using Sparky.Server.Executors;
using Sparky.Server.Executors.Local;
using Sparky.Server.Outputs;
using Sparky.Store.Sqlite;

namespace Sparky.Server.Daemon;

/// <summary>The engine as the host of attempts, on its loop: it starts what the scheduler lets start through the class's
/// executor, and hands every exit, timer and cancel to the task's <see cref="TaskLife"/>, whose effects (a signal, a
/// store write and its event, a retry, a release) it carries out in order.</summary>
public sealed partial class Engine
{
    /// <summary>Hands <paramref name="e"/> to a task's life and carries out what follows, in order. Returns the last
    /// store write it made (a stop, an end), which a cancel's answer waits for.</summary>
    /// <param name="r">the attempt in flight the event is about, if any</param>
    private Task<WriteResult>? Step(TaskLife life, LifeEvent e, DateTimeOffset now, Attempt? r = null)
    {
        Task<WriteResult>? write = null;
        foreach (var effect in StepEffects(life, e, now)) write = Carry(life, r, effect, now) ?? write;
        return write;
    }

    /// <summary>The effects of an event, for a caller that carries them out itself (a start, with what it knows).</summary>
    private List<Effect> StepEffects(TaskLife life, LifeEvent e, DateTimeOffset now)
    {
        var outbox = new List<Effect>(4);
        life.Handle(e, new LifeContext(now, _random.NextDouble(), _retry, _killGrace), outbox);
        return outbox;
    }

    private Task<WriteResult>? Carry(TaskLife life, Attempt? r, Effect effect, DateTimeOffset now)
    {
        switch (effect)
        {
            case Effect.RecordStop stop:
                // A cancel is answered once its stop is stored: a restart before the end still records it cancelled.
                return _store.AttemptStoppingAsync(life.Id, stop.Attempt, StopReasons.Name(stop.Why), awaited: stop.Why == StopReason.Cancel);
            case Effect.Signal signal when r is not null:
                ExecutorOf(r.Class).Stop(r, signal.Which == StopSignal.Kill ? Signals.Kill : Signals.Term);
                return null;
            case Effect.Release release when r is not null:
                _running.Remove(r.Id);
                Follower.Ended(r.Id, r.N);
                if (r.PayloadFile is { } payloadFile) TryDelete(payloadFile);
                // Its executor lets go of it: nothing it started outlives it, and what it used is known.
                r.Released = ExecutorOf(r.Class).Release(r, release.Failed, r.Reported);
                return Step(life, new LifeEvent.Released(r.Released.Usage.OutOfMemory), now, r);
            case Effect.RecordEnd end when r is not null:
                return RecordEnd(r, end, now);
            case Effect.Requeue requeue:
                _scheduler.RetryAt(life.Id, requeue.At);
                return null;
            case Effect.Finish finish:
                Remember(life.Id, finish.Outcome);
                Apply(_scheduler.Finished(life.Id, finish.Outcome), now);
                return null;
            case Effect.EndUnstarted ended:
                return EndUnstarted(life.Id, ended.Outcome, ended.Reason, now);
        }
        return null;
    }

    /// <summary>A task's life: the one in memory, or a new one from its attempts so far (a task not started by this
    /// daemon, or one ending unstarted).</summary>
    private TaskLife LifeOf(TaskId id, int retries = 0, int attempts = 0)
    {
        if (!_lives.TryGetValue(id, out var life)) _lives[id] = life = new TaskLife(id, retries, attempts);
        return life;
    }

    private void CheckTimers(DateTimeOffset now)
    {
        List<Attempt>? due = null;
        foreach (var r in _running.Values)
            if (r.Life.NextTimer is { } t && t <= now) (due ??= []).Add(r);
        // Collected first: a timer may end an attempt (a worker that never came back), which leaves the table.
        if (due is not null)
            foreach (var r in due) Step(r.Life, LifeEvent.Tick, now, r);
    }

    private void StartWhatFits(DateTimeOffset now)
    {
        foreach (var (id, allocation) in _scheduler.TakeStartable(now))
        {
            try { StartAttempt(id, allocation, now); }
            catch (Exception e)
            {
                // Never strand a slot: whatever went wrong (a full disk, an unreadable store), the attempt
                // ends and is retried by its policy.
                var why = $"{e.GetType().Name}: {e.Message}";
                if (_running.TryGetValue(id, out var r) && r.Place is LocalPlacement { Pid: > 0 }) Ended(r, new ProcessExit(null, null), Reasons.Lost, now);
                else
                {
                    // A recovered task is not in _known: its class and retries come from the store, where it can be read.
                    var spec = _known.TryGetValue(id, out var k) ? k.Spec : StoredSpecOrNull(id);
                    var life = LifeOf(id, spec?.Retries ?? 0);
                    if (life.Phase == LifePhase.Waiting) StepEffects(life, new LifeEvent.Begin(ExecutorOf(spec?.Class ?? Classes.CpuShort).KillsAfterGrace), now);
                    FailStart(r ?? new Attempt
                    {
                        Id = id, Class = spec?.Class ?? Classes.CpuShort, N = life.Attempt, Life = life,
                        StartedAt = now.ToUnixTimeMilliseconds(), Place = Placement.NotStarted,
                    }, why, now);
                }
            }
        }
    }

    private TaskSpec? StoredSpecOrNull(TaskId id)
    {
        try { return _store.SpecOf(id)?.Spec; }
        catch (Exception e) when (e is Microsoft.Data.Sqlite.SqliteException or InvalidOperationException or IOException) { return null; }
    }

    private void StartAttempt(TaskId id, Allocation allocation, DateTimeOffset now)
    {
        TaskSpec spec;
        TaskLife life;
        long submittedAt;
        if (_known.TryGetValue(id, out var known))
        {
            // Submitted to this daemon: no read needed.
            (spec, submittedAt) = (known.Spec, known.SubmittedAt);
            life = LifeOf(id, spec.Retries);
        }
        else if (_store.SpecOf(id) is { } found)
        {
            (spec, var attempts, submittedAt) = found;
            // A life in memory is ahead of the store, which may not have the previous start committed yet.
            life = LifeOf(id, spec.Retries, attempts);
        }
        else
        {
            _scheduler.Finished(id, TaskState.Failed);
            return;
        }
        var executor = ExecutorOf(spec.Class);
        foreach (var effect in StepEffects(life, new LifeEvent.Begin(executor.KillsAfterGrace), now))
        {
            if (effect is not Effect.Start start) continue;
            int n = start.Attempt;
            if (n == 1) Observer.QueueWait(spec.Class, Math.Max(0, now.ToUnixTimeMilliseconds() - submittedAt) / 1000.0);
            // A failure here (a full disk) reaches StartWhatFits, which fails the attempt.
            _taskLogs.EnsureShard(id);
            var run = new Attempt
            {
                Id = id, Class = spec.Class, N = n, Life = life, StartedAt = now.ToUnixTimeMilliseconds(), Place = Placement.NotStarted,
                StdoutPath = LogPath(id, n, stderr: false), DoneFile = spec.DoneFile, Outputs = spec.Outputs, Cwd = spec.Cwd, MemoryMb = spec.MemoryMb,
            };
            // A payload that names work: its class's handler runs it, or it ends here with the reason and what to set.
            if (spec.HandlerPayload is not null && _handlers.HandlerOf(spec.Class) is (null, null))
            {
                run.Outputs = null;
                FailStart(run, Handlers.NoHandlerMessage(spec.Class), now, Reasons.NoHandler, exitCode: null);
                return;
            }
            _running[id] = run;
            Follower.Began(id, n, spec.Class, run.StdoutPath);
            executor.Start(run, spec, allocation, now);
        }
    }

    /// <summary>
    /// An attempt that could not start: recorded as started, then failed at once (exit 127, as a shell
    /// says "not found"), so the attempt history and the counters stay right and the retry policy applies.
    /// Why is written to the attempt's stderr log, where <c>sparky logs --stderr</c> shows it (a spawn failure's
    /// caller has written it there already).
    /// </summary>
    private void FailStart(Attempt run, string why, DateTimeOffset now, string reason = Reasons.SpawnFailed, int? exitCode = 127)
    {
        EngineLog.CannotStart(_log, run.Id.Value, why);
        if (reason != Reasons.SpawnFailed) _taskLogs.Note(run.Id, run.N, why);
        _running[run.Id] = run;
        _ = _store.AttemptStartedAsync(run.Id, run.Class, TaskState.Queued,
            new AttemptRecord(run.N, run.StartedAt, null, null, null, null, null, Environment.MachineName, null, null, null));
        Ended(run, new ProcessExit(exitCode, null), reason, now);
    }

    /// <summary>An attempt ended: its life decides what follows (a success, a retry after a backoff, a failure).</summary>
    /// <param name="reported">What a worker's cgroups said of its attempt (a local attempt's are read here).</param>
    private void Ended(Attempt r, ProcessExit exit, string? reason, DateTimeOffset now, AttemptUsage reported = default)
    {
        r.Reported = reported;
        var exited = new LifeEvent.Exited(new AttemptExit(exit.ExitCode, exit.Signal, reason), UnderShim: (r.Place as LocalPlacement)?.ExitFile is not null);
        Step(r.Life, exited, now, r);
    }

    /// <summary>Stores an attempt's end and announces it: task.retrying, or task.finished with its result and artifacts.</summary>
    private Task<WriteResult> RecordEnd(Attempt r, Effect.RecordEnd end, DateTimeOffset now)
    {
        var (outcome, reason, exit, usage) = (end.Outcome, end.Reason, end.Exit, r.Released.Usage);
        var local = r.Place as LocalPlacement;
        var endedAt = now.ToUnixTimeMilliseconds();
        // The kernel's OOM killer ended it (over its --mem, or the host out of memory): say so where its log is read.
        if (usage.OutOfMemory && reason == Reasons.OutOfMemory) OutOfMemoryNote(r, usage);
        var attempt = new AttemptRecord(r.N, r.StartedAt, endedAt, exit.ExitCode, exit.Signal, local?.Pid, local?.PidStart, null,
            AttemptOutcomes.Of(outcome), reason, local?.ExitFile,
            CpuMs: usage.CpuMicros / 1000, MemPeakBytes: usage.MemoryPeakBytes);
        double seconds = (endedAt - r.StartedAt) / 1000.0;
        Observe(r.Class, seconds, overload: reason is Reasons.Timeout or Reasons.Signal or Reasons.NonZeroExit, now);
        var executor = ExecutorOf(r.Class);

        if (end.RetryAt is { } due)
        {
            var write = _store.AttemptEndedAsync(r.Id, r.Class, attempt, TaskState.Queued, reason, null);
            executor.Settled(r, write, final: false);
            _events.Publish(Event(SparkyEvent.TaskRetrying, r.Id, r.Class, new JsonObject
            {
                ["attempt"] = r.N, ["exit_code"] = exit.ExitCode, ["signal"] = exit.Signal, ["reason"] = reason,
                ["retry_in_ms"] = (long)(due - now).TotalMilliseconds,
            }));
            return write;
        }

        // As the replaced runner: a result only for a run that succeeded.
        var result = outcome != TaskState.Succeeded ? ResultRead.None
            : r.Released.Result ?? ResultLine.Read(r.StdoutPath);
        if (result.Error is { } resultError) EngineLog.NoResult(_log, r.Id.Value, resultError);
        // Outputs are recorded at the task's end whatever its outcome (the rule): a failed training run's
        // checkpoints are worth their checksums too. (The replaced runner recorded them for a success only.)
        var (artifacts, artifactsDir) = r.Outputs is not { Count: > 0 } outputs ? (null, null) : ArtifactsAtEnd(r, outputs, r.Released.OutputsUnseen);
        Observer.TaskCompleted(r.Class, outcome.Name(), seconds);
        var body = new JsonObject
        {
            ["state"] = outcome.Name(), ["exit_code"] = exit.ExitCode, ["signal"] = exit.Signal, ["reason"] = reason,
            ["attempt"] = r.N, ["duration_ms"] = endedAt - r.StartedAt,
        };
        if (result.Error is not null) body["result_error"] = result.Error;
        // The done file waits for the artifacts: it is announced by task.artifacts instead.
        if (artifactsDir is not null) body["artifacts"] = ArtifactsJson.Pending;
        else if (r.DoneFile) body["done_file"] = true;
        if (usage.CpuMicros is { } cpu) body["cpu_ms"] = cpu / 1000;
        if (usage.MemoryPeakBytes is { } peak) body["mem_peak_bytes"] = peak;
        var finished = Event(SparkyEvent.TaskFinished, r.Id, r.Class, body);
        // Announced once committed, from the writer's thread, in commit order: a thread-pool hop per end cost more than the publish.
        var endWrite = _store.AttemptEndedAsync(r.Id, r.Class, attempt, outcome, reason, result.Json, r.DoneFile, result.Error,
            artifacts?.ToJsonString(), artifactsDir, onCommitted: () => _events.Publish(finished));
        executor.Settled(r, endWrite, final: true);
        if (artifactsDir is not null)
        {
            // Hashed once the end is committed, so the recorded artifacts never land before the end they belong to.
            var job = new ArtifactJob(r.Id, r.N, r.Class, artifactsDir, r.Outputs!, r.DoneFile);
            endWrite.ContinueWith(t => { if (t.Result.Status == WriteStatus.Ok) ArtifactsOwed?.Invoke(job); }, TaskContinuationOptions.ExecuteSynchronously);
        }
        return endWrite;
    }

    /// <summary>Why an attempt the OOM killer ended failed, in its stderr log (where <c>sparky logs --stderr</c> shows it) and the daemon's.</summary>
    private void OutOfMemoryNote(Attempt r, AttemptUsage usage)
    {
        long askedMb = r.MemoryMb;
        var why = "killed by the kernel's OOM killer: " + (askedMb > 0 ? $"it went over the {askedMb} MiB it asked for" : "the host ran out of memory")
            + (usage.MemoryPeakBytes is { } peak ? $" (peak {peak >> 20} MiB)" : "");
        EngineLog.OutOfMemory(_log, r.Id.Value, r.N, why);
        if (r.Released.WritesNotes) return; // its executor wrote it in the attempt's log
        _taskLogs.Note(r.Id, r.N, why);
    }

    /// <summary>
    /// An attempt's declared artifacts, as its end records them: pending, with the directory a relative path starts
    /// from (the task's working directory, else the daemon's, as the process or the Slurm job had it), or skipped where
    /// its executor says the daemon cannot see the files (<paramref name="unseen"/>: why).
    /// </summary>
    private static (JsonObject? Artifacts, string? BaseDir) ArtifactsAtEnd(Attempt r, IReadOnlyList<DeclaredOutput> outputs, string? unseen)
    {
        if (unseen is not null) return (ArtifactsJson.SkippedOf(outputs, unseen), null);
        string dir;
        try { dir = Path.GetFullPath(r.Cwd ?? Environment.CurrentDirectory); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException)
        {
            return (ArtifactsJson.SkippedOf(outputs, $"its working directory is not known: {e.Message}"), null);
        }
        return (ArtifactsJson.PendingOf(outputs), dir);
    }

    /// <summary>An attempt ended: its run time and whether it failed feed its class's limiter.</summary>
    private void Observe(string cls, double seconds, bool overload, DateTimeOffset now)
    {
        if (IsWorkerClass(cls)) return; // its workers' slots are its limit
        if (!_limiters.TryGetValue(cls, out var limiter)) return;
        // Still counted as running in the scheduler until the caller releases it: that is "itself included".
        int limit = limiter.OnSample(new LimiterSample(TimeSpan.FromSeconds(seconds), TimeSpan.Zero, overload,
            _scheduler.Running(cls), _scheduler.ReadyCount(cls), now));
        _scheduler.SetLimit(cls, limit);
    }


    Attempt? IAttemptHost.InFlight(TaskId id) => _running.GetValueOrDefault(id);

    void IAttemptHost.Ended(Attempt attempt, ProcessExit exit, string? reason, DateTimeOffset now, AttemptUsage usage) =>
        Ended(attempt, exit, reason, now, usage);

    void IAttemptHost.Report(Attempt attempt, LifeEvent e, DateTimeOffset now) => Step(attempt.Life, e, now, attempt);

    void IAttemptHost.FailStart(Attempt attempt, string why, DateTimeOffset now, string reason, int? exitCode) =>
        FailStart(attempt, why, now, reason, exitCode);
}
