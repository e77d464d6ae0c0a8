using Sparky.Core.Scheduling;
using Sparky.Core.Tasks;
using Sparky.Core.Workers;
using Sparky.Execution.Processes;
using Sparky.Server.Executors;
using Sparky.Server.Executors.Workers;
using Sparky.Store.Sqlite;

namespace Sparky.Server.Daemon;

public sealed partial class Engine
{
    /// <summary>
    /// The worker executor's face to the engine: attempts of worker classes wait for a worker's credit and run on it
    /// (see Engine.Workers.cs for the sessions, credits and messages behind it, and Engine.Pilots.cs for pilots).
    /// </summary>
    private sealed class WorkerDoor(Engine e) : IExecutor
    {
        /// <summary>Waits for a worker's credit; recorded as started once a worker takes it.</summary>
        public void Start(Attempt run, TaskSpec spec, Allocation allocation, DateTimeOffset now)
        {
            run.Place = new WorkerPlacement(null, null, 0, null, spec, WholeGpus(spec, spec.Class));
            e._awaitingWorker.Add(run);
            e.Dispatch(now);
        }

        /// <summary>A worker attempt is told to stop; its end comes back as a <c>finished</c>.</summary>
        public bool Stop(Attempt run, int signal)
        {
            e.SignalWorkerTask(run, signal);
            return signal != Signals.Kill;
        }

        /// <summary>Its worker's slot comes back; its usage is what the worker's cgroups reported. Its outputs are seen
        /// where its worker writes on the daemon's file system (a pilot, or the same host) and its paths can be resolved.</summary>
        public Released Release(Attempt run, bool failed, AttemptUsage reported)
        {
            var worker = run.Place is WorkerPlacement wp ? e._workers.Get(wp.Session) : null;
            if (worker is not null) e._workers.Release(worker, run.Id);
            return new Released(reported, run.Outputs is { Count: > 0 } outputs ? OutputsUnseen(run, outputs, worker?.Info) : null);
        }

        private static string? OutputsUnseen(Attempt run, IReadOnlyList<DeclaredOutput> outputs, WorkerInfo? worker)
        {
            if (worker is null) return "its worker is gone; where it ran is not known";
            bool sameFiles = worker.Pilot is not null || string.Equals(worker.Host, Environment.MachineName, StringComparison.OrdinalIgnoreCase);
            if (!sameFiles) return $"it ran on worker '{worker.Name}' on host {worker.Host}, whose files the daemon cannot see";
            // A worker's relative working directory is from its own, which the daemon does not know.
            if ((run.Cwd is null || !Path.IsPathRooted(run.Cwd)) && outputs.Any(o => !Path.IsPathRooted(o.Path)))
                return $"it ran on worker '{worker.Name}' without an absolute working directory, so its relative paths are not known here";
            return null;
        }

        public void Settled(Attempt run, Task<WriteResult> endWrite, bool final) { }

        public void EndedUnstarted(TaskId id, Task<WriteResult> write) { }

        public void RecoverQueued(TaskId id) { }

        /// <summary>After a restart: an attempt a worker was running is followed again if that worker says hello in time.</summary>
        public RecoveredEnd? Recover(Attempt run, TaskSpec? spec, AttemptRecord? a, DateTimeOffset now)
        {
            // A worker hears nothing for one timeout before it says hello again; give it two.
            run.Place = new WorkerPlacement(null, a?.Host, 0, AdoptBy: now + 2 * e._config.WorkerTimeout, spec, WholeGpus(spec, run.Class));
            run.Deadline = Deadlines.After(DateTimeOffset.FromUnixTimeMilliseconds(run.StartedAt), spec?.TimeoutSeconds);
            e._awaitingAdoption++;
            return null;
        }

        /// <summary>Its timers (silent workers, adoption deadlines) run in <see cref="CheckWorkers"/>.</summary>
        public void Tick(DateTimeOffset now) { }

        public DateTimeOffset? NextWake(DateTimeOffset now) => null;
    }
}
