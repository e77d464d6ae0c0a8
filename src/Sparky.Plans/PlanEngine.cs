using System.Collections.Immutable;
using Sparky.Core.Tasks;

namespace Sparky.Plans;

public enum WorkstreamStatus { NotStarted, Running, Succeeded, Failed, Blocked }

public enum GateStatus { NotRun, Running, Passed, Failed }

public enum PlanStatus { Running, Succeeded, Stopped }

public readonly record struct WorkstreamKey(string Phase, string Workstream);

/// <summary>What the store keeps for a workstream. <see cref="Hash"/> is the spec it ran (or runs) with;
/// <see cref="Attempt"/> counts its submissions (0: never), which keeps task ids of a re-run fresh.</summary>
public sealed record WorkstreamRecord(WorkstreamStatus Status, string? Hash = null, int Attempt = 0, string? Reason = null)
{
    public static readonly WorkstreamRecord None = new(WorkstreamStatus.NotStarted);
}

/// <summary>What the store keeps for a phase's gate; a pass counts only under the phase's current <see cref="Phase.GateKey"/>.</summary>
public sealed record GateRecord(GateStatus Status, string? Key = null, IReadOnlyList<CheckResult>? Results = null, string? Reason = null)
{
    public static readonly GateRecord None = new(GateStatus.NotRun);
}

/// <summary>
/// A running workstream whose submission the daemon refused for now: 429 (its queue is full) or 503 (its store is
/// unavailable). It stays pending and is submitted again at <see cref="RetryAt"/> (unix ms); <see cref="Tries"/> counts
/// the refusals since <see cref="Since"/>.
/// </summary>
public sealed record SubmitWait(int Attempt, int Status, string Reason, long Since, long RetryAt, int Tries)
{
    public const double FirstDelaySeconds = 0.5;
    /// <summary>The bound on the wait between two tries: a queue that drains is noticed within it.</summary>
    public const double MaxDelaySeconds = 30;

    /// <summary>How long to wait after the <paramref name="tries"/>-th refusal (1, 2, …): doubling from half a second
    /// up to <see cref="MaxDelaySeconds"/>, and never less than the daemon's <paramref name="retryAfterSeconds"/>.</summary>
    public static TimeSpan Delay(int tries, double? retryAfterSeconds = null)
    {
        double backoff = Math.Min(MaxDelaySeconds, FirstDelaySeconds * Math.Pow(2, Math.Clamp(tries - 1, 0, 30)));
        return TimeSpan.FromSeconds(Math.Max(backoff, Math.Min(retryAfterSeconds ?? 0, MaxDelaySeconds)));
    }
}

/// <summary>A plan's stored state: one record per workstream and gate, by name. Immutable; each change gives a new one.</summary>
public sealed record PlanState
{
    public ImmutableDictionary<WorkstreamKey, WorkstreamRecord> Workstreams { get; init; } = ImmutableDictionary<WorkstreamKey, WorkstreamRecord>.Empty;
    public ImmutableDictionary<string, GateRecord> Gates { get; init; } = ImmutableDictionary<string, GateRecord>.Empty;
    /// <summary>Phases that will not run in this run, and why (a phase before them stopped the plan).</summary>
    public ImmutableDictionary<string, string> BlockedPhases { get; init; } = ImmutableDictionary<string, string>.Empty;

    /// <summary>Running workstreams not submitted yet (<see cref="SubmitWait"/>). Not stored: after a restart the
    /// daemon submits every running workstream whose tasks it does not have, which finds out again.</summary>
    public ImmutableDictionary<WorkstreamKey, SubmitWait> Waiting { get; init; } = ImmutableDictionary<WorkstreamKey, SubmitWait>.Empty;

    public static readonly PlanState Empty = new();

    /// <summary>Why the workstream's current submission waits, or null when it does not (submitted, or not running).</summary>
    public SubmitWait? WaitOf(string phase, string workstream) =>
        Waiting.TryGetValue(new WorkstreamKey(phase, workstream), out var w) && Of(phase, workstream) is { Status: WorkstreamStatus.Running } r && r.Attempt == w.Attempt
            ? w : null;

    /// <summary>The daemon refused the running workstream's submission for now: it waits (see <see cref="SubmitWait"/>).</summary>
    public PlanState WaitingToSubmit(string phase, string workstream, SubmitWait wait) =>
        Of(phase, workstream) is { Status: WorkstreamStatus.Running } r && r.Attempt == wait.Attempt
            ? this with { Waiting = Waiting.SetItem(new WorkstreamKey(phase, workstream), wait) } : this;

    /// <summary>The workstream's tasks are with the daemon: it no longer waits.</summary>
    public PlanState Submitted(string phase, string workstream) =>
        this with { Waiting = Waiting.Remove(new WorkstreamKey(phase, workstream)) };

    public WorkstreamRecord Of(string phase, string workstream) =>
        Workstreams.GetValueOrDefault(new WorkstreamKey(phase, workstream)) ?? WorkstreamRecord.None;

    public GateRecord GateOf(string phase) => Gates.GetValueOrDefault(phase) ?? GateRecord.None;

    public PlanState With(string phase, string workstream, WorkstreamRecord record) =>
        this with { Workstreams = Workstreams.SetItem(new WorkstreamKey(phase, workstream), record) };

    public PlanState WithGate(string phase, GateRecord record) => this with { Gates = Gates.SetItem(phase, record) };

    /// <summary>Records what a decision starts: a submission (running), a gate run (running), a block, a cancel that
    /// ends a workstream (one given a reason).</summary>
    public PlanState Apply(Plan plan, PlanDecision decision) => decision switch
    {
        SubmitWorkstream s => With(s.Phase.Name, s.Workstream.Name, new(WorkstreamStatus.Running, s.Workstream.Hash, s.Attempt)).Submitted(s.Phase.Name, s.Workstream.Name),
        RunGate g => WithGate(g.Phase.Name, new(GateStatus.Running, g.Phase.GateKey)),
        Block b => Blocked(plan, b),
        CancelWorkstream { Reason: { } why } c => Cancelled(c, why),
        _ => this,
    };

    /// <summary>A workstream cancelled because its phase failed: failed with the reason, or, if it was never
    /// submitted (it waited), not started; the next run submits it again either way.</summary>
    private PlanState Cancelled(CancelWorkstream c, string reason)
    {
        var r = Of(c.Phase, c.Workstream);
        if (r.Status != WorkstreamStatus.Running || r.Attempt != c.Attempt) return this;
        var status = WaitOf(c.Phase, c.Workstream) is null ? WorkstreamStatus.Failed : WorkstreamStatus.NotStarted;
        return With(c.Phase, c.Workstream, r with { Status = status, Reason = reason }).Submitted(c.Phase, c.Workstream);
    }

    /// <summary>A workstream's tasks all ended. An outcome for another attempt than the one running (a late
    /// event from a superseded submission) changes nothing.</summary>
    public PlanState Finished(string phase, string workstream, int attempt, bool succeeded, string? reason = null)
    {
        var r = Of(phase, workstream);
        if (r.Status != WorkstreamStatus.Running || r.Attempt != attempt) return this;
        return With(phase, workstream, r with { Status = succeeded ? WorkstreamStatus.Succeeded : WorkstreamStatus.Failed, Reason = succeeded ? null : reason })
            .Submitted(phase, workstream);
    }

    /// <summary>A gate's checks all ran (in order, one result each).</summary>
    public PlanState GateFinished(Phase phase, IReadOnlyList<CheckResult> results)
    {
        int failed = results.ToList().FindIndex(r => !r.Passed);
        if (failed < 0)
            return WithGate(phase.Name, results.Count == phase.Gate.Count
                ? new(GateStatus.Passed, phase.GateKey, results)
                : new(GateStatus.Failed, phase.GateKey, results, $"{results.Count} of {phase.Gate.Count} checks ran"));
        var check = failed < phase.Gate.Count ? phase.Gate[failed] : null;
        var label = check?.Name ?? check?.Describe() ?? $"check {failed + 1}";
        var last = results[failed].Output.TrimEnd().Split('\n').Last();
        var reason = $"check {failed + 1} ({label}) failed" + (last.Length > 0 ? $": {last}" : "");
        return WithGate(phase.Name, new(GateStatus.Failed, phase.GateKey, results, reason));
    }

    private PlanState Blocked(Plan plan, Block b)
    {
        var s = this with { BlockedPhases = BlockedPhases.SetItem(b.Phase, b.Reason) };
        if (plan.FindPhase(b.Phase) is not { } phase) return s;
        foreach (var w in phase.Workstreams)
        {
            var r = s.Of(phase.Name, w.Name);
            // A success still valid is kept: blocking says "not run this time", not "undo".
            if (r.Status is WorkstreamStatus.Succeeded or WorkstreamStatus.Running) continue;
            s = s.With(phase.Name, w.Name, r with { Status = WorkstreamStatus.Blocked, Reason = b.Reason });
        }
        return s;
    }
}

/// <summary>What the plan engine asks for next. The integrator carries each out and records it in <see cref="PlanState"/>.</summary>
public abstract record PlanDecision;

/// <summary>Submit every task of the workstream (<see cref="PlanEnvelopes.For"/> with this attempt), then record it running.</summary>
public sealed record SubmitWorkstream(Phase Phase, Workstream Workstream, int Attempt) : PlanDecision;

/// <summary>Cancel the tasks of a submission: a superseded one (the spec changed while it ran; no
/// <see cref="Reason"/>: a new submission follows), or one its failed phase no longer needs (with the
/// <see cref="Reason"/> the workstream ends with).</summary>
public sealed record CancelWorkstream(string Phase, string Workstream, string Hash, int Attempt, string? Reason = null) : PlanDecision;

/// <summary>Run the phase's gate checks in order, then <see cref="PlanState.GateFinished"/>.</summary>
public sealed record RunGate(Phase Phase) : PlanDecision;

/// <summary>A later phase will not run in this run.</summary>
public sealed record Block(string Phase, string Reason) : PlanDecision;

public sealed record PlanSucceeded : PlanDecision;

/// <summary>The plan stopped at <see cref="Phase"/>: a workstream failed (after its retries) or the gate failed.</summary>
public sealed record PlanStopped(string Phase, string Reason) : PlanDecision;

/// <summary>The engine's answer: where the plan stands, which phase it is at (null once it succeeded) and what to do now.
/// No decisions while running means: wait for the next outcome.</summary>
public sealed record PlanStep(PlanStatus Status, string? CurrentPhase, IReadOnlyList<PlanDecision> Decisions);

public enum PhaseStatus { Pending, Running, Gating, Passed, Failed, Blocked }

/// <summary>
/// The plan engine's decisions, pure: no I/O, no clock. <see cref="Begin"/> once per <c>plan run</c> (its result is
/// stored), then <see cref="Decide"/> after every change until the plan succeeds or stops. A daemon that restarts
/// mid-run calls only <see cref="Decide"/> on the stored state, so nothing that finished runs again.
/// </summary>
public static class PlanEngine
{
    /// <summary>
    /// The state a new run starts from: a success whose hash is unchanged is kept (not run again); everything else
    /// starts over: failed, blocked, never run, changed (a change also changes the hash of every later workstream).
    /// A gate's pass is kept only where every workstream of its phase is. <paramref name="fromPhase"/> forces that
    /// phase and all after it to run again. Running workstreams are left as they are (their tasks still run).
    /// </summary>
    /// <exception cref="ArgumentException">No phase is named <paramref name="fromPhase"/>.</exception>
    public static PlanState Begin(Plan plan, PlanState stored, string? fromPhase = null)
    {
        int from = int.MaxValue;
        if (fromPhase is not null)
        {
            from = plan.IndexOf(fromPhase);
            if (from < 0) throw new ArgumentException($"no phase named '{fromPhase}' (phases: {string.Join(", ", plan.Phases.Select(p => p.Name))})", nameof(fromPhase));
        }
        var state = PlanState.Empty;
        for (int k = 0; k < plan.Phases.Count; k++)
        {
            var phase = plan.Phases[k];
            bool allKept = true;
            foreach (var w in phase.Workstreams)
            {
                var r = stored.Of(phase.Name, w.Name);
                bool keep = r.Status == WorkstreamStatus.Running
                    || (k < from && r.Status == WorkstreamStatus.Succeeded && r.Hash == w.Hash);
                allKept &= keep && r.Status == WorkstreamStatus.Succeeded;
                state = state.With(phase.Name, w.Name, keep ? r : new WorkstreamRecord(WorkstreamStatus.NotStarted, r.Hash, r.Attempt));
            }
            var g = stored.GateOf(phase.Name);
            if (k < from && allKept && g.Status == GateStatus.Passed && g.Key == phase.GateKey) state = state.WithGate(phase.Name, g);
        }
        return state;
    }

    public static PlanStep Decide(Plan plan, PlanState state)
    {
        for (int k = 0; k < plan.Phases.Count; k++)
        {
            var phase = plan.Phases[k];
            var submits = new List<PlanDecision>();
            var failed = new List<(Workstream W, WorkstreamRecord R)>();
            var running = new List<(Workstream W, WorkstreamRecord R)>();
            foreach (var w in phase.Workstreams)
            {
                var r = state.Of(phase.Name, w.Name);
                bool same = r.Hash == w.Hash;
                switch (r.Status)
                {
                    case WorkstreamStatus.Succeeded when same:
                        break;
                    case WorkstreamStatus.Running when same:
                        running.Add((w, r));
                        break;
                    case WorkstreamStatus.Running:
                        submits.Add(new CancelWorkstream(phase.Name, w.Name, r.Hash!, r.Attempt));
                        submits.Add(new SubmitWorkstream(phase, w, r.Attempt + 1));
                        break;
                    case WorkstreamStatus.Failed when same:
                        if (w.OnFailure == OnFailure.Stop) failed.Add((w, r));
                        break;
                    default:
                        submits.Add(new SubmitWorkstream(phase, w, r.Attempt + 1));
                        break;
                }
            }
            if (failed.Count > 0)
            {
                var reason = failed.Count == 1
                    ? $"workstream '{failed[0].W.Name}' failed" + (failed[0].R.Reason is { Length: > 0 } why ? $": {why}" : "")
                    : $"workstreams {string.Join(", ", failed.Select(f => $"'{f.W.Name}'"))} failed";
                // The phase cannot pass any more. What it no longer needs is cancelled now: a sibling whose failure
                // would not count (on_failure: continue) and one the daemon has not taken yet (it waits to be
                // submitted). Submitted siblings that must succeed finish first: their results count on the next run.
                var mustFinish = running.Where(x => x.W.OnFailure == OnFailure.Stop && state.WaitOf(phase.Name, x.W.Name) is null).ToList();
                var cancels = running.Except(mustFinish)
                    .Select(x => (PlanDecision)new CancelWorkstream(phase.Name, x.W.Name, x.R.Hash!, x.R.Attempt, $"cancelled: {reason}"))
                    .ToList();
                if (mustFinish.Count > 0) return new PlanStep(PlanStatus.Running, phase.Name, cancels);
                return Stop(plan, k, reason, cancels);
            }
            if (submits.Count > 0 || running.Count > 0) return new PlanStep(PlanStatus.Running, phase.Name, submits);
            if (phase.Gate.Count == 0) continue;

            var g = state.GateOf(phase.Name);
            if (g.Key == phase.GateKey)
            {
                if (g.Status == GateStatus.Passed) continue;
                if (g.Status == GateStatus.Running) return new PlanStep(PlanStatus.Running, phase.Name, []);
                if (g.Status == GateStatus.Failed) return Stop(plan, k, $"the gate of phase '{phase.Name}' failed: {g.Reason}");
            }
            return new PlanStep(PlanStatus.Running, phase.Name, [new RunGate(phase)]);
        }
        return new PlanStep(PlanStatus.Succeeded, null, [new PlanSucceeded()]);
    }

    private static PlanStep Stop(Plan plan, int k, string reason, IReadOnlyList<PlanDecision>? cancels = null)
    {
        var phase = plan.Phases[k].Name;
        var decisions = new List<PlanDecision> { new PlanStopped(phase, reason) };
        for (int j = k + 1; j < plan.Phases.Count; j++)
            decisions.Add(new Block(plan.Phases[j].Name, $"phase '{phase}' stopped the plan: {reason}"));
        decisions.AddRange(cancels ?? []);
        return new PlanStep(PlanStatus.Stopped, phase, decisions);
    }

    /// <summary>A phase as <c>plan status</c> shows it.</summary>
    public static PhaseStatus StatusOf(Plan plan, PlanState state, Phase phase)
    {
        if (state.BlockedPhases.ContainsKey(phase.Name)) return PhaseStatus.Blocked;
        var records = phase.Workstreams.Select(w => (W: w, R: state.Of(phase.Name, w.Name))).ToList();
        bool Current((Workstream W, WorkstreamRecord R) x) => x.R.Hash == x.W.Hash;
        if (records.Any(x => Current(x) && x.R.Status == WorkstreamStatus.Failed && x.W.OnFailure == OnFailure.Stop)) return PhaseStatus.Failed;
        var g = state.GateOf(phase.Name);
        bool gateCurrent = g.Key == phase.GateKey;
        if (gateCurrent && g.Status == GateStatus.Failed) return PhaseStatus.Failed;
        bool allEnded = records.All(x => Current(x) && (x.R.Status == WorkstreamStatus.Succeeded || x.R.Status == WorkstreamStatus.Failed));
        if (allEnded && (phase.Gate.Count == 0 || (gateCurrent && g.Status == GateStatus.Passed))) return PhaseStatus.Passed;
        if (gateCurrent && g.Status == GateStatus.Running) return PhaseStatus.Gating;
        if (records.Any(x => Current(x) && x.R.Status is WorkstreamStatus.Running or WorkstreamStatus.Succeeded or WorkstreamStatus.Failed)) return PhaseStatus.Running;
        return PhaseStatus.Pending;
    }

    /// <summary>A workstream's outcome from its tasks' states (array elements included): null while any has not
    /// ended, then true only if all succeeded.</summary>
    public static bool? Outcome(IEnumerable<TaskState> tasks)
    {
        bool ok = true;
        foreach (var s in tasks)
        {
            if (!s.IsTerminal()) return null;
            ok &= s == TaskState.Succeeded;
        }
        return ok;
    }
}
