using System.Text.Json.Nodes;
using Sparky.Core.Events;
using Sparky.Core.Tasks;
using Sparky.Server.Executors.Workers;
using Sparky.Server.Zmq;
using Sparky.Store.Sqlite;
using Sparky.Workers.Protocol;

namespace Sparky.Server.Daemon;

public abstract record SubmitOutcome
{
    /// <summary>Stored; <paramref name="SentAgain"/> of them were stored already with the same envelope (an
    /// idempotent submit: left as they are).</summary>
    public sealed record Accepted(IReadOnlyList<TaskId> Ids, int SentAgain = 0) : SubmitOutcome
    {
        public bool AllSentAgain => SentAgain == Ids.Count;
    }
    public sealed record Invalid(string Reason) : SubmitOutcome;
    public sealed record Conflict(string Reason) : SubmitOutcome;
    public sealed record QueueFull(long Queued, long Bound) : SubmitOutcome;
    public sealed record Unavailable(string Reason) : SubmitOutcome;
}

public enum CommandOutcome { Done, NotFound, AlreadyFinished, NotFinished, Unavailable }

/// <summary>The engine's doors, safe from any thread: submissions (checked, then stored, then handed to the loop),
/// cancels and replays. Every door of the daemon (HTTP, ZeroMQ, the drop directory, plans) comes through here.</summary>
public sealed partial class Engine
{

    /// <param name="intakeKey">A dropped file's identity, stored with its tasks (<see cref="SqliteStore.InsertAsync"/>).</param>
    public async Task<SubmitOutcome> SubmitAsync(IReadOnlyList<Submission> submissions, string? intakeKey = null)
    {
        if (!Ready) return new SubmitOutcome.Unavailable("the daemon is starting");
        if (_store.Corruption is { } corrupt) return new SubmitOutcome.Unavailable(corrupt + "; nothing new is accepted until it is repaired");
        var now = _clock.GetUtcNow().ToUnixTimeMilliseconds();
        var tasks = new List<NewTask>();
        var ids = new HashSet<string>(StringComparer.Ordinal);
        // The bound is checked on the count before any task is built (an array can be large), and again by the store's
        // writer, which orders inserts: concurrent submissions that each see room here cannot overshoot it together.
        long total = submissions.Sum(s => (long)(s.Array?.Count ?? 1));
        long queuedNow = _store.Counters.Total(TaskState.Queued);
        if (queuedNow + total > _config.MaxQueued) return new SubmitOutcome.QueueFull(queuedNow, _config.MaxQueued);
        foreach (var s in submissions)
        {
            var envelopeJson = s.Envelope.ToJsonString();
            if (s.Array is { } array)
            {
                foreach (int index in array.Indices())
                {
                    TaskId id;
                    if (s.Id is { } baseId)
                    {
                        if (!TaskId.TryParse($"{baseId.Value}_{index}", out id))
                            return new SubmitOutcome.Invalid($"id '{baseId}' is too long for an array: '{baseId}_{index}' must be at most 128 characters");
                    }
                    else id = _ids.Next();
                    var env = new Dictionary<string, string>(s.Spec.Env) { ["SPARKY_ARRAY_INDEX"] = index.ToString() };
                    tasks.Add(new NewTask(id, s.Spec with { ArrayIndex = index, Env = env }, envelopeJson, now));
                }
            }
            else
            {
                tasks.Add(new NewTask(s.Id ?? _ids.Next(), s.Spec, envelopeJson, now));
            }
        }
        foreach (var t in tasks)
        {
            if (!ids.Add(t.Id.Value)) return new SubmitOutcome.Conflict($"id '{t.Id}' appears twice in the request");
        }
        foreach (var s in submissions)
        {
            if (WhyNeverFits(s.Spec) is { } why) return new SubmitOutcome.Invalid($"this task can never run here: it {why}");
            if (WhyTooBigToExec(s.Spec) is { } big) return new SubmitOutcome.Invalid(big);
            if (_handlers.WhyTemplateRefuses(s.Spec) is { } refused) return new SubmitOutcome.Invalid(refused);
        }
        // A dependency must exist before its dependant: earlier in this request, or already stored.
        // That alone rules out a task depending on itself and any cycle.
        var earlier = new HashSet<string>(StringComparer.Ordinal);
        foreach (var t in tasks)
        {
            foreach (var dep in t.Spec.After)
            {
                if (dep == t.Id) return new SubmitOutcome.Invalid($"task '{t.Id}' depends on itself");
                if (earlier.Contains(dep.Value)) continue;
                if (ids.Contains(dep.Value)) return new SubmitOutcome.Invalid($"task '{t.Id}' depends on '{dep}', which comes later in the same request: list dependencies first");
                if (_store.StateOf(dep) is null) return new SubmitOutcome.Invalid($"unknown dependency '{dep}'");
            }
            earlier.Add(t.Id.Value);
        }

        int sentAgain = 0;
        var result = await _store.InsertAsync(tasks, onCommitted: existing =>
        {
            // On the writer thread, in commit order: a dependency always reaches the loop before its
            // dependant. Published before the loop sees the tasks, so task.queued precedes task.started.
            // A task sent again with the same envelope is stored already: nothing new to queue.
            sentAgain = existing.Count;
            var added = existing.Count == 0 ? tasks : tasks.Where(t => !existing.Contains(t.Id.Value)).ToList();
            foreach (var t in added)
                _events.Publish(Event(SparkyEvent.TaskQueued, t.Id, t.Spec.Class, new JsonObject { ["name"] = t.Spec.Name }));
            if (added.Count > 0) Post(new AddedCmd(added.Select(t => (t.Id, t.Spec, t.SubmittedAt, 0)).ToList()));
        }, intakeKey, _config.MaxQueued).ConfigureAwait(false);
        switch (result.Status)
        {
            case WriteStatus.Conflict: return new SubmitOutcome.Conflict(result.Detail!);
            case WriteStatus.Unavailable: return new SubmitOutcome.Unavailable(result.Detail!);
            // Another submission took the room first: the bound is held where inserts are ordered.
            case WriteStatus.QueueFull: return new SubmitOutcome.QueueFull(result.Queued, _config.MaxQueued);
        }
        return new SubmitOutcome.Accepted(tasks.Select(t => t.Id).ToList(), SentAgain: sentAgain);
    }

    public Task<CommandOutcome> CancelAsync(TaskId id)
    {
        var reply = new TaskCompletionSource<CommandOutcome>(TaskCreationOptions.RunContinuationsAsynchronously);
        Post(new CancelCmd(id, reply));
        return reply.Task;
    }

    /// <summary>Replays a finished task: same id, same spec, a new round of attempts.</summary>
    public async Task<CommandOutcome> RetryAsync(TaskId id)
    {
        var state = _store.StateOf(id);
        if (state is null) return CommandOutcome.NotFound;
        if (!state.Value.IsTerminal()) return CommandOutcome.NotFinished;
        var (spec, attempts, _) = _store.SpecOf(id)!.Value;
        var result = await _store.RequeueAsync(id, spec.Class, state.Value, onCommitted: () =>
        {
            _events.Publish(Event(SparkyEvent.TaskQueued, id, spec.Class, new JsonObject { ["replay"] = true }));
            // Its dependencies already succeeded once; a replay doesn't wait on them again.
            Post(new AddedCmd([(id, spec with { After = [] }, _clock.GetUtcNow().ToUnixTimeMilliseconds(), attempts)]));
        }).ConfigureAwait(false);
        if (result.Status == WriteStatus.Conflict) return CommandOutcome.NotFinished;
        if (result.Status != WriteStatus.Ok) return CommandOutcome.Unavailable;
        return CommandOutcome.Done;
    }

    /// <summary>Argv and environment past what execve takes (E2BIG), counted as the launch will pass them: the
    /// daemon's environment, the task's, and what the engine adds.</summary>
    private string? WhyTooBigToExec(TaskSpec spec)
    {
        // The daemon's environment is the same for every task: its size is counted once, less what the task overrides.
        long bytes = Sparky.Execution.Processes.ArgLimits.Bytes(spec.CommandLine) + BaseEnvBytes + Sparky.Execution.Processes.ArgLimits.Headroom;
        foreach (var (k, v) in spec.Env)
        {
            bytes += Sparky.Execution.Processes.ArgLimits.Bytes([k + "=" + v]);
            if (_local.BaseEnvironment.TryGetValue(k, out var b)) bytes -= Sparky.Execution.Processes.ArgLimits.Bytes([k + "=" + b]);
        }
        long max = Sparky.Execution.Processes.ArgLimits.ArgMax;
        return bytes > max
            ? $"the command and environment come to {bytes} bytes with what Sparky adds; the kernel starts a process with at most {max} (ARG_MAX)"
            : null;
    }

    private long BaseEnvBytes => _baseEnvBytes ??= Sparky.Execution.Processes.ArgLimits.Bytes(_local.BaseEnvironment.Select(kv => kv.Key + "=" + kv.Value));
    private long? _baseEnvBytes;

    /// <summary>Why a task could never run here, or null. Safe from any thread: it reads only the pool's totals.</summary>
    public string? WhyNeverFits(TaskSpec spec)
    {
        if (spec.WantsAllocation && !RunsOnSlurm(spec.Class))
            return $"asks for {AllocationAsked(spec)}, which only a Slurm allocation gives, and class {spec.Class} runs " +
                (IsWorkerClass(spec.Class) ? "on workers (the worker executor), one process on one machine each" : "on this machine (the local executor)") +
                $": use a class that runs on Slurm ({string.Join(", ", _slurmClasses.Where(RunsOnSlurm).Order())})";
        if (_config.PilotClasses.Contains(spec.Class) && _slurm is null)
            return $"runs on pilot workers (class {spec.Class}), which Sparky starts with sbatch, and sbatch was not found on this machine";
        if (IsWorkerClass(spec.Class)) return null; // waits for a worker
        if (_slurmClasses.Contains(spec.Class) && _slurm is null)
            return $"runs on Slurm (class {spec.Class}) and sbatch was not found on this machine";
        if (spec.WantsAllocation && _slurm?.Shape() is { } shape &&
            Sparky.Execution.Slurm.SlurmShape.WhyNeverFits(shape, _config.SlurmPartition, spec.NodeCount, spec.GpusPerNode) is { } tooBig)
            return tooBig;
        var local = LocalRequest(spec.Class, spec.Asks);
        if (local.WantsGpu && !_config.EnableGpu)
            return $"asks for a GPU, and GPUs are not handed out here (enable_gpu = '{_config["enable_gpu"]}' from {_config.Settings["enable_gpu"].Origin})";
        return _scheduler.WhyNeverFits(local);
    }

    private static string AllocationAsked(TaskSpec spec)
    {
        var asked = new List<string>();
        if (spec.NodeCount > 1) asked.Add($"{spec.NodeCount} nodes");
        if (spec.GpusPerNode is > 0) asked.Add($"{spec.GpusPerNode} GPUs per node");
        if (spec.Exclusive) asked.Add("whole nodes (exclusive)");
        return string.Join(" and ", asked);
    }

    // ---------- workers (the worker executor, Executors/Workers, built at start) ----------

    /// <summary>Set by the daemon once its command socket is bound (before <see cref="Start"/>); null: no worker can be reached.</summary>
    public WorkerLink? Workers { get; set; }

    /// <summary>A worker's message, from the command socket's thread.</summary>
    public void OnWorkerMessage(byte[] identity, RequestType type, byte[] corr, IFromWorker? message, string? key = null) =>
        Post(new WorkerMsgCmd(new WorkerMessage(identity, type, corr, message, key)));

    /// <summary>Ends for attempts a session was never given, before it is closed as a misbehaving (or forged) worker.</summary>
    public const int MaxBogusEnds = WorkerExecutor.MaxBogusEnds;

    /// <summary>Worker messages dropped: ends for attempts the session was not given, and messages under a session
    /// from another key. For tests and logs.</summary>
    public long RejectedWorkerMessages => _onWorkers?.RejectedMessages ?? 0;

    /// <summary>Pilot jobs submitted and not ended, for the API and tests.</summary>
    public int PilotJobs => _onWorkers?.Pilots.Count ?? 0;

    /// <summary>The start of this daemon's pilot names (and Slurm job names): <c>pilot-&lt;hex&gt;-</c>. Once started.</summary>
    public string PilotNamePrefix => _onWorkers?.Pilots.NamePrefix ?? throw new InvalidOperationException("the engine has not started");
}
