using Sparky.Core.Tasks;

namespace Sparky.Core.Lifecycle;

/// <summary>
/// A task's life from its first start to its end, apart from any I/O (as HyperQueue's reactor): the engine hands it an
/// event with the time (<see cref="Handle"/>), it changes its state and puts what must follow into an outbox of
/// effects (a start, a signal, a store write with its event, a retry), which the engine carries out in order. Which
/// stop wins, what an exit means, the retry and lost-worker budgets, backoff, timeouts, kill graces, adopt deadlines and
/// cancels are decided here and tested with a fake clock; the engine only hosts them.
/// </summary>
public sealed class TaskLife
{
    private bool _killAfterGrace;
    /// <summary>While <see cref="LifePhase.Ending"/>: what the exit said, settled once its executor let go.</summary>
    private (TaskState Outcome, string? Reason, AttemptExit Exit) _ending;

    /// <param name="attempts">Attempts it has had so far (a replay, or a task the store says was started before).</param>
    public TaskLife(TaskId id, int retries, int attempts = 0)
    {
        Id = id;
        Retries = retries;
        Attempt = attempts;
    }

    /// <summary>After a restart: attempt <paramref name="attempt"/>, which the store says runs, is followed again.
    /// <paramref name="stop"/>: the stop the store recorded for it before the restart (<see cref="Effect.RecordStop"/>).</summary>
    public static TaskLife Recovered(TaskId id, int retries, int attempt, bool killAfterGrace, StopReason stop = StopReason.None) =>
        new(id, retries, attempt) { Phase = LifePhase.Running, _killAfterGrace = killAfterGrace, Stop = stop };

    public TaskId Id { get; }
    public int Retries { get; }
    /// <summary>The number of its current (or last) attempt; 1 for the first.</summary>
    public int Attempt { get; private set; }
    /// <summary>Requeues after a lost worker so far, which use no retry (up to <see cref="AttemptEnd.MaxLostRequeues"/>).</summary>
    public int LostRequeues { get; private set; }
    public LifePhase Phase { get; private set; }
    /// <summary>Its outcome, once <see cref="LifePhase.Ended"/>.</summary>
    public TaskState? Outcome { get; private set; }
    /// <summary>When it may start again, while it waits out a retry's backoff.</summary>
    public DateTimeOffset? RetryAt { get; private set; }
    /// <summary>Why its running attempt is being stopped, if it is: decides how its end is recorded.</summary>
    public StopReason Stop { get; private set; }
    public DateTimeOffset? Deadline { get; private set; }
    /// <summary>When the SIGKILL owed after a stop's grace falls due.</summary>
    public DateTimeOffset? KillAt { get; private set; }
    /// <summary>When a recovered worker attempt is given up as lost if its worker has not come back.</summary>
    public DateTimeOffset? AdoptBy { get; private set; }

    /// <summary>When <see cref="Handle"/> must next be called with <see cref="LifeEvent.Tick"/>, or null.</summary>
    public DateTimeOffset? NextTimer
    {
        get
        {
            if (Phase != LifePhase.Running) return null;
            var next = AttemptTimers.Next(Deadline, KillAt, Stop);
            return AdoptBy is { } a && (next is null || a < next) ? a : next;
        }
    }

    /// <summary>Takes <paramref name="e"/> at <paramref name="ctx"/>'s time and adds what must follow to <paramref name="outbox"/>.
    /// An event that no longer applies (an exit of an attempt that ended, a cancel of a task that ended) changes nothing.</summary>
    public void Handle(LifeEvent e, in LifeContext ctx, List<Effect> outbox)
    {
        switch (e)
        {
            case LifeEvent.Begin begin: Begin(begin, outbox); break;
            case LifeEvent.UnderWay way when Phase == LifePhase.Running:
                Deadline = Deadlines.After(way.Since ?? ctx.Now, way.TimeoutSeconds);
                // Recovered with a stop stored before the restart: the dead daemon's signal may never have gone, and the
                // kill owed after it went with that daemon.
                if (Stop != StopReason.None) Terminate(ctx, outbox);
                break;
            case LifeEvent.AwaitingWorker awaiting when Phase == LifePhase.Running: AdoptBy = awaiting.By; break;
            case LifeEvent.Exited exited when Phase == LifePhase.Running: Exit(exited.Exit, exited.UnderShim, outbox); break;
            case LifeEvent.Released released when Phase == LifePhase.Ending: Settle(released.OutOfMemory, ctx, outbox); break;
            case LifeEvent.Refused refused when Phase == LifePhase.Waiting: EndUnstarted(TaskState.Failed, refused.Reason, outbox); break;
            case LifeEvent.Cancel cancel: Cancel(cancel.Withdrawn, ctx, outbox); break;
            case var _ when e == LifeEvent.DependencyFailed: DependencyFailed(outbox); break;
            case var _ when e == LifeEvent.Adopted && Phase == LifePhase.Running && AdoptBy is not null:
                AdoptBy = null;
                // Stopped (timed out, cancelled) while its worker was away: the signal it could not be sent goes now.
                if (Stop != StopReason.None) Terminate(ctx, outbox);
                break;
            case var _ when e == LifeEvent.Tick && Phase == LifePhase.Running: Tick(ctx, outbox); break;
        }
    }

    private void Begin(LifeEvent.Begin begin, List<Effect> outbox)
    {
        if (Phase != LifePhase.Waiting) throw new InvalidOperationException($"task {Id} cannot begin an attempt while {Phase}");
        Attempt++;
        Phase = LifePhase.Running;
        (RetryAt, Stop, Deadline, KillAt, AdoptBy, _killAfterGrace) = (null, StopReason.None, null, null, null, begin.KillAfterGrace);
        outbox.Add(new Effect.Start(Attempt));
    }

    private void Exit(AttemptExit exit, bool underShim, List<Effect> outbox)
    {
        _ending = AttemptEnd.Outcome(Stop, exit, underShim);
        Phase = LifePhase.Ending;
        (Deadline, KillAt, AdoptBy) = (null, null, null);
        outbox.Add(new Effect.Release(Failed: _ending.Outcome != TaskState.Succeeded));
    }

    private void Settle(bool outOfMemory, in LifeContext ctx, List<Effect> outbox)
    {
        var (outcome, reason, exit) = _ending;
        var end = AttemptEnd.Settle(outcome, reason, Stop, outOfMemory, Attempt, Retries, LostRequeues, ctx.Policy, ctx.Jitter, ctx.Now);
        LostRequeues = end.LostRequeues;
        outbox.Add(new Effect.RecordEnd(Attempt, outcome, end.Reason, exit, end.RetryAt));
        if (end.RetryAt is { } at)
        {
            (Phase, RetryAt) = (LifePhase.Waiting, at);
            outbox.Add(new Effect.Requeue(at));
        }
        else
        {
            (Phase, Outcome) = (LifePhase.Ended, outcome);
            outbox.Add(new Effect.Finish(outcome));
        }
    }

    /// <summary>A task that runs no attempt ends here, recorded from queued.</summary>
    private void EndUnstarted(TaskState outcome, string reason, List<Effect> outbox)
    {
        (Phase, Outcome, RetryAt) = (LifePhase.Ended, outcome, null);
        outbox.Add(new Effect.EndUnstarted(outcome, reason));
    }

    private void Cancel(Withdrawn withdrawn, in LifeContext ctx, List<Effect> outbox)
    {
        if (Phase == LifePhase.Waiting || Phase == LifePhase.Running && withdrawn == Withdrawn.Unstarted)
        {
            // Queued, in its backoff, or never given to a worker: nothing runs, so it ends now.
            EndUnstarted(TaskState.Cancelled, Reasons.Cancelled, outbox);
            return;
        }
        if (Phase != LifePhase.Running || !TryStop(StopReason.Cancel, outbox)) return;
        // Recorded as started, but on no worker now: there is nothing to signal, and it ends here.
        if (withdrawn == Withdrawn.Started) Exit(new AttemptExit(null, null, Reasons.Cancelled), underShim: false, outbox);
        else Terminate(ctx, outbox);
    }

    private void DependencyFailed(List<Effect> outbox)
    {
        if (Phase == LifePhase.Waiting) EndUnstarted(TaskState.Failed, Reasons.DependencyFailed, outbox);
        // A Slurm job held on a dependency that will never succeed: taken away at once; it ends as dependency_failed.
        else if (Phase == LifePhase.Running && TryStop(StopReason.DependencyFailed, outbox)) outbox.Add(new Effect.Signal(StopSignal.Kill));
    }

    private void Tick(in LifeContext ctx, List<Effect> outbox)
    {
        if (AdoptBy is { } by && by <= ctx.Now)
        {
            // Its worker never came back after the restart: what became of it is not known, and it is queued again.
            Exit(new AttemptExit(null, null, Reasons.WorkerLost), underShim: false, outbox);
            return;
        }
        var stop = Stop;
        var killAt = KillAt;
        var due = AttemptTimers.Due(Deadline, ref killAt, ref stop, ctx.Now);
        KillAt = killAt;
        if (stop != Stop) TryStop(stop, outbox);
        if (due.HasFlag(TimerDue.Terminate)) Terminate(ctx, outbox);
        else if (due.HasFlag(TimerDue.Kill)) outbox.Add(new Effect.Signal(StopSignal.Kill));
    }

    /// <summary>SIGTERM now, and SIGKILL after the grace where its executor owes one.</summary>
    private void Terminate(in LifeContext ctx, List<Effect> outbox)
    {
        outbox.Add(new Effect.Signal(StopSignal.Term));
        if (_killAfterGrace) KillAt = ctx.Now + ctx.KillGrace;
    }

    /// <summary>Stops the attempt for <paramref name="why"/> unless a stop that stands is in force, and stores it.</summary>
    private bool TryStop(StopReason why, List<Effect> outbox)
    {
        var stop = Stop;
        if (!AttemptEnd.TryStop(ref stop, why)) return false;
        Stop = stop;
        outbox.Add(new Effect.RecordStop(Attempt, why));
        return true;
    }
}
