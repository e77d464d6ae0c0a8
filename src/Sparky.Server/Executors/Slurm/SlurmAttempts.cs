using System.Collections.Concurrent;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using Sparky.Core.Config;
using Sparky.Core.Events;
using Sparky.Core.Lifecycle;
using Sparky.Core.Scheduling;
using Sparky.Core.Tasks;
using Sparky.Execution.Processes;
using Sparky.Execution.Slurm;
using Sparky.Server.Daemon;
using Sparky.Server.Events;
using Sparky.Store.Sqlite;

namespace Sparky.Server.Executors.Slurm;

/// <summary>
/// The Slurm executor: attempts of Slurm-bound classes become batch jobs through the <see cref="SlurmExecutor"/> client
/// (sbatch, one batched squeue per poll), whose reports the engine's loop hands to <see cref="OnReport"/>. It owns the
/// job ids, the look-before-resubmit set and who waits for a job id. Everything here runs on the engine's loop thread,
/// but for <see cref="JobIdAsync"/>.
/// </summary>
internal sealed class SlurmAttempts(
    SparkyConfig config, SlurmExecutor? client, IAttemptHost host, SqliteStore store, EventHub events, TaskLogs logs,
    ClassHandlers handlers, IEngineObserver observer, ILogger log, string instance,
    Func<TaskId, IEnumerable<TaskId>> runningDepsOf, Func<TaskId, long?> submittedAtOf) : IExecutor
{
    /// <summary>Slurm tasks recovered as queued: a dead daemon may have run sbatch for them without recording it.</summary>
    private readonly HashSet<TaskId> _lookFirst = new();

    /// <summary>Who waits for a task's Slurm job id (<c>POST /queue/submit</c> of a gpu_slurm task): completed from the
    /// loop when sbatch took the job, or with null when its attempt or the task ended first. Each waiter removes its own
    /// entry when it stops waiting, so the map holds at most one entry per request in flight.</summary>
    private readonly ConcurrentDictionary<TaskId, TaskCompletionSource<string?>> _jobIdWaiters = new();

    /// <summary>Tasks marked to look for a job before resubmitting: for tests that check it does not outlive its task.</summary>
    public int LookFirstCount => _lookFirst.Count;

    /// <summary>
    /// Hands the attempt to Slurm: recorded as started now (Sparky's "running" covers Slurm's PENDING), its job
    /// id once sbatch answers. Output goes to the same log files a local attempt writes, so <c>sparky logs</c>
    /// reads them while the job runs (on a shared file system when the job runs on another node).
    /// </summary>
    public void Start(Attempt run, TaskSpec spec, Allocation allocation, DateTimeOffset now)
    {
        var (id, n) = (run.Id, run.N);
        run.Place = new SlurmPlacement(null);
        if (client is null)
        {
            host.FailStart(run, $"class {spec.Class} runs on Slurm and sbatch was not found", now);
            return;
        }
        var env = new Dictionary<string, string>(spec.Env, StringComparer.Ordinal) { ["SPARKY_INSTANCE"] = instance };
        if (spec.ArrayIndex is { } idx) env["SPARKY_ARRAY_INDEX"] = idx.ToString();
        IReadOnlyList<string> argv = spec.CommandLine;
        string? script = null;
        if (spec.HandlerPayload is { } payload)
        {
            // Its class's template (filled from the payload, every value checked again) or its handler, reading the payload.
            var (handler, template) = handlers.HandlerOf(spec.Class);
            if (template is not null)
            {
                var (filled, errors) = ClassHandlers.FillTemplate(spec.Class, template, payload, id.Value);
                if (filled is null)
                {
                    host.FailStart(run, string.Join("; ", errors), now, Reasons.SubmitFailed, exitCode: null);
                    return;
                }
                script = filled;
            }
            else argv = handler!;
            run.PayloadFile = handlers.WritePayloadFile(id, n, payload);
            env["SPARKY_PAYLOAD_FILE"] = run.PayloadFile;
        }
        var nodes = NodesOf(spec);
        var request = new SbatchRequest(
            id.Value, n, argv, env, spec.Cwd, spec.Name, spec.Cpus, spec.MemoryMb, nodes?.GpusPerNode is > 0 ? 0 : spec.Gpus, spec.TimeoutSeconds,
            config.SlurmPartition, config.SlurmAccount, run.StdoutPath, logs.PathOf(id, n, stderr: true),
            [], null, config.SbatchOptionsFor(spec.Class))
        {
            Template = script, StdinPath = script is null ? run.PayloadFile : null, Nodes = nodes,
        };
        // First attempts of one array's elements may go to Slurm together as a job array (not a template's: each is its own script).
        if (spec.ArrayIndex is { } index && n == 1 && spec.HandlerPayload is null && submittedAtOf(id) is { } submittedAt)
            request = request with { ArrayGroup = ArrayGroupOf(spec, submittedAt), ArrayIndex = index };
        client.Submit(request, lookFirst: _lookFirst.Remove(id), afterTasks: runningDepsOf(id).Select(d => d.Value).ToList());
        _ = store.AttemptStartedAsync(id, spec.Class, TaskState.Queued,
            new AttemptRecord(n, run.StartedAt, null, null, null, null, null, null, null, null, null));
    }

    /// <summary>The allocation a distributed task asks for (nodes, GPUs on each, processes on each, whole nodes); null
    /// for a task that asks for none of them, which runs as one process as before.</summary>
    internal static SbatchNodes? NodesOf(TaskSpec spec)
    {
        if (!spec.WantsAllocation && spec.ProcsPerNode is null) return null;
        int procs = spec.ProcsPerNode ?? spec.GpusPerNode ?? (spec.Gpus > 0 ? spec.Gpus : 1);
        return new SbatchNodes(spec.NodeCount, spec.GpusPerNode, Math.Max(1, procs), spec.Exclusive);
    }

    /// <summary>Elements of one array share their spec but for the index (and when they were submitted).</summary>
    private static string ArrayGroupOf(TaskSpec spec, long submittedAt)
    {
        var env = spec.Env.Where(kv => kv.Key != "SPARKY_ARRAY_INDEX").ToDictionary(kv => kv.Key, kv => kv.Value);
        return submittedAt + ":" + SpecJson.Serialize(spec with { ArrayIndex = null, Env = env });
    }

    /// <summary>A Slurm job is not signalled: it is cancelled through Slurm (scancel), which reports its end.</summary>
    /// <summary>scancel ends the job's every step: no SIGKILL is owed after it.</summary>
    public bool KillsAfterGrace => false;

    public void Stop(Attempt run, int signal) => client?.Cancel(run.Id.Value);

    /// <summary>A job is submitted at its start: it is cancelled through Slurm.</summary>
    public Withdrawn Withdraw(Attempt run) => Withdrawn.No;

    public Released Release(Attempt run, bool failed, AttemptUsage reported) => default;

    /// <summary>A waiter for the job id hears the end once it is stored, so it reads the end, not the state before it.</summary>
    public void Settled(Attempt run, Task<WriteResult> endWrite, bool final)
    {
        if (final) _lookFirst.Remove(run.Id);
        ReleaseJobIdWaiterOnceStored(endWrite, run.Id, (run.Place as SlurmPlacement)?.JobId);
    }

    /// <summary>A task that ended without running (cancelled, a dependency failed): whoever waits for its job id hears none.</summary>
    public void EndedUnstarted(TaskId id, Task<WriteResult> write)
    {
        _lookFirst.Remove(id);
        ReleaseJobIdWaiterOnceStored(write, id, null);
    }

    public void RecoverQueued(TaskId id) => _lookFirst.Add(id);

    /// <summary>A Slurm job outlives the daemon: followed again by its job id (or found by its comment).</summary>
    public RecoveredEnd? Recover(Attempt run, TaskSpec? spec, AttemptRecord? a, DateTimeOffset now)
    {
        run.Place = new SlurmPlacement(a?.SlurmJobId);
        if (spec?.HandlerPayload is not null) run.PayloadFile = handlers.PayloadPath(run.Id, run.N);
        if (client is null) return new RecoveredEnd(new ProcessExit(null, null), Reasons.Lost);
        client.Track(run.Id.Value, run.N, a?.SlurmJobId);
        return null;
    }

    public void Tick(DateTimeOffset now) { }

    public DateTimeOffset? NextWake(DateTimeOffset now) => null;

    /// <summary>What the Slurm client learned about an attempt.</summary>
    public void OnReport(SlurmReport report, DateTimeOffset now)
    {
        var id = TaskId.Parse(report.TaskId);
        if (host.InFlight(id) is not { } r || r.N != report.Attempt || r.Place is not SlurmPlacement) return;
        switch (report)
        {
            case SlurmReport.Submitted s:
                r.Place = new SlurmPlacement(s.JobId);
                ReleaseJobIdWaiter(id, s.JobId);
                observer.SlurmJobSubmitted();
                _ = store.AttemptSlurmAsync(id, r.N, s.JobId, null);
                events.Publish(TaskEvents.Of(SparkyEvent.TaskStarted, id, r.Class, now, new JsonObject { ["attempt"] = r.N, ["slurm_job_id"] = s.JobId }));
                break;
            case SlurmReport.Started st:
                _ = store.AttemptSlurmAsync(id, r.N, st.JobId, st.Node, st.At?.ToUnixTimeMilliseconds());
                break;
            case SlurmReport.SubmitFailed f:
                EngineLog.SlurmSubmitFailed(log, id.Value, f.Error);
                logs.Note(id, r.N, f.Error);
                host.Ended(r, new ProcessExit(null, null), Reasons.SubmitFailed, now);
                break;
            case SlurmReport.Ended e:
                // Without cgroups Slurm reports a memory kill as FAILED by signal 9; slurmstepd says why in the job's output.
                if (e.Phase == SlurmPhase.Failed && e.Signal == 9 && (MemoryKilled(logs.PathOf(id, r.N, stderr: true)) || MemoryKilled(r.StdoutPath)))
                    e = e with { Phase = SlurmPhase.OutOfMemory };
                // Slurm's own node and times (a short job may end before any poll saw it run).
                _ = store.AttemptSlurmAsync(id, r.N, null, e.Node is { Length: > 0 } ? e.Node : null,
                    e.StartedAt?.ToUnixTimeMilliseconds(), e.EndedAt?.ToUnixTimeMilliseconds());
                var (exit, reason, outcome) = Outcome(e, r.Life.Stop);
                if (e.JobId.Length > 0) observer.SlurmJobCompleted(outcome);
                host.Ended(r, exit, reason, now);
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
    private static (ProcessExit Exit, string? Reason, string MetricOutcome) Outcome(SlurmReport.Ended e, StopReason stop) => e.Phase switch
    {
        SlurmPhase.Succeeded when e.ExitCode == 0 => (new ProcessExit(0, null), null, "succeeded"),
        SlurmPhase.Succeeded or SlurmPhase.Failed => (new ProcessExit(e.ExitCode, e.Signal is > 0 ? e.Signal : null), null, "failed"),
        SlurmPhase.TimedOut => (new ProcessExit(e.ExitCode, e.Signal), Reasons.Timeout, "timeout"),
        SlurmPhase.OutOfMemory => (new ProcessExit(e.ExitCode, e.Signal ?? 9), Reasons.OutOfMemory, "failed"),
        // Cancelled by Sparky (a cancel, or a dependency that failed: its end then says so), or by someone else.
        SlurmPhase.Cancelled when stop is StopReason.Cancel or StopReason.DependencyFailed => (new ProcessExit(e.ExitCode, e.Signal), Reasons.Cancelled, "cancelled"),
        SlurmPhase.Cancelled => (new ProcessExit(e.ExitCode, e.Signal), Reasons.CancelledBySlurm, "cancelled"),
        _ => (new ProcessExit(null, null), Reasons.Lost, "failed"), // node failure, preemption, a job Slurm has no record of
    };

    /// <summary>Slurm's last word on a task's current job, or null if it has none in this daemon's memory. Any thread.</summary>
    public SlurmView? ViewOf(TaskId id) => client?.ViewOf(id.Value);

    /// <summary>
    /// The Slurm job id of a task just submitted, once sbatch has taken its job: waits up to <paramref name="wait"/>,
    /// and answers null past it, or when the task will get none now (it ended, or its sbatch failed). Any thread.
    /// </summary>
    public async Task<string?> JobIdAsync(TaskId id, TimeSpan wait)
    {
        if (client is null) return null;
        if (client.ViewOf(id.Value)?.JobId is { } known) return known;
        if (wait <= TimeSpan.Zero) return null;
        var waiter = _jobIdWaiters.GetOrAdd(id, _ => new TaskCompletionSource<string?>(TaskCreationOptions.RunContinuationsAsynchronously));
        try
        {
            // Looked at again once registered: sbatch may have answered (or the task ended) just before.
            if (client.ViewOf(id.Value)?.JobId is { } now) return now;
            if (store.StateOf(id) is { } state && state.IsTerminal()) return null;
            return await waiter.Task.WaitAsync(wait).ConfigureAwait(false);
        }
        catch (TimeoutException) { return client.ViewOf(id.Value)?.JobId; }
        finally { _jobIdWaiters.TryRemove(KeyValuePair.Create(id, waiter)); }
    }

    private void ReleaseJobIdWaiter(TaskId id, string? jobId)
    {
        if (!_jobIdWaiters.IsEmpty && _jobIdWaiters.TryRemove(id, out var waiter)) waiter.TrySetResult(jobId);
    }

    /// <summary>Looked for once the end is stored, not now: a waiter that registers between now and the commit would
    /// find the task not ended yet, and then wait out its whole wait.</summary>
    private void ReleaseJobIdWaiterOnceStored(Task<WriteResult> write, TaskId id, string? jobId) =>
        write.ContinueWith(_ => ReleaseJobIdWaiter(id, jobId), TaskContinuationOptions.ExecuteSynchronously);
}
