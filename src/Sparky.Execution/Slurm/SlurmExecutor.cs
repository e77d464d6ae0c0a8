using System.Collections.Concurrent;
using CliWrap;
using CliWrap.Buffered;

namespace Sparky.Execution.Slurm;

/// <summary>How the executor talks to Slurm.</summary>
public sealed record SlurmExecutorOptions(TimeSpan PollInterval, TimeSpan CommandTimeout)
{
    /// <summary>Longest wait between polls while Slurm fails or is slow.</summary>
    public TimeSpan MaxBackoff { get; init; } = TimeSpan.FromSeconds(30);
    /// <summary>Polls a job may be missing from every record before it is reported lost (never succeeded).</summary>
    public int UnknownPollsBeforeLost { get; init; } = 5;
    /// <summary>sbatch tries per attempt before the attempt fails.</summary>
    public int SubmitTries { get; init; } = 6;
}

/// <summary>What the executor learned, for the engine's loop.</summary>
public abstract record SlurmReport(string TaskId, int Attempt)
{
    public sealed record Submitted(string TaskId, int Attempt, string JobId) : SlurmReport(TaskId, Attempt);
    public sealed record Started(string TaskId, int Attempt, string JobId, string? Node, DateTimeOffset? At) : SlurmReport(TaskId, Attempt);
    public sealed record Ended(string TaskId, int Attempt, string JobId, SlurmPhase Phase, int? ExitCode, int? Signal, string? Node, string State,
        DateTimeOffset? StartedAt = null, DateTimeOffset? EndedAt = null) : SlurmReport(TaskId, Attempt);
    public sealed record SubmitFailed(string TaskId, int Attempt, string Error) : SlurmReport(TaskId, Attempt);
}

/// <summary>The last Slurm state seen for a task's current job, for <c>sparky ls</c> and <c>/slurm/status</c>.</summary>
public sealed record SlurmView(string? JobId, string State, string? Node);

/// <summary>
/// Runs tasks as Slurm jobs. One thread owns every Slurm command: sbatch per attempt (retried with backoff,
/// and never twice for one attempt: before a retry it looks for a live job with the attempt's comment), one
/// batched squeue per poll interval for all jobs, one batched sacct (accounting on) or scontrol (off) for the
/// jobs that ended, scancel for cancels. Polls back off while Slurm fails or is slow.
/// </summary>
public sealed class SlurmExecutor : IDisposable
{
    private sealed class Job(string taskId, int attempt)
    {
        public string TaskId { get; } = taskId;
        public int Attempt { get; } = attempt;
        public string? JobId { get; set; }
        public bool ReportedRunning { get; set; }
        public int UnknownPolls { get; set; }
        public bool CancelWanted { get; set; }
        /// <summary>Waiting in the submission list for its sbatch.</summary>
        public bool Submitting { get; set; }
    }

    private sealed class PendingSubmit(SbatchRequest request, bool lookFirst, IReadOnlyList<string> afterTasks)
    {
        public SbatchRequest Request { get; } = request;
        /// <summary>Tasks whose jobs this one waits for (afterok), resolved to job ids just before sbatch.</summary>
        public IReadOnlyList<string> AfterTasks { get; } = afterTasks;
        /// <summary>Sent as part of a job array whose sbatch failed: the array may exist anyway, under this task's comment.</summary>
        public string? ArrayCommentTask { get; set; }
        /// <summary>The attempt in that array's comment (its first element's).</summary>
        public int ArrayCommentAttempt { get; set; }
        /// <summary>Look for a live job with this task's comment even before the first sbatch (a task recovered as queued
        /// may have been submitted by a daemon that died before recording it).</summary>
        public bool LookFirst { get; } = lookFirst;
        public int Tries { get; set; }
        public DateTimeOffset NotBefore { get; set; }
    }

    private readonly SlurmExecutorOptions _options;
    private readonly Action<SlurmReport> _report;
    private readonly TimeProvider _clock;
    private readonly Microsoft.Extensions.Logging.ILogger _log;
    private readonly ConcurrentQueue<Action> _inbox = new();
    private readonly AutoResetEvent _wake = new(false);
    private readonly CancellationTokenSource _stop = new();
    private readonly Thread _thread;
    private readonly List<PendingSubmit> _submits = new();
    // By task id: a task has at most one attempt in flight.
    private readonly Dictionary<string, Job> _jobs = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, SlurmView> _views = new(StringComparer.Ordinal);
    // How recently ended jobs ended, for dependants submitted just after (afterok needs a live job id).
    private readonly Dictionary<string, SlurmPhase> _ended = new(StringComparer.Ordinal);
    private readonly Queue<string> _endedOrder = new();
    private TimeSpan _interval;
    private DateTimeOffset _nextPoll;
    private bool? _accounting;

    /// <param name="log">Where a failed pass and an unreadable squeue line are reported; none: stderr.</param>
    public SlurmExecutor(SlurmExecutorOptions options, Action<SlurmReport> report, TimeProvider? clock = null, Microsoft.Extensions.Logging.ILogger? log = null)
    {
        _log = log ?? Sparky.Core.Logging.LineLoggerProvider.Fallback(typeof(SlurmExecutor).FullName!);
        _options = options;
        _report = report;
        _clock = clock ?? TimeProvider.System;
        _interval = options.PollInterval;
        _thread = new Thread(Loop) { IsBackground = true, Name = "sparky-slurm" };
        _thread.Start();
    }

    /// <summary>Whether sbatch is on this machine's PATH: Slurm-bound classes are refused without it.</summary>
    public static bool SbatchFound() =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Any(d => File.Exists(Path.Combine(d, "sbatch")));

    public Action? PollErrorObserved { get; set; }

    public SlurmView? ViewOf(string taskId) => _views.TryGetValue(taskId, out var v) ? v : null;

    public void Submit(SbatchRequest request, bool lookFirst = false, IReadOnlyList<string>? afterTasks = null) => Post(() =>
    {
        _jobs[request.TaskId] = new Job(request.TaskId, request.Attempt) { Submitting = true };
        _views[request.TaskId] = new SlurmView(null, "SUBMITTING", null);
        // An array element waits a moment for its siblings, which the engine starts in the same pass: they go as one job
        // array. A quarter of a second, not less: on a loaded machine the engine's pass can be preempted between two
        // siblings for tens of milliseconds (20 ms split an array in CI), and Slurm's own scheduling is slower anyway.
        var wait = request.ArrayGroup is null ? TimeSpan.Zero : TimeSpan.FromMilliseconds(250);
        _submits.Add(new PendingSubmit(request, lookFirst, afterTasks ?? []) { NotBefore = _clock.GetUtcNow() + wait });
    });

    /// <summary>Follows a job a previous daemon submitted. Without a job id (the daemon died between sbatch and
    /// recording it) the job is found by its comment, or reported lost.</summary>
    public void Track(string taskId, int attempt, string? jobId) => Post(() =>
    {
        _jobs[taskId] = new Job(taskId, attempt) { JobId = jobId };
        _views[taskId] = new SlurmView(jobId, "UNKNOWN", null);
        _nextPoll = _clock.GetUtcNow();
    });

    /// <summary>scancel the task's job; one not submitted yet is cancelled as soon as sbatch answers.</summary>
    public void Cancel(string taskId) => Post(() =>
    {
        if (!_jobs.TryGetValue(taskId, out var job)) return;
        job.CancelWanted = true;
        if (job.JobId is not null) _ = Run("scancel", [job.JobId]);
        else if (_submits.RemoveAll(s => s.Request.TaskId == taskId) > 0)
        {
            _jobs.Remove(taskId);
            _views.TryRemove(taskId, out _);
            _report(new SlurmReport.Ended(taskId, job.Attempt, "", SlurmPhase.Cancelled, null, null, null, "CANCELLED"));
        }
    });

    private void Post(Action action)
    {
        _inbox.Enqueue(action);
        _wake.Set();
    }

    private void Loop()
    {
        while (!_stop.IsCancellationRequested)
        {
            try
            {
                while (_inbox.TryDequeue(out var action)) action();
                SubmitDue();
                var now = _clock.GetUtcNow();
                if (now >= _nextPoll && AnythingToPoll())
                {
                    Poll();
                    _nextPoll = _clock.GetUtcNow() + _interval;
                }
            }
            catch (Exception e)
            {
                ExecutionLog.SlurmLoopFailed(_log, e.GetType().Name, e.Message);
            }
            _wake.WaitOne(NextWait());
        }
    }

    /// <summary>Jobs Slurm knows of (or that a recovery must look for): not those still waiting for their sbatch.</summary>
    private bool AnythingToPoll() => _jobs.Values.Any(j => !j.Submitting);

    /// <summary>Until the next poll (only when there is something to poll) or the next due sbatch; forever when idle.</summary>
    private TimeSpan NextWait()
    {
        var now = _clock.GetUtcNow();
        TimeSpan? wait = AnythingToPoll() ? _nextPoll - now : null;
        foreach (var s in _submits)
            if (wait is null || s.NotBefore - now < wait) wait = s.NotBefore - now;
        if (wait is null) return Timeout.InfiniteTimeSpan;
        return wait < TimeSpan.FromMilliseconds(1) ? TimeSpan.FromMilliseconds(1) : wait.Value;
    }

    private void SubmitDue()
    {
        var now = _clock.GetUtcNow();
        AdoptOrSplitFailedArrays(now);
        SubmitArrays(now);
        foreach (var s in _submits.Where(s => s.NotBefore <= now).ToList())
        {
            var r = s.Request;
            // A retry may follow an sbatch that timed out after Slurm took the job: look before submitting again.
            if ((s.Tries > 0 || s.LookFirst) && FindJobOf(r.TaskId, r.Attempt) is { } existing)
            {
                _submits.Remove(s);
                Submitted(r.TaskId, existing);
                continue;
            }
            if (ResolveAfter(s) is not { } afterJobs)
            {
                // A dependency's sbatch has not answered yet, or it ended badly (the engine is stopping this one).
                s.NotBefore = now + TimeSpan.FromMilliseconds(200);
                continue;
            }
            r = r with { AfterOkJobIds = afterJobs };
            s.Tries++;
            string script;
            try { script = SbatchScript.Render(r); }
            catch (ArgumentException e)
            {
                // A spec Slurm cannot take (a log path it cannot name, an env key that is no shell name): no retry helps.
                _submits.Remove(s);
                _jobs.Remove(r.TaskId);
                _views.TryRemove(r.TaskId, out _);
                _report(new SlurmReport.SubmitFailed(r.TaskId, r.Attempt, "cannot write the batch script: " + e.Message));
                continue;
            }
            var result = Run("sbatch", ["--parsable"], stdin: script);
            string? error = result.Error;
            if (result.Ok)
            {
                try
                {
                    var job = SlurmQueries.ParseSbatch(result.Stdout);
                    _submits.Remove(s);
                    Submitted(r.TaskId, job.JobId);
                    continue;
                }
                catch (FormatException e) { error = e.Message; }
            }
            if (s.Tries >= _options.SubmitTries)
            {
                _submits.Remove(s);
                _jobs.Remove(r.TaskId);
                _views.TryRemove(r.TaskId, out _);
                _report(new SlurmReport.SubmitFailed(r.TaskId, r.Attempt, $"sbatch failed {s.Tries} times: {error}"));
                continue;
            }
            s.NotBefore = now + Backoff(s.Tries);
        }
    }

    /// <summary>
    /// Elements of one Sparky array that are due together go to Slurm as one job array: one sbatch instead of N,
    /// elements tracked as <c>&lt;job&gt;_&lt;index&gt;</c>. Retries, chained tasks and recovered ones go one by one.
    /// </summary>
    private void SubmitArrays(DateTimeOffset now)
    {
        // A group goes when its first element is due; siblings posted a moment later come along.
        var groups = _submits
            .Where(s => s.Request.ArrayGroup is not null && s.Request.ArrayIndex is not null
                        && s.Tries == 0 && !s.LookFirst && s.AfterTasks.Count == 0 && s.ArrayCommentTask is null)
            .GroupBy(s => s.Request.ArrayGroup!)
            .Where(g => g.Min(s => s.NotBefore) <= now && g.Count() > 1 && g.Select(s => s.Request.ArrayIndex).Distinct().Count() == g.Count())
            .ToList();
        foreach (var g in groups)
        {
            var members = g.OrderBy(s => s.Request.ArrayIndex).ToList();
            var first = members[0].Request;
            var elements = members.Select(m => new ArrayElement(m.Request.ArrayIndex!.Value, m.Request.TaskId, m.Request.StdoutPath, m.Request.StderrPath)).ToList();
            // Slurm's own messages for each element (a kill, a time limit) go beside the first element's logs.
            var slurmLog = Path.Combine(Path.GetDirectoryName(first.StdoutPath)!, "slurm-%A_%a.out");
            var env = first.Env.Where(kv => kv.Key != "SPARKY_ARRAY_INDEX").ToDictionary(kv => kv.Key, kv => kv.Value);
            string script;
            try { script = SbatchScript.RenderArray(first with { StdoutPath = slurmLog, StderrPath = slurmLog, Env = env }, elements); }
            catch (ArgumentException) { continue; } // each goes on its own, where the error is reported
            foreach (var m in members) m.Tries++;
            var result = Run("sbatch", ["--parsable"], stdin: script);
            string? arrayJob = null;
            if (result.Ok) { try { arrayJob = SlurmQueries.ParseSbatch(result.Stdout).JobId; } catch (FormatException) { } }
            foreach (var m in members)
            {
                if (arrayJob is not null)
                {
                    _submits.Remove(m);
                    Submitted(m.Request.TaskId, $"{arrayJob}_{m.Request.ArrayIndex}");
                }
                else
                {
                    m.ArrayCommentTask = first.TaskId;
                    m.ArrayCommentAttempt = first.Attempt;
                    m.NotBefore = now + Backoff(1);
                }
            }
        }
    }

    /// <summary>After a failed array sbatch: if Slurm took the array anyway (found by its comment) its elements are
    /// adopted; otherwise each element is submitted on its own.</summary>
    private void AdoptOrSplitFailedArrays(DateTimeOffset now)
    {
        var due = _submits.Where(s => s.ArrayCommentTask is not null && s.NotBefore <= now).ToList();
        if (due.Count == 0) return;
        var rows = Squeue();
        if (rows is null) { foreach (var s in due) s.NotBefore = now + Backoff(2); return; }
        foreach (var s in due)
        {
            var live = rows.FirstOrDefault(j => IsOf(j, s.ArrayCommentTask!, s.ArrayCommentAttempt));
            if (live is not null)
            {
                _submits.Remove(s);
                Submitted(s.Request.TaskId, $"{live.BaseJobId}_{s.Request.ArrayIndex}");
            }
            else s.ArrayCommentTask = null; // no array: this one goes alone, its own comment checked before each retry
        }
    }

    /// <summary>Job ids for afterok: a dependency that is gone ended as Succeeded (needs no wait); one still being
    /// submitted, or one that ended otherwise, holds the submission back (null).</summary>
    private List<string>? ResolveAfter(PendingSubmit s)
    {
        var ids = new List<string>();
        foreach (var dep in s.AfterTasks)
        {
            if (_jobs.TryGetValue(dep, out var j))
            {
                if (j.JobId is null) return null;
                ids.Add(j.JobId);
            }
            else if (_ended.TryGetValue(dep, out var phase) && phase != SlurmPhase.Succeeded) return null;
        }
        return ids;
    }

    private void Submitted(string taskId, string jobId)
    {
        if (!_jobs.TryGetValue(taskId, out var job)) return;
        job.JobId = jobId;
        job.Submitting = false;
        _views[taskId] = new SlurmView(jobId, "PENDING", null);
        _report(new SlurmReport.Submitted(taskId, job.Attempt, jobId));
        if (job.CancelWanted) _ = Run("scancel", [jobId]);
    }

    private TimeSpan Backoff(int tries)
    {
        var seconds = Math.Min(_options.MaxBackoff.TotalSeconds, 0.5 * Math.Pow(2, tries - 1));
        return TimeSpan.FromSeconds(seconds * (0.8 + 0.4 * Random.Shared.NextDouble()));
    }

    private string? FindJobOf(string taskId, int attempt) => Squeue()?.FirstOrDefault(j => IsOf(j, taskId, attempt))?.JobId;

    /// <summary>
    /// Whether a job squeue lists is this attempt's, by its comment: one still live with the task's comment (as before
    /// attempts were in it), or one that already ended with this very attempt in it. An sbatch that timed out may
    /// have been taken, and its job may be over by the time anyone looks (squeue keeps ended jobs for Slurm's
    /// MinJobAge): adopting it, not submitting again, is what keeps an attempt from running twice.
    /// </summary>
    internal static bool IsOf(SlurmJob j, string taskId, int attempt) =>
        j.TaskId == taskId && (!SlurmStates.IsTerminal(j.Phase) || j.Attempt == attempt);

    private IReadOnlyList<SlurmJob>? Squeue()
    {
        var r = Run("squeue", SlurmQueries.SqueueArgs);
        if (!r.Ok) return null;
        var rows = SlurmQueries.ParseSqueue(r.Stdout);
        foreach (var skipped in rows.Skipped) ExecutionLog.SqueueLineSkipped(_log, skipped.LineNumber, skipped.Reason);
        return rows;
    }

    /// <summary>One squeue for every job; then one detail lookup for those that ended or went missing.</summary>
    private void Poll()
    {
        var rows = Squeue();
        if (rows is null)
        {
            PollErrorObserved?.Invoke();
            _interval = TimeSpan.FromTicks(Math.Min(_options.MaxBackoff.Ticks, _interval.Ticks * 2));
            return;
        }
        _interval = _options.PollInterval;
        var byJobId = new Dictionary<string, SlurmJob>(StringComparer.Ordinal);
        foreach (var row in rows)
        {
            byJobId[row.JobId] = row;
            // A pending array prints as one row, "123_[5-9]": each element it covers is pending.
            foreach (var index in PendingIndices(row.ArrayTask)) byJobId[$"{row.BaseJobId}_{index}"] = row;
        }
        var toLookUp = new List<Job>();
        foreach (var job in _jobs.Values.ToList())
        {
            if (job.JobId is null)
            {
                if (job.Submitting) continue;
                // Recovered without a job id: adopt its job (live, or ended under this attempt), else it never got one.
                var found = rows.FirstOrDefault(j => IsOf(j, job.TaskId, job.Attempt));
                if (found is not null) Submitted(job.TaskId, found.JobId);
                else End(job, SlurmPhase.Unknown, null, null, null, "NO_JOB");
                continue;
            }
            if (!byJobId.TryGetValue(job.JobId, out var row)) { toLookUp.Add(job); continue; }
            var phase = row.Phase;
            _views[job.TaskId] = new SlurmView(job.JobId, row.State, row.Node);
            if (phase == SlurmPhase.Running && !job.ReportedRunning)
            {
                job.ReportedRunning = true;
                _report(new SlurmReport.Started(job.TaskId, job.Attempt, job.JobId, row.Node, row.Start));
            }
            // Slurm marks a job COMPLETED only when every process exited 0 (anything else is FAILED, TIMEOUT, ...):
            // that is an exit code, so it needs no lookup. Other ends need one for their exit code and signal.
            if (phase == SlurmPhase.CompletedUnverified && row.State == "COMPLETED") End(job, SlurmPhase.Succeeded, 0, 0, row.Node, row.State, row.Start, row.End);
            else if (SlurmStates.IsTerminal(phase) || phase == SlurmPhase.CompletedUnverified) toLookUp.Add(job);
        }
        if (toLookUp.Count > 0) LookUp(toLookUp, byJobId);
    }

    /// <summary>Exit codes come from sacct where accounting is on, else from scontrol (while the controller remembers the job).</summary>
    private void LookUp(List<Job> jobs, Dictionary<string, SlurmJob> fromSqueue)
    {
        IReadOnlyList<SlurmJob>? details = null;
        var ids = jobs.Select(j => j.JobId!).ToList();
        if (_accounting != false)
        {
            var r = Run("sacct", SlurmQueries.SacctArgs(ids));
            if (r.Ok) { _accounting = true; details = SlurmQueries.ParseSacct(r.Stdout); }
            else if (_accounting is null) _accounting = false; // sacct answers only where accounting is on
        }
        if (details is null && _accounting == false)
        {
            // Every job the controller remembers, in one call.
            var r = Run("scontrol", SlurmQueries.ScontrolArgs());
            if (r.Ok) details = SlurmQueries.ParseScontrol(r.Stdout);
        }
        var byId = new Dictionary<string, SlurmJob>(StringComparer.Ordinal);
        foreach (var d in details ?? []) byId[d.JobId] = d;
        foreach (var job in jobs)
        {
            if (byId.TryGetValue(job.JobId!, out var d) && SlurmStates.IsTerminal(d.Phase))
            {
                End(job, d.Phase, d.ExitCode, d.Signal, d.Node, d.State, d.Start, d.End);
                continue;
            }
            if (byId.ContainsKey(job.JobId!) || fromSqueue.ContainsKey(job.JobId!)) continue; // still known, not ended: look again
            // Missing everywhere: unknown, looked up again; reported lost only after several polls, never succeeded.
            job.UnknownPolls++;
            _views[job.TaskId] = new SlurmView(job.JobId, "UNKNOWN", null);
            if (job.UnknownPolls >= _options.UnknownPollsBeforeLost) End(job, SlurmPhase.Unknown, null, null, null, "UNKNOWN");
        }
    }

    private void End(Job job, SlurmPhase phase, int? exitCode, int? signal, string? node, string state,
        DateTimeOffset? startedAt = null, DateTimeOffset? endedAt = null)
    {
        _jobs.Remove(job.TaskId);
        _ended[job.TaskId] = phase;
        _endedOrder.Enqueue(job.TaskId);
        if (_endedOrder.Count > 10_000) _ended.Remove(_endedOrder.Dequeue());
        _views[job.TaskId] = new SlurmView(job.JobId, state, node);
        _report(new SlurmReport.Ended(job.TaskId, job.Attempt, job.JobId ?? "", phase, exitCode, signal, node, state, startedAt, endedAt));
    }

    /// <summary>The indices of a pending array range such as <c>5-9</c>, <c>1,3,5</c>, <c>0-99:2%4</c>; none for a single element.</summary>
    internal static IEnumerable<int> PendingIndices(string? arrayTask)
    {
        if (arrayTask is null || !(arrayTask.Contains('-') || arrayTask.Contains(','))) yield break;
        var spec = arrayTask.Split('%')[0];
        foreach (var part in spec.Split(',', StringSplitOptions.RemoveEmptyEntries))
        {
            var stepSplit = part.Split(':');
            int step = stepSplit.Length > 1 && int.TryParse(stepSplit[1], out var st) && st > 0 ? st : 1;
            var bounds = stepSplit[0].Split('-');
            if (!int.TryParse(bounds[0], out var lo)) continue;
            int hi = bounds.Length > 1 && int.TryParse(bounds[1], out var h) ? h : lo;
            for (int i = lo; i <= hi && i - lo <= 1_000_000; i += step) yield return i;
        }
    }

    private readonly Lock _shapeLock = new();
    private (IReadOnlyList<SlurmPartition> Shape, DateTimeOffset At)? _shape;

    /// <summary>The cluster's partitions (<c>sinfo</c>), read at most once a minute and kept; null when sinfo fails
    /// (then nothing is refused for it: Slurm decides). Any thread; the first caller in a minute waits for sinfo.</summary>
    public IReadOnlyList<SlurmPartition>? Shape()
    {
        lock (_shapeLock)
        {
            var now = _clock.GetUtcNow();
            if (_shape is { } cached && now - cached.At < TimeSpan.FromMinutes(1)) return cached.Shape;
            var r = Run("sinfo", SlurmShape.SinfoArgs);
            if (!r.Ok) return null;
            _shape = (SlurmShape.Parse(r.Stdout), now);
            return _shape.Value.Shape;
        }
    }

    private readonly record struct CommandResult(bool Ok, string Stdout, string Stderr, string? Error);

    /// <summary>Runs a Slurm command with a timeout; the daemon's own settings (SPARKY_*, its token) stay out of the job's environment.</summary>
    private CommandResult Run(string exe, IReadOnlyList<string> args, string? stdin = null)
    {
        using var cts = new CancellationTokenSource(_options.CommandTimeout);
        try
        {
            var cmd = CliWrap.Cli.Wrap(exe).WithArguments(args).WithValidation(CommandResultValidation.None)
                .WithEnvironmentVariables(e =>
                {
                    foreach (var key in Environment.GetEnvironmentVariables().Keys.Cast<string>())
                        if (key.StartsWith("SPARKY_", StringComparison.Ordinal)) e.Set(key, null);
                    foreach (var (k, v) in SlurmQueries.Environment) e.Set(k, v);
                });
            if (stdin is not null) cmd = cmd.WithStandardInputPipe(PipeSource.FromString(stdin, new System.Text.UTF8Encoding(false)));
            var r = cmd.ExecuteBufferedAsync(cts.Token).GetAwaiter().GetResult();
            return new CommandResult(r.ExitCode == 0, r.StandardOutput, r.StandardError, r.ExitCode == 0 ? null : $"{exe} exited {r.ExitCode}: {r.StandardError.Trim()}");
        }
        catch (OperationCanceledException)
        {
            return new CommandResult(false, "", "", $"{exe} timed out after {_options.CommandTimeout.TotalSeconds:0.#} s");
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            return new CommandResult(false, "", "", $"cannot run {exe}: {e.Message}");
        }
    }

    public void Dispose()
    {
        _stop.Cancel();
        _wake.Set();
        _thread.Join();
    }
}
