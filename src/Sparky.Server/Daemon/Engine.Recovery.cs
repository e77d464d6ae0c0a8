using Sparky.Core.Lifecycle;
using Sparky.Core.Tasks;
using Sparky.Server.Executors;

namespace Sparky.Server.Daemon;

public sealed partial class Engine
{

    /// <summary>
    /// Rebuilds the scheduler from the store. Each attempt recorded as running goes to its class's executor, which
    /// follows it again (a process still running under its shim, a Slurm job, a worker's task) or says how it ended: a
    /// process without a shim is killed (so it never runs twice) and its attempt counts as lost, retried under the
    /// task's policy. A task the dead daemon had started but not yet recorded is found by the marker in its environment.
    /// Those ends are recorded once every process the dead daemon left has been ended.
    /// </summary>
    private void Recover()
    {
        var now = _clock.GetUtcNow();
        long unfinished = _store.Counters.Total(TaskState.Queued) + _store.Counters.Total(TaskState.Running);
        var toEnd = new List<(Attempt, RecoveredEnd)>();
        if (unfinished > 0)
        {
            _scheduler.EnsureCapacity((int)Math.Min(unfinished, int.MaxValue / 2));
            _local.BeginRecovery();
        }
        foreach (var t in unfinished == 0 ? [] : _store.ReadUnfinished())
        {
            _seq = Math.Max(_seq, t.Seq);
            var executor = ExecutorOf(t.Class);
            if (t.State == TaskState.Queued)
            {
                _local.RecoverQueued(t.Id); // a process of it runs only if a dead daemon started it without recording that
                if (executor != _local) executor.RecoverQueued(t.Id);
                Add(t.Id, t.Class, t.After, t.Asks, now);
                continue;
            }
            var a = t.LastAttempt;
            var spec = _store.SpecOf(t.Id)?.Spec;
            int n = a?.N ?? t.Attempts;
            // Followed again with the stop stored before the restart: a cancel acknowledged then still ends it cancelled.
            var life = _lives[t.Id] = TaskLife.Recovered(t.Id, t.Retries, n, executor.KillsAfterGrace, StopReasons.Of(a?.EndedAt is null ? a?.Reason : null));
            var run = new Attempt
            {
                Id = t.Id, Class = t.Class, N = n, Life = life, StartedAt = a?.StartedAt ?? now.ToUnixTimeMilliseconds(),
                Place = Placement.NotStarted, StdoutPath = LogPath(t.Id, a?.N ?? t.Attempts, false),
                DoneFile = spec?.DoneFile == true, Outputs = spec?.Outputs, Cwd = spec?.Cwd, MemoryMb = spec?.MemoryMb ?? 0,
            };
            // Its dependencies come first in seq order: one still running was added above, and is linked to it.
            _scheduler.AddRunning(t.Id, t.Class, t.Seq, LocalRequest(t.Class, t.Asks), executor == _local ? _local.RecoveredGpus(t.Id) : null,
                t.After.Count == 0 ? null : t.After.Where(_scheduler.Contains).ToList());
            _running[t.Id] = run;
            Follower.Began(t.Id, n, t.Class, run.StdoutPath);
            if (executor.Recover(run, spec, a, now) is { } end) toEnd.Add((run, end));
        }
        // Before any retry or new start: every process the dead daemon left is ended, but the re-attached attempts'.
        _local.EndRecovery();
        _handlers.RemoveStalePayloadFiles(_running.Values.Select(r => r.PayloadFile).OfType<string>().ToHashSet(StringComparer.Ordinal));
        foreach (var (run, end) in toEnd) Ended(run, end.Exit, end.Reason, now);
    }
}
