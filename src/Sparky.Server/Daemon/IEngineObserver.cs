namespace Sparky.Server.Daemon;

/// <summary>What the engine tells its one observer (the daemon's metrics) as it happens, on its loop: a call each, cheap.</summary>
public interface IEngineObserver
{
    /// <summary>A task's first attempt started, <paramref name="seconds"/> after it was submitted.</summary>
    void QueueWait(string cls, double seconds);
    /// <summary>A task reached its end (<paramref name="outcome"/>: succeeded, failed, cancelled) after running
    /// <paramref name="seconds"/> (0 for one that ended without running).</summary>
    void TaskCompleted(string cls, string outcome, double seconds);
    void SlurmJobSubmitted();
    /// <summary><paramref name="outcome"/>: one of <c>SparkyMetrics.SlurmOutcomes</c>.</summary>
    void SlurmJobCompleted(string outcome);
    void SlurmPollError();
    /// <summary>Workers connected now, after one joined or left.</summary>
    void WorkerCount(int count);
    /// <summary>A worker was declared lost (silent past worker_timeout, left mid-task, or misbehaving).</summary>
    void WorkerLost();

    /// <summary>Observes nothing: an engine without metrics (tests).</summary>
    public static readonly IEngineObserver None = new Nobody();

    private sealed class Nobody : IEngineObserver
    {
        public void QueueWait(string cls, double seconds) { }
        public void TaskCompleted(string cls, string outcome, double seconds) { }
        public void SlurmJobSubmitted() { }
        public void SlurmJobCompleted(string outcome) { }
        public void SlurmPollError() { }
        public void WorkerCount(int count) { }
        public void WorkerLost() { }
    }
}
