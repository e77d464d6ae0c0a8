using System.Text.Json.Nodes;
using Sparky.Core.Events;
using Sparky.Core.Lifecycle;
using Sparky.Core.Tasks;
using Sparky.Execution.Processes;
using Sparky.Execution.Slurm;
using Sparky.Store.Sqlite;

namespace Sparky.Server.Daemon;

/// <summary>The engine's Slurm half: attempts of Slurm-bound classes go to the <see cref="SlurmExecutor"/>, whose
/// reports come back to the loop as <c>SlurmCmd</c>. Everything here runs on the engine's loop thread.</summary>
public sealed partial class Engine
{
    /// <summary>
    /// Hands the attempt to Slurm: recorded as started now (Sparky's "running" covers Slurm's PENDING), its job
    /// id once sbatch answers. Output goes to the same log files a local attempt writes, so <c>sparky logs</c>
    /// reads them while the job runs (on a shared file system when the job runs on another node).
    /// </summary>
    private void StartOnSlurm(TaskId id, TaskSpec spec, int n, DateTimeOffset now)
    {
        var run = new Running
        {
            Id = id, Class = spec.Class, N = n, Retries = spec.Retries, StartedAt = now.ToUnixTimeMilliseconds(),
            StdoutPath = LogPath(id, n, stderr: false), DoneFile = spec.DoneFile, Place = new SlurmPlacement(null), Outputs = spec.Outputs, Cwd = spec.Cwd,
        };
        if (_slurm is null)
        {
            FailStart(run, $"class {spec.Class} runs on Slurm and sbatch was not found", now);
            return;
        }
        var env = new Dictionary<string, string>(spec.Env, StringComparer.Ordinal) { ["SPARKY_INSTANCE"] = _instance };
        if (spec.ArrayIndex is { } idx) env["SPARKY_ARRAY_INDEX"] = idx.ToString();
        IReadOnlyList<string> argv = spec.CommandLine;
        string? script = null;
        if (spec.HandlerPayload is { } payload)
        {
            // Its class's template (filled from the payload, every value checked again) or its handler, reading the payload.
            var (handler, template) = HandlerOf(spec.Class);
            if (template is not null)
            {
                var (filled, errors) = FillTemplate(spec.Class, template, payload, id.Value);
                if (filled is null)
                {
                    FailStart(run, string.Join("; ", errors), now, Reasons.SubmitFailed, exitCode: null);
                    return;
                }
                script = filled;
            }
            else argv = handler!;
            run.PayloadFile = WritePayloadFile(id, n, payload);
            env["SPARKY_PAYLOAD_FILE"] = run.PayloadFile;
        }
        _running[id] = run;
        var request = new SbatchRequest(
            id.Value, n, argv, env, spec.Cwd, spec.Name, spec.Cpus, spec.MemoryMb, spec.Gpus, spec.TimeoutSeconds,
            _config.SlurmPartition, _config.SlurmAccount, run.StdoutPath, LogPath(id, n, stderr: true),
            [], null, _config.SbatchOptionsFor(spec.Class))
        {
            Template = script, StdinPath = script is null ? run.PayloadFile : null,
        };
        // First attempts of one array's elements may go to Slurm together as a job array (not a template's: each is its own script).
        if (spec.ArrayIndex is { } index && n == 1 && spec.HandlerPayload is null && _known.TryGetValue(id, out var known))
            request = request with { ArrayGroup = ArrayGroupOf(spec, known.SubmittedAt), ArrayIndex = index };
        _slurm.Submit(request, lookFirst: _slurmLookFirst.Remove(id),
            afterTasks: _scheduler.RunningDepsOf(id).Select(d => d.Value).ToList());
        _ = _store.AttemptStartedAsync(id, spec.Class, TaskState.Queued,
            new AttemptRecord(n, run.StartedAt, null, null, null, null, null, null, null, null, null));
    }

    /// <summary>Elements of one array share their spec but for the index (and when they were submitted).</summary>
    private static string ArrayGroupOf(TaskSpec spec, long submittedAt)
    {
        var env = spec.Env.Where(kv => kv.Key != "SPARKY_ARRAY_INDEX").ToDictionary(kv => kv.Key, kv => kv.Value);
        return submittedAt + ":" + SpecJson.Serialize(spec with { ArrayIndex = null, Env = env });
    }

    /// <summary>What the Slurm executor learned about an attempt.</summary>
    private void OnSlurm(SlurmReport report, DateTimeOffset now)
    {
        var id = TaskId.Parse(report.TaskId);
        if (!_running.TryGetValue(id, out var r) || r.N != report.Attempt || r.Place is not SlurmPlacement) return;
        switch (report)
        {
            case SlurmReport.Submitted s:
                r.Place = new SlurmPlacement(s.JobId);
                ReleaseJobIdWaiter(id, s.JobId);
                SlurmJobSubmitted?.Invoke();
                _ = _store.AttemptSlurmAsync(id, r.N, s.JobId, null);
                _events.Publish(Event(SparkyEvent.TaskStarted, id, r.Class, new JsonObject { ["attempt"] = r.N, ["slurm_job_id"] = s.JobId }));
                break;
            case SlurmReport.Started st:
                _ = _store.AttemptSlurmAsync(id, r.N, st.JobId, st.Node, st.At?.ToUnixTimeMilliseconds());
                break;
            case SlurmReport.SubmitFailed f:
                Console.Error.WriteLine($"sparky: cannot submit {id} to Slurm: {f.Error}");
                try { File.AppendAllText(LogPath(id, r.N, stderr: true), "sparky: " + f.Error + "\n"); } catch (IOException) { }
                Ended(r, new ProcessExit(null, null), Reasons.SubmitFailed, now);
                break;
            case SlurmReport.Ended e:
                // Without cgroups Slurm reports a memory kill as FAILED by signal 9; slurmstepd says why in the job's output.
                if (e.Phase == SlurmPhase.Failed && e.Signal == 9 && (MemoryKilled(LogPath(id, r.N, stderr: true)) || MemoryKilled(r.StdoutPath)))
                    e = e with { Phase = SlurmPhase.OutOfMemory };
                // Slurm's own node and times (a short job may end before any poll saw it run).
                _ = _store.AttemptSlurmAsync(id, r.N, null, e.Node is { Length: > 0 } ? e.Node : null,
                    e.StartedAt?.ToUnixTimeMilliseconds(), e.EndedAt?.ToUnixTimeMilliseconds());
                var (exit, reason, outcome) = SlurmOutcome(e, r);
                if (e.JobId.Length > 0) SlurmJobCompleted?.Invoke(outcome);
                Ended(r, exit, reason, now);
                break;
        }
    }

    private static bool MemoryKilled(string path)
    {
        try
        {
            using var f = File.OpenRead(path);
            f.Seek(Math.Max(0, f.Length - 8192), SeekOrigin.Begin);
            var tail = new StreamReader(f).ReadToEnd();
            return tail.Contains("Exceeded job memory limit", StringComparison.Ordinal) || tail.Contains("exceeded memory limit", StringComparison.Ordinal);
        }
        catch (IOException) { return false; }
    }

    /// <summary>Slurm's end state as an exit and a reason. Only COMPLETED with exit code 0 is a success.</summary>
    private static (ProcessExit Exit, string? Reason, string MetricOutcome) SlurmOutcome(SlurmReport.Ended e, Running r) => e.Phase switch
    {
        SlurmPhase.Succeeded when e.ExitCode == 0 => (new ProcessExit(0, null), null, "succeeded"),
        SlurmPhase.Succeeded or SlurmPhase.Failed => (new ProcessExit(e.ExitCode, e.Signal is > 0 ? e.Signal : null), null, "failed"),
        SlurmPhase.TimedOut => (new ProcessExit(e.ExitCode, e.Signal), Reasons.Timeout, "timeout"),
        SlurmPhase.OutOfMemory => (new ProcessExit(e.ExitCode, e.Signal ?? 9), Reasons.OutOfMemory, "failed"),
        // Cancelled by Sparky (a cancel, or a dependency that failed: its end then says so), or by someone else.
        SlurmPhase.Cancelled when r.Stop is StopReason.Cancel or StopReason.DependencyFailed => (new ProcessExit(e.ExitCode, e.Signal), Reasons.Cancelled, "cancelled"),
        SlurmPhase.Cancelled => (new ProcessExit(e.ExitCode, e.Signal), Reasons.CancelledBySlurm, "cancelled"),
        _ => (new ProcessExit(null, null), Reasons.Lost, "failed"), // node failure, preemption, a job Slurm has no record of
    };

    /// <summary>A Slurm job outlives the daemon: follow it again by its job id (or find it by its comment).</summary>
    private void RecoverSlurm(ActiveTask t, AttemptRecord? a, DateTimeOffset now, List<(Running, ProcessExit, string?)> toEnd)
    {
        var spec = _store.SpecOf(t.Id)?.Spec;
        var run = new Running
        {
            Id = t.Id, Class = t.Class, N = a?.N ?? t.Attempts, Retries = t.Retries, StartedAt = a?.StartedAt ?? now.ToUnixTimeMilliseconds(),
            StdoutPath = LogPath(t.Id, a?.N ?? t.Attempts, false), Place = new SlurmPlacement(a?.SlurmJobId),
        };
        run.DoneFile = spec?.DoneFile == true;
        run.Outputs = spec?.Outputs;
        run.Cwd = spec?.Cwd;
        if (spec?.HandlerPayload is not null) run.PayloadFile = PayloadPath(t.Id, run.N);
        _attemptsSoFar[t.Id] = run.N;
        _scheduler.AddRunning(t.Id, t.Class, t.Seq);
        _running[t.Id] = run;
        if (_slurm is null) toEnd.Add((run, new ProcessExit(null, null), Reasons.Lost));
        else _slurm.Track(t.Id.Value, run.N, a?.SlurmJobId);
    }

    /// <summary>Who waits for a task's Slurm job id (<c>POST /queue/submit</c> of a gpu_slurm task): completed from the
    /// loop when sbatch took the job, or with null when its attempt or the task ended first. Each waiter removes its own
    /// entry when it stops waiting, so the map holds at most one entry per request in flight.</summary>
    private readonly System.Collections.Concurrent.ConcurrentDictionary<TaskId, TaskCompletionSource<string?>> _jobIdWaiters = new();

    /// <summary>Whether tasks of <paramref name="cls"/> go to Slurm one sbatch each (not to workers).</summary>
    public bool RunsOnSlurm(string cls) => _slurmClasses.Contains(cls) && !IsWorkerClass(cls);

    /// <summary>
    /// The Slurm job id of a task just submitted, once sbatch has taken its job: waits up to <paramref name="wait"/>,
    /// and answers null past it, or when the task will get none now (it ended, or its sbatch failed). Any thread.
    /// </summary>
    public async Task<string?> SlurmJobIdAsync(TaskId id, TimeSpan wait)
    {
        if (_slurm is not { } slurm) return null;
        if (slurm.ViewOf(id.Value)?.JobId is { } known) return known;
        if (wait <= TimeSpan.Zero) return null;
        var waiter = _jobIdWaiters.GetOrAdd(id, _ => new TaskCompletionSource<string?>(TaskCreationOptions.RunContinuationsAsynchronously));
        try
        {
            // Looked at again once registered: sbatch may have answered (or the task ended) just before.
            if (slurm.ViewOf(id.Value)?.JobId is { } now) return now;
            if (_store.StateOf(id) is { } state && state.IsTerminal()) return null;
            return await waiter.Task.WaitAsync(wait).ConfigureAwait(false);
        }
        catch (TimeoutException) { return slurm.ViewOf(id.Value)?.JobId; }
        finally { _jobIdWaiters.TryRemove(KeyValuePair.Create(id, waiter)); }
    }

    private void ReleaseJobIdWaiter(TaskId id, string? jobId)
    {
        if (!_jobIdWaiters.IsEmpty && _jobIdWaiters.TryRemove(id, out var waiter)) waiter.TrySetResult(jobId);
    }

    /// <summary>A task's end releases its waiter once stored, so the waiter reads the end, not the state before it.</summary>
    private void ReleaseJobIdWaiterOnceStored(Task<WriteResult> write, TaskId id, string? jobId)
    {
        if (_jobIdWaiters.IsEmpty) return;
        write.ContinueWith(_ => ReleaseJobIdWaiter(id, jobId), TaskContinuationOptions.ExecuteSynchronously);
    }
}
