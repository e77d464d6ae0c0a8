using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text;
using System.Text.Json.Nodes;
using System.Threading.Channels;
using Sparky.Core.Events;
using Sparky.Core.Tasks;
using Sparky.Plans;
using Sparky.Server.Daemon;
using Sparky.Server.Events;
using Sparky.Store.Sqlite;

namespace Sparky.Server.Plans;

/// <summary>A plan as the runner holds it: immutable, replaced on every change (readers take it as it is).
/// <see cref="Vars"/> are the values given with the run (<c>--var</c>), stored with the state: the text alone does not
/// make the same plan again.</summary>
public sealed record PlanRun(string Name, Plan Plan, PlanState State, PlanStatus Status, string Text, string? Path, string BaseDir, long UpdatedAt)
{
    public IReadOnlyDictionary<string, string> Vars { get; init; } = new Dictionary<string, string>();
}

/// <summary>
/// Runs plans (SPEC §5) on the daemon: carries out <see cref="PlanEngine"/>'s decisions (typed submissions, checked as
/// the native door checks envelopes, straight to <see cref="Engine.SubmitAsync"/>; gate checks, stop and block),
/// learns outcomes from <c>task.finished</c> events, and stores the state after every change. One per daemon; every change goes through
/// one loop (one message at a time), so the state needs no lock; readers see the last <see cref="PlanRun"/> stored
/// in <see cref="Get"/>. A restart calls <see cref="PlanEngine.Decide"/> on the stored state, never
/// <see cref="PlanEngine.Begin"/>: nothing that finished runs again.
/// </summary>
public sealed class PlanRunner : IAsyncDisposable
{
    public const string PhaseTopic = "plan.phase";
    public const string GateTopic = "gate.result";
    private const int TailChars = 4000;
    private const double DefaultCheckTimeoutSeconds = 600;


    private readonly SparkyDaemon _d;
    private readonly ConcurrentDictionary<string, PlanRun> _plans = new(StringComparer.Ordinal);
    /// <summary>Plan task ids → where they belong, while their workstream runs. Written by the loop, read by the event
    /// filter on publishers' threads.</summary>
    private readonly ConcurrentDictionary<string, TaskRef> _tasks = new(StringComparer.Ordinal);
    /// <summary>The running gate of each plan, to stop its checks when the plan is deleted.</summary>
    private readonly ConcurrentDictionary<string, CancellationTokenSource> _gates = new(StringComparer.Ordinal);
    private readonly Channel<Func<Task>> _inbox = Channel.CreateUnbounded<Func<Task>>(new UnboundedChannelOptions { SingleReader = true });
    private readonly EventHub.Subscription _sub;
    private readonly Microsoft.Extensions.Logging.ILogger _log;
    private readonly CancellationTokenSource _stop = new();
    private Task? _loop, _pump;

    private sealed record TaskRef(string Plan, string Phase, string Workstream, int Attempt, IReadOnlyList<string> AllIds);

    public PlanRunner(SparkyDaemon d)
    {
        _d = d;
        _log = Microsoft.Extensions.Logging.LoggerFactoryExtensions.CreateLogger<PlanRunner>(d.Logs);
        // Subscribed before the engine starts: no end is missed, even one recovery finds.
        // Only plan tasks' ends: the loop is not woken for every other task the daemon runs.
        _sub = d.Events.Subscribe(100_000, e => e.Topic == SparkyEvent.TaskFinished && (string?)e.Body["id"] is { } id && _tasks.ContainsKey(id));
        Load(); // before the engine is ready (and /readyz says so): GET /api/v1/plans/{name} finds every stored plan
    }

    private string DataDir => _d.Config.DataDir;

    /// <summary>Loads the stored plans and resumes the running ones; then follows task ends.</summary>
    public void Start()
    {
        _inbox.Writer.TryWrite(RecoverAsync);
        _loop = Task.Run(LoopAsync);
        _pump = Task.Run(async () =>
        {
            try
            {
                await foreach (var e in _sub.Reader.ReadAllAsync(_stop.Token))
                    if ((string?)e.Body["id"] is { } id) _inbox.Writer.TryWrite(() => TaskEndedAsync(id));
            }
            catch (OperationCanceledException) { }
        });
    }

    private async Task LoopAsync()
    {
        await foreach (var work in _inbox.Reader.ReadAllAsync())
        {
            try { await work(); }
            catch (Exception e) { PlansLog.StepFailed(_log, e); }
        }
    }

    private Task<T> Post<T>(Func<Task<T>> work)
    {
        var tcs = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        if (!_inbox.Writer.TryWrite(async () =>
            {
                try { tcs.TrySetResult(await work()); }
                catch (Exception e) { tcs.TrySetException(e); }
            }))
            tcs.TrySetResult(default!);
        return tcs.Task;
    }

    // ---------- reads ----------

    public PlanRun? Get(string name) => _plans.GetValueOrDefault(name);

    public IReadOnlyList<PlanRun> All() => _plans.Values.OrderBy(p => p.Name, StringComparer.Ordinal).ToList();

    /// <summary>One line per plan for <c>GET /api/v1/plans</c>.</summary>
    public static JsonObject Summary(PlanRun r) => new()
    {
        ["name"] = r.Name,
        ["status"] = PlanJson.Name(r.Status),
        ["current_phase"] = PlanEngine.Decide(r.Plan, r.State).CurrentPhase,
        ["waiting"] = PlanJson.Waiting(r.Plan, r.State),
        ["updated_at"] = r.UpdatedAt,
    };

    /// <summary>The report tree (<see cref="PlanJson.Report"/>) with what the daemon knows: each task's id, state,
    /// attempts, duration and reason, where the plan file lives.</summary>
    public JsonObject Report(PlanRun r)
    {
        var report = PlanJson.Report(r.Plan, r.State);
        // The runner's status, not the engine's reading of the state: "stopped" only once the later phases are blocked.
        report["status"] = PlanJson.Name(r.Status);
        report["path"] = r.Path;
        report["base_dir"] = r.BaseDir;
        report["vars"] = VarsJson(r.Vars);
        report["updated_at"] = r.UpdatedAt;
        long now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var phases = (JsonArray)report["phases"]!;
        // Every task node with its envelope first, then their tasks in one read: the CLI asks for this every 300 ms.
        var nodes = new List<(JsonObject Node, TaskEnvelope Envelope)>();
        for (int k = 0; k < r.Plan.Phases.Count; k++)
        {
            var phase = r.Plan.Phases[k];
            var wsNodes = (JsonArray)phases[k]!["workstreams"]!;
            for (int i = 0; i < phase.Workstreams.Count; i++)
            {
                var ws = phase.Workstreams[i];
                var rec = r.State.Of(phase.Name, ws.Name);
                if (rec.Attempt == 0 || rec.Hash != ws.Hash) continue;
                var envelopes = PlanEnvelopes.For(r.Plan, phase, ws, rec.Attempt, r.BaseDir);
                var taskNodes = (JsonArray)wsNodes[i]!["tasks"]!;
                for (int j = 0; j < envelopes.Count && j < taskNodes.Count; j++)
                    nodes.Add((taskNodes[j]!.AsObject(), envelopes[j]));
            }
        }
        if (nodes.Count == 0) return report;
        var tasks = _d.Store.Briefs(nodes.SelectMany(n => n.Envelope.TaskIds).ToList());
        foreach (var (node, envelope) in nodes)
        {
            var elements = envelope.TaskIds.Select(id => tasks.GetValueOrDefault(id)).ToList();
            node["id"] = envelope.Id;
            if (elements.Count == 1) Describe(node, elements[0], now, Unstored(envelope.TaskIds[0], elements[0]));
            else
            {
                var arr = new JsonArray();
                foreach (var (e, id) in elements.Zip(envelope.TaskIds))
                {
                    var o = new JsonObject { ["id"] = id };
                    Describe(o, e, now, Unstored(id, e));
                    arr.Add((JsonNode)o);
                }
                node["elements"] = arr;
                var states = elements.Select(e => e?.State).ToList();
                node["state"] = states.Any(s => s is null || !s.Value.IsTerminal()) ? (states.Any(s => s == TaskState.Running) ? "running" : "queued")
                    : states.All(s => s == TaskState.Succeeded) ? "succeeded" : "failed";
            }
        }
        return report;
    }

    /// <param name="progress">The task's progress where it is newer than the stored one.</param>
    private static void Describe(JsonObject node, TaskBrief? t, long now, string? progress)
    {
        if (t is null) { node["state"] = "not_submitted"; return; }
        node["state"] = t.State.Name();
        node["attempts"] = t.Attempts;
        node["reason"] = t.Reason;
        node["exit_code"] = t.ExitCode;
        node["started_at"] = t.StartedAt;
        node["finished_at"] = t.FinishedAt;
        node["duration_seconds"] = t.StartedAt is { } s ? Math.Round(((t.FinishedAt ?? now) - s) / 1000.0, 3) : null;
        if ((progress ?? t.ProgressJson) is { } p) node["progress"] = JsonNode.Parse(p);
    }

    private string? Unstored(string id, TaskBrief? t) => t is null ? null : _d.Progress.Unstored(TaskId.Parse(id), t.State);

    // ---------- starting ----------

    /// <summary>What <see cref="StartAsync"/> answers: 202 with the name, or 400/409 with every problem, one per line.</summary>
    public sealed record StartResult(int Status, string? Name, string? Detail, IReadOnlyList<string> Errors);

    /// <summary>Parses and checks a plan, begins a run (resuming what is kept) and stores it before anything is submitted.</summary>
    /// <param name="vars">Values for the plan's <c>${name}</c>s, over its own <c>vars:</c>.</param>
    public Task<StartResult> StartAsync(string text, string? path, string? baseDir, string? fromPhase, IReadOnlyDictionary<string, string>? vars = null)
    {
        var file = path is { Length: > 0 } ? System.IO.Path.GetFileName(path) : "plan.yaml";
        vars ??= new Dictionary<string, string>();
        var parsed = PlanFile.Parse(text, path ?? file, vars);
        if (!parsed.Ok) return Task.FromResult(Bad(parsed.Errors.Select(e => e.ToString()).ToList()));
        var plan = parsed.Plan!;
        var errors = new List<string>();
        var known = _d.Engine.KnownClasses;
        foreach (var phase in plan.Phases)
            foreach (var ws in phase.Workstreams)
                foreach (var t in ws.Tasks)
                    if (t.Options.Class is { } cls && !known.Contains(cls))
                        errors.Add($"{path ?? file}:{t.Pos}: unknown class '{cls}' (known: {string.Join(", ", known.Order())})");
        var dir = baseDir ?? (path is { Length: > 0 } && System.IO.Path.IsPathRooted(path) ? System.IO.Path.GetDirectoryName(path) : null);
        if (dir is null || !System.IO.Path.IsPathRooted(dir)) errors.Add("base_dir must be an absolute path (the plan file's folder)");
        if (fromPhase is not null && plan.IndexOf(fromPhase) < 0)
            errors.Add($"no phase named '{fromPhase}' (phases: {string.Join(", ", plan.Phases.Select(p => p.Name))})");
        if (errors.Count > 0) return Task.FromResult(Bad(errors));

        return Post(async () =>
        {
            var stored = _plans.GetValueOrDefault(plan.Name);
            if (stored is { Status: PlanStatus.Running })
                return new StartResult(409, plan.Name, $"plan '{plan.Name}' is already running (at phase {PlanEngine.Decide(stored.Plan, stored.State).CurrentPhase})", []);
            var state = PlanEngine.Begin(plan, stored?.State ?? FreshAttempts(plan, dir!), fromPhase);
            var run = new PlanRun(plan.Name, plan, state, PlanStatus.Running, text, path, dir!, Now()) { Vars = vars };
            // Still-running workstreams kept by Begin: their tasks' ends must find them.
            foreach (var phase in plan.Phases)
                foreach (var ws in phase.Workstreams)
                    if (state.Of(phase.Name, ws.Name) is { Status: WorkstreamStatus.Running } r) Track(run, phase, ws, r.Attempt);
            if (!await SaveAsync(run)) return new StartResult(503, plan.Name, "the store is unavailable", []);
            await DriveAsync(run.Name);
            return new StartResult(202, plan.Name, null, []);
        });

        static StartResult Bad(IReadOnlyList<string> errors) => new(400, null, string.Join('\n', errors), errors);
    }

    // ---------- deleting ----------

    /// <summary>What <see cref="DeleteAsync"/> answers: 200 with how many tasks it cancelled, 404, or 503.</summary>
    public sealed record DeleteResult(int Status, int Cancelled = 0, string? Detail = null);

    /// <summary>
    /// Stops a plan and forgets it: cancels its queued and running tasks and its running gate, removes its stored row
    /// and its report. Its tasks stay in the task list, as every task does. A later <c>plan run</c> of the same file
    /// starts from nothing, with fresh task ids.
    /// </summary>
    public Task<DeleteResult> DeleteAsync(string name) => Post(async () =>
    {
        if (_plans.GetValueOrDefault(name) is not { } run) return new DeleteResult(404, Detail: $"no plan '{name}'");
        // Forgotten first: if the store cannot do it, nothing is cancelled and the plan goes on.
        var w = await _d.Store.DeletePlanAsync(name);
        if (w.Status != WriteStatus.Ok) return new DeleteResult(503, Detail: $"the store is unavailable: {w.Detail}");
        _plans.TryRemove(name, out _);
        if (_gates.TryRemove(name, out var gate)) { gate.Cancel(); gate.Dispose(); }
        // Its tasks: those of the workstreams that run (whether or not the map still has them), and any the map holds.
        var ids = new HashSet<string>(_tasks.Where(kv => kv.Value.Plan == name).Select(kv => kv.Key), StringComparer.Ordinal);
        foreach (var phase in run.Plan.Phases)
            foreach (var ws in phase.Workstreams)
                if (run.State.Of(phase.Name, ws.Name) is { Status: WorkstreamStatus.Running } r && r.Hash == ws.Hash && run.State.WaitOf(phase.Name, ws.Name) is null)
                    ids.UnionWith(PlanEnvelopes.For(run.Plan, phase, ws, r.Attempt, run.BaseDir).SelectMany(e => e.TaskIds));
        int cancelled = 0;
        foreach (var id in ids)
        {
            _tasks.TryRemove(id, out _);
            if (TaskId.TryParse(id, out var tid) && await _d.Engine.CancelAsync(tid) == CommandOutcome.Done) cancelled++;
        }
        try { Directory.Delete(System.IO.Path.Combine(DataDir, "plans", name), recursive: true); }
        catch (DirectoryNotFoundException) { }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { PlansLog.ReportNotRemoved(_log, name, e.Message); }
        return new DeleteResult(200, cancelled);
    });

    // ---------- the loop's work ----------

    private void Load()
    {
        foreach (var row in _d.Store.LoadPlans())
        {
            PlanState state;
            Dictionary<string, string> vars;
            try
            {
                var stored = JsonNode.Parse(row.StateJson);
                state = PlanJson.ReadState(stored);
                vars = ReadVars(stored);
            }
            catch (Exception e) when (e is FormatException or System.Text.Json.JsonException) { PlansLog.StoredVarsUnreadable(_log, row.Name, e.Message); continue; }
            var parsed = PlanFile.Parse(row.Text, row.Path ?? "plan.yaml", vars);
            if (!parsed.Ok) { PlansLog.StoredPlanInvalid(_log, row.Name, parsed.Errors[0].ToString()); continue; }
            var status = Enum.TryParse<PlanStatus>(row.Status, true, out var s) ? s : PlanStatus.Stopped;
            var run = new PlanRun(row.Name, parsed.Plan!, state, status, row.Text, row.Path, row.BaseDir ?? DataDir, row.UpdatedAt) { Vars = vars };
            _plans[run.Name] = run;
        }
    }

    private async Task RecoverAsync()
    {
        foreach (var run in _plans.Values.Where(r => r.Status == PlanStatus.Running).ToList())
        {
            // One plan that cannot be resumed (an unreadable store row) must not keep the others from resuming.
            try { await ResumeAsync(run); }
            catch (Exception e) { PlansLog.CannotResume(_log, run.Name, e.Message); }
        }
    }

    /// <summary>Resumes one plan: its workstreams that ended while the daemon was down, its gate if one was running.</summary>
    private async Task ResumeAsync(PlanRun run)
    {
        var current = run;
        foreach (var phase in run.Plan.Phases)
        {
            foreach (var ws in phase.Workstreams)
            {
                var r = current.State.Of(phase.Name, ws.Name);
                if (r.Status != WorkstreamStatus.Running || r.Hash != ws.Hash) continue;
                var envelopes = Track(current, phase, ws, r.Attempt);
                var first = TaskId.Parse(envelopes[0].TaskIds[0]);
                if (_d.Store.StateOf(first) is null)
                {
                    // Stored as running, but the daemon stopped before the submission (or while it waited to submit):
                    // submit it now (same ids).
                    current = await SubmitWorkstreamAsync(current, phase, ws, r.Attempt);
                    continue;
                }
                // Ended while the daemon was down?
                if (OutcomeOf(envelopes.SelectMany(e => e.TaskIds).ToList()) is { } o)
                {
                    current = Update(current, current.State.Finished(phase.Name, ws.Name, r.Attempt, o.Ok, o.Reason));
                    Untrack(envelopes.SelectMany(e => e.TaskIds));
                }
            }
            if (current.State.GateOf(phase.Name) is { Status: GateStatus.Running } g && g.Key == phase.GateKey)
                StartGate(current, phase);
        }
        await SaveAsync(current);
        await DriveAsync(current.Name);
    }

    private async Task TaskEndedAsync(string id)
    {
        if (!_tasks.TryGetValue(id, out var t) || _plans.GetValueOrDefault(t.Plan) is not { } run) return;
        var rec = run.State.Of(t.Phase, t.Workstream);
        if (rec.Status != WorkstreamStatus.Running || rec.Attempt != t.Attempt) return;
        if (OutcomeOf(t.AllIds) is not { } o) return;
        var next = Update(run, run.State.Finished(t.Phase, t.Workstream, t.Attempt, o.Ok, o.Reason));
        Untrack(t.AllIds);
        await SaveAsync(next);
        await DriveAsync(next.Name);
    }

    private async Task GateDoneAsync(string name, string phaseName, string key, IReadOnlyList<CheckResult> results)
    {
        if (_plans.GetValueOrDefault(name) is not { } run || run.Plan.FindPhase(phaseName) is not { } phase || phase.GateKey != key) return;
        if (_gates.TryGetValue(name, out var cts) && _gates.TryRemove(new KeyValuePair<string, CancellationTokenSource>(name, cts))) cts.Dispose();
        if (run.State.GateOf(phaseName) is not { Status: GateStatus.Running } g || g.Key != key) return;
        var state = run.State.GateFinished(phase, results);
        var rec = state.GateOf(phaseName);
        // The gate's result first, then the phase it decided (passed or failed).
        _d.Events.Publish(new SparkyEvent(GateTopic, Now(), new JsonObject
        {
            ["plan"] = name,
            ["phase"] = phaseName,
            ["passed"] = rec.Status == GateStatus.Passed,
            ["reason"] = rec.Reason,
            ["checks"] = new JsonArray(results.Select((r, i) => (JsonNode?)new JsonObject
            {
                ["check"] = i < phase.Gate.Count ? phase.Gate[i].Describe() : null,
                ["passed"] = r.Passed,
                ["output"] = r.Output,
            }).ToArray()),
        }));
        var next = Update(run, state);
        await SaveAsync(next);
        await DriveAsync(name);
    }

    /// <summary>Carries out the engine's decisions until it waits for an outcome, succeeds or stops.</summary>
    private async Task DriveAsync(string name)
    {
        for (int guard = 0; guard < 1000; guard++)
        {
            if (_plans.GetValueOrDefault(name) is not { } run) return; // deleted
            var step = PlanEngine.Decide(run.Plan, run.State);
            var state = run.State;
            foreach (var decision in step.Decisions) state = state.Apply(run.Plan, decision);
            var status = step.Status;
            if (step.Decisions.Count == 0 && status == run.Status) return;
            run = Update(run, state, status);
            await SaveAsync(run);
            // Cancels whatever the status: a plan that stops cancels the work it no longer needs.
            foreach (var c in step.Decisions.OfType<CancelWorkstream>()) await CancelTasksAsync(name, c.Phase, c.Workstream, c.Attempt);
            if (status != PlanStatus.Running) return;

            bool changed = false;
            foreach (var decision in step.Decisions)
            {
                switch (decision)
                {
                    case SubmitWorkstream s:
                        // Refused for good: the workstream failed, so decide again. Refused for now: it waits.
                        if (await SubmitWorkstreamAsync(_plans[name], s.Phase, s.Workstream, s.Attempt) is var after
                            && after.State.Of(s.Phase.Name, s.Workstream.Name).Status != WorkstreamStatus.Running)
                            changed = true;
                        break;
                    case RunGate g:
                        StartGate(run, g.Phase);
                        break;
                }
            }
            if (!changed) return;
            await SaveAsync(_plans[name]);
        }
    }

    /// <summary>Cancels the tasks of one submission of a workstream: the task map knows them (for a superseded spec,
    /// only it does: <see cref="PlanEnvelopes.For"/> would need the workstream as it was).</summary>
    private async Task CancelTasksAsync(string plan, string phase, string workstream, int attempt)
    {
        foreach (var (id, _) in _tasks.Where(kv => kv.Value.Plan == plan && kv.Value.Phase == phase && kv.Value.Workstream == workstream && kv.Value.Attempt == attempt).ToList())
        {
            if (TaskId.TryParse(id, out var tid)) await _d.Engine.CancelAsync(tid);
            _tasks.TryRemove(id, out _);
        }
    }

    /// <summary>
    /// Submits a running workstream's tasks. Refused for now (429: the daemon's queue is full; 503: its store is
    /// unavailable), the workstream stays running, waits (<see cref="PlanState.WaitingToSubmit"/>) and is tried again
    /// after a bounded backoff; refused for good (a bad spec, or more tasks than the queue ever holds), it failed.
    /// </summary>
    private async Task<PlanRun> SubmitWorkstreamAsync(PlanRun run, Phase phase, Workstream ws, int attempt)
    {
        var envelopes = Track(run, phase, ws, attempt);
        var (outcome, status, why) = await SubmitAsync(envelopes);
        var current = _plans.GetValueOrDefault(run.Name) ?? run;
        switch (outcome)
        {
            case Submitted.Yes:
                return current.State.WaitOf(phase.Name, ws.Name) is null ? current : Update(current, current.State.Submitted(phase.Name, ws.Name));
            case Submitted.No:
                Untrack(envelopes.SelectMany(e => e.TaskIds));
                return Update(current, current.State.Finished(phase.Name, ws.Name, attempt, false, why));
            default:
            {
                var before = current.State.WaitOf(phase.Name, ws.Name);
                int tries = (before?.Tries ?? 0) + 1;
                var delay = SubmitWait.Delay(tries, status == 429 ? Commands.QueueFullRetryAfterSeconds : null);
                long now = Now();
                var wait = new SubmitWait(attempt, status, why!, before?.Since ?? now, now + (long)delay.TotalMilliseconds, tries);
                var next = Update(current, current.State.WaitingToSubmit(phase.Name, ws.Name, wait));
                _ = RetryLaterAsync(run.Name, phase.Name, ws.Name, attempt, delay);
                return next;
            }
        }
    }

    private async Task RetryLaterAsync(string plan, string phase, string workstream, int attempt, TimeSpan delay)
    {
        try { await Task.Delay(delay, _stop.Token); }
        catch (OperationCanceledException) { return; }
        _inbox.Writer.TryWrite(() => RetrySubmitAsync(plan, phase, workstream, attempt));
    }

    /// <summary>A waiting workstream's next try, if it still waits: not if the plan was deleted or stopped, the
    /// workstream cancelled, or its spec replaced since.</summary>
    private async Task RetrySubmitAsync(string name, string phaseName, string wsName, int attempt)
    {
        if (_plans.GetValueOrDefault(name) is not { Status: PlanStatus.Running } run) return;
        if (run.Plan.FindPhase(phaseName) is not { } phase || phase.Workstreams.FirstOrDefault(w => w.Name == wsName) is not { } ws) return;
        if (run.State.WaitOf(phaseName, wsName) is not { } wait || wait.Attempt != attempt || run.State.Of(phaseName, wsName).Hash != ws.Hash) return;
        var next = await SubmitWorkstreamAsync(run, phase, ws, attempt);
        if (next.State.Of(phaseName, wsName).Status == WorkstreamStatus.Running) return;
        await SaveAsync(next);
        await DriveAsync(name);
    }

    private enum Submitted { Yes, No, NotNow }

    /// <summary>Yes when submitted (or already there: a 409 after a crash); NotNow, with the status, when the daemon
    /// refuses it for now; No, with why, when it never will.</summary>
    private async Task<(Submitted Outcome, int Status, string? Why)> SubmitAsync(IReadOnlyList<TaskEnvelope> envelopes)
    {
        var subs = envelopes.Select(e => e.Submission).ToList();
        if (PlanEnvelopes.Refusal(envelopes, _d.Engine.KnownClasses) is { } error) return (Submitted.No, 400, $"submission refused (400): {error}");
        long adding = subs.Sum(s => (long)(s.Array?.Count ?? 1));
        return await _d.Engine.SubmitAsync(subs) switch
        {
            SubmitOutcome.Accepted or SubmitOutcome.Conflict => (Submitted.Yes, 200, null),
            // Waiting would not help: this workstream alone is more than the queue ever holds.
            SubmitOutcome.QueueFull q when adding > q.Bound => (Submitted.No, 429,
                $"submission refused (429): the workstream adds {adding} tasks, more than the queue's bound of {q.Bound} (SPARKY_MAX_QUEUED)"),
            SubmitOutcome.QueueFull q => (Submitted.NotNow, 429,
                $"the daemon's queue is full: it holds {q.Queued} tasks and this workstream adds {adding}, over its bound of {q.Bound} (SPARKY_MAX_QUEUED)"),
            SubmitOutcome.Unavailable u => (Submitted.NotNow, 503, $"the daemon cannot take tasks now: {u.Reason}"),
            SubmitOutcome.Invalid i => (Submitted.No, 400, $"submission refused (400): {i.Reason}"),
            var other => (Submitted.No, 500, $"submission refused: {other}"),
        };
    }

    private void Untrack(IEnumerable<string> ids)
    {
        foreach (var id in ids) _tasks.TryRemove(id, out _);
    }

    /// <summary>
    /// The state a plan with nothing stored starts from: each workstream's attempt counter past the ids already in the
    /// store. A plan deleted and run again under its name has the same hashes, so its first attempt would get the ids
    /// of the deleted run's tasks (ended, or cancelled by the delete) and take them for its own.
    /// </summary>
    private PlanState FreshAttempts(Plan plan, string baseDir)
    {
        var state = PlanState.Empty;
        var open = plan.Phases.SelectMany(p => p.Workstreams.Select(w => (Phase: p, W: w))).ToList();
        for (int attempt = 1; open.Count > 0 && attempt < 1000; attempt++)
        {
            var first = open.ToDictionary(x => PlanEnvelopes.For(plan, x.Phase, x.W, attempt, baseDir)[0].TaskIds[0], x => x, StringComparer.Ordinal);
            var taken = _d.Store.Briefs(first.Keys.ToList());
            if (taken.Count == 0) break;
            foreach (var id in taken.Keys)
                state = state.With(first[id].Phase.Name, first[id].W.Name, new WorkstreamRecord(WorkstreamStatus.NotStarted, null, attempt));
            open = first.Where(kv => taken.ContainsKey(kv.Key)).Select(kv => kv.Value).ToList();
        }
        return state;
    }

    private IReadOnlyList<TaskEnvelope> Track(PlanRun run, Phase phase, Workstream ws, int attempt)
    {
        var envelopes = PlanEnvelopes.For(run.Plan, phase, ws, attempt, run.BaseDir);
        var all = envelopes.SelectMany(e => e.TaskIds).ToList();
        var r = new TaskRef(run.Name, phase.Name, ws.Name, attempt, all);
        foreach (var id in all) _tasks[id] = r;
        return envelopes;
    }

    /// <summary>The workstream's outcome from the store: null while a task has not ended (or is not there).</summary>
    private (bool Ok, string? Reason)? OutcomeOf(IReadOnlyList<string> ids)
    {
        var records = new List<(string Id, TaskState State)>();
        foreach (var id in ids)
        {
            // The first one not ended answers "not yet": an array's ends don't each read every element.
            if (_d.Store.StateOf(TaskId.Parse(id)) is not { } s || !s.IsTerminal()) return null;
            records.Add((id, s));
        }
        var ok = PlanEngine.Outcome(records.Select(r => r.State));
        if (ok is null) return null;
        if (ok.Value) return (true, null);
        var bad = records.First(r => r.State != TaskState.Succeeded);
        var why = _d.Store.Get(TaskId.Parse(bad.Id))?.Reason;
        return (false, $"task {bad.Id} {bad.State.Name()}" + (why is { Length: > 0 } ? $" ({why})" : ""));
    }

    // ---------- gates ----------

    private void StartGate(PlanRun run, Phase phase)
    {
        // What a task gets: the daemon's environment without its own settings (the token is a secret), then the plan's.
        var env = new Dictionary<string, string>(_d.Engine.BaseEnvironment, StringComparer.Ordinal);
        foreach (var (k, v) in run.Plan.Env) env[k] = v;
        // Marked as this daemon's (attempt 0 of "gate:…", never a task id): a restarted daemon ends a check the dead
        // one left running before it runs the gate again, and a timed-out check's children in sessions of their own go too.
        var contain = _d.Engine.Containment;
        var marker = $"gate:{run.Name}:{phase.Name}";
        contain.Mark(env, marker, 0);
        var baseDir = run.BaseDir;
        var key = phase.GateKey;
        // One gate runs per plan at a time; deleting the plan cancels it (and kills its check).
        var cts = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
        if (_gates.TryRemove(run.Name, out var old)) { old.Cancel(); old.Dispose(); }
        _gates[run.Name] = cts;
        var token = cts.Token;
        _ = Task.Run(async () =>
        {
            var results = new List<CheckResult>();
            foreach (var check in phase.Gate)
            {
                CheckResult r;
                try { r = await RunCheckAsync(check, env, baseDir, token); }
                catch (OperationCanceledException) { return; }
                catch (Exception e) { r = new CheckResult(false, e.Message); }
                finally { contain.Signal(marker, 0, Sparky.Execution.Processes.Signals.Kill); } // what the check left behind
                results.Add(r);
                if (!r.Passed) break;
            }
            _inbox.Writer.TryWrite(() => GateDoneAsync(run.Name, phase.Name, key, results));
        });
    }

    private static async Task<CheckResult> RunCheckAsync(GateCheck check, IReadOnlyDictionary<string, string> env, string baseDir, CancellationToken ct)
    {
        switch (check)
        {
            case MetricCheck m:
            {
                var file = System.IO.Path.GetFullPath(m.File, baseDir);
                string? text = File.Exists(file) ? await File.ReadAllTextAsync(file, ct) : null;
                return Gates.EvaluateMetric(m, text);
            }
            case FileCheck f:
            {
                var info = new FileInfo(System.IO.Path.GetFullPath(f.Path, baseDir));
                return Gates.EvaluateFile(f, info.Exists, info.Exists ? info.Length : 0);
            }
            case RunCheck r:
                return await RunProcessAsync(r, env, baseDir, ct);
            default:
                return new CheckResult(false, $"unknown check {check.GetType().Name}");
        }
    }

    private static async Task<CheckResult> RunProcessAsync(RunCheck r, IReadOnlyDictionary<string, string> env, string baseDir, CancellationToken ct)
    {
        var psi = new ProcessStartInfo { WorkingDirectory = baseDir, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (r.Shell is { } sh) { psi.FileName = "/bin/sh"; psi.ArgumentList.Add("-c"); psi.ArgumentList.Add(sh); }
        else
        {
            var argv = r.Argv ?? [];
            if (argv.Count == 0) return new CheckResult(false, "empty command");
            psi.FileName = argv[0];
            foreach (var a in argv.Skip(1)) psi.ArgumentList.Add(a);
        }
        psi.Environment.Clear();
        foreach (var (k, v) in env) psi.Environment[k] = v;
        var output = new StringBuilder();
        void Append(string? line)
        {
            if (line is null) return;
            lock (output)
            {
                output.Append(line).Append('\n');
                if (output.Length > 4 * TailChars) output.Remove(0, output.Length - TailChars);
            }
        }
        using var p = new Process { StartInfo = psi };
        p.OutputDataReceived += (_, e) => Append(e.Data);
        p.ErrorDataReceived += (_, e) => Append(e.Data);
        try { p.Start(); }
        catch (Exception e) when (e is System.ComponentModel.Win32Exception or InvalidOperationException)
        {
            return new CheckResult(false, $"cannot start {psi.FileName}: {e.Message}");
        }
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(TimeSpan.FromSeconds(r.TimeoutSeconds ?? DefaultCheckTimeoutSeconds));
        bool timedOut = false;
        try { await p.WaitForExitAsync(timeout.Token); }
        catch (OperationCanceledException)
        {
            try { p.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
            if (ct.IsCancellationRequested) throw;
            timedOut = true;
        }
        if (!timedOut) p.WaitForExit(); // the output's last lines
        string tail;
        lock (output) tail = output.Length > TailChars ? output.ToString(output.Length - TailChars, TailChars) : output.ToString();
        return Gates.FromRun(timedOut ? -1 : p.ExitCode, tail.TrimEnd(), timedOut);
    }

    // ---------- state, events, report ----------

    /// <summary>Replaces the plan's state (and status); publishes <c>plan.phase</c> for every phase whose status changed.</summary>
    private PlanRun Update(PlanRun run, PlanState state, PlanStatus? status = null)
    {
        var next = run with { State = state, Status = status ?? run.Status, UpdatedAt = Now() };
        bool phaseChanged = false;
        foreach (var phase in run.Plan.Phases)
        {
            var before = PlanEngine.StatusOf(run.Plan, run.State, phase);
            var after = PlanEngine.StatusOf(next.Plan, next.State, phase);
            if (before == after) continue;
            phaseChanged = true;
            string? what = after switch
            {
                PhaseStatus.Running => "started",
                PhaseStatus.Gating => "gating",
                PhaseStatus.Passed => "passed",
                PhaseStatus.Failed => "failed",
                PhaseStatus.Blocked => "blocked",
                _ => null,
            };
            if (what is null) continue;
            _d.Events.Publish(new SparkyEvent(PhaseTopic, next.UpdatedAt, new JsonObject
            {
                ["plan"] = run.Name,
                ["phase"] = phase.Name,
                ["status"] = what,
                ["reason"] = next.State.BlockedPhases.GetValueOrDefault(phase.Name) ?? (what == "failed" ? PlanEngine.Decide(next.Plan, next.State).Decisions.OfType<PlanStopped>().FirstOrDefault()?.Reason : null),
            }));
        }
        // The report file first: whoever sees the new state through the API finds the file already written.
        if (phaseChanged || next.Status != run.Status) WriteReport(next);
        _plans[run.Name] = next;
        return next;
    }

    private async Task<bool> SaveAsync(PlanRun run)
    {
        _plans[run.Name] = run;
        var state = PlanJson.State(run.State);
        // Beside the engine's state (whose reader ignores it); a row written before vars existed has none.
        if (run.Vars.Count > 0) state["vars"] = VarsJson(run.Vars);
        var row = new PlanRow(run.Name, run.Path, run.BaseDir, run.Text, PlanJson.Name(run.Status), state.ToJsonString(), run.UpdatedAt);
        var w = await _d.Store.UpsertPlanAsync(row);
        if (w.Status != WriteStatus.Ok) PlansLog.NotStored(_log, run.Name, w.Detail);
        return w.Status == WriteStatus.Ok;
    }

    private void WriteReport(PlanRun run)
    {
        try
        {
            var dir = System.IO.Path.Combine(DataDir, "plans", run.Name);
            Directory.CreateDirectory(dir);
            var tmp = System.IO.Path.Combine(dir, "report.json.tmp");
            File.WriteAllText(tmp, Report(run).ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
            File.Move(tmp, System.IO.Path.Combine(dir, "report.json"), overwrite: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            PlansLog.ReportNotWritten(_log, run.Name, e.Message);
        }
    }

    private static long Now() => DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();

    private static JsonObject VarsJson(IReadOnlyDictionary<string, string> vars)
    {
        var o = new JsonObject();
        foreach (var (k, v) in vars.OrderBy(kv => kv.Key, StringComparer.Ordinal)) o[k] = v;
        return o;
    }

    /// <exception cref="FormatException">A <c>vars</c> that is not an object of strings.</exception>
    private static Dictionary<string, string> ReadVars(JsonNode? stored)
    {
        var vars = new Dictionary<string, string>(StringComparer.Ordinal);
        if (stored?["vars"] is not { } node) return vars;
        if (node is not JsonObject o) throw new FormatException("stored vars are not an object");
        foreach (var (k, v) in o)
            vars[k] = v is JsonValue jv && jv.TryGetValue<string>(out var s) ? s : throw new FormatException($"stored var '{k}' is not a string");
        return vars;
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _sub.Dispose();
        _inbox.Writer.TryComplete();
        if (_pump is not null) await _pump;
        if (_loop is not null) await _loop;
    }
}
