using Prometheus;
using Sparky.Core.Tasks;
using Sparky.Store.Sqlite;

namespace Sparky.Server.Metrics;

/// <summary>
/// The Prometheus view. Counts come from the store's counters at scrape time (so they are right
/// after a restart); durations and waits are observed as they happen. No label ever holds a task id.
/// </summary>
public sealed class SparkyMetrics : Daemon.IEngineObserver
{
    public CollectorRegistry Registry { get; } = Prometheus.Metrics.NewCustomRegistry();

    /// <summary>
    /// The outcomes a Slurm job can end with. Each series starts at 0 so that rate() and increase() count the
    /// first job (a series that appears at 1 loses it); prometheus-net declares the family even without them.
    /// </summary>
    public static readonly string[] SlurmOutcomes = ["succeeded", "failed", "cancelled", "timeout"];

    private readonly Gauge _queueDepth, _running, _limit, _workers;
    /// <summary>The replaced orchestrator's names, kept so its dashboards and alerts read Sparky unchanged: sums over
    /// every class, without labels, as it had one queue.</summary>
    private readonly Gauge _envQueueDepth, _orchestratorLimit, _orchestratorInflight;
    private readonly Counter _submitted, _completed;
    private readonly Histogram _duration, _wait;
    private readonly Gauge _gpuUtilization, _gpuMemoryUsed, _gpuMemoryTotal;
    private readonly Counter _slurmSubmitted, _slurmCompleted, _slurmPollErrors, _workersLost;
    private readonly object _gpuLock = new();
    private HashSet<string> _gpus = [];

    private static readonly double[] DurationBuckets = [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, 14400, 86400];
    private static readonly double[] WaitBuckets = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 60, 300, 3600];

    /// <param name="dataDir">The daemon's data dir: the free and total space of its file system (where the store and
    /// the task logs are) are read at each scrape.</param>
    public SparkyMetrics(Counters counters, Func<IEnumerable<string>> classes, Func<string, int> limit, Func<int>? logReaders = null,
        string? dataDir = null)
    {
        var f = Prometheus.Metrics.WithCustomRegistry(Registry);
        var readers = f.CreateGauge("sparky_log_readers", "Pollers of followed task logs running now: one per log, however many follow it.");
        _queueDepth = f.CreateGauge("sparky_queue_depth", "Tasks queued, by class.", "class");
        _running = f.CreateGauge("sparky_tasks_running", "Tasks running, by class.", "class");
        _limit = f.CreateGauge("sparky_concurrency_limit", "Concurrency limit in force, by class.", "class");
        _workers = f.CreateGauge("sparky_workers_connected", "Remote workers connected.");
        _submitted = f.CreateCounter("sparky_tasks_submitted_total", "Tasks submitted, by class.", "class");
        _completed = f.CreateCounter("sparky_tasks_completed_total", "Tasks finished, by class and outcome.", "class", "outcome");
        _duration = f.CreateHistogram("sparky_task_duration_seconds", "Run time of finished attempts that ended their task.",
            new HistogramConfiguration { LabelNames = ["class"], Buckets = DurationBuckets });
        _wait = f.CreateHistogram("sparky_queue_wait_seconds", "Time from submission to first start.",
            new HistogramConfiguration { LabelNames = ["class"], Buckets = WaitBuckets });
        _gpuUtilization = f.CreateGauge("sparky_gpu_utilization_ratio", "GPU utilization, 0 to 1, by GPU index or UUID.", "gpu");
        _gpuMemoryUsed = f.CreateGauge("sparky_gpu_memory_used_bytes", "GPU memory in use, by GPU index or UUID.", "gpu");
        _gpuMemoryTotal = f.CreateGauge("sparky_gpu_memory_total_bytes", "GPU memory in all, by GPU index or UUID.", "gpu");
        _slurmSubmitted = f.CreateCounter("sparky_slurm_jobs_submitted_total", "Slurm jobs submitted.");
        _slurmCompleted = f.CreateCounter("sparky_slurm_jobs_completed_total", "Slurm jobs finished, by outcome.", "outcome");
        _slurmPollErrors = f.CreateCounter("sparky_slurm_poll_errors_total", "Failed polls of Slurm (squeue/sacct).");
        _workersLost = f.CreateCounter("sparky_workers_lost_total", "Workers declared lost: silent past worker_timeout, gone mid-task, or misbehaving.");
        var diskFree = f.CreateGauge("sparky_data_disk_free_bytes", "Free space (for the daemon's user) on the file system of the data dir: the store and the task logs.");
        var diskTotal = f.CreateGauge("sparky_data_disk_total_bytes", "Size of the file system of the data dir.");
        _envQueueDepth = f.CreateGauge("env_queue_depth", "Tasks queued in all classes (the replaced orchestrator's name for the sum of sparky_queue_depth).");
        _orchestratorLimit = f.CreateGauge("orchestrator_concurrency_limit", "Concurrency limits of all classes together (the replaced orchestrator's name for the sum of sparky_concurrency_limit).");
        _orchestratorInflight = f.CreateGauge("orchestrator_inflight_tasks", "Tasks running in all classes (the replaced orchestrator's name for the sum of sparky_tasks_running).");
        _workers.Set(0);
        foreach (var o in SlurmOutcomes) _slurmCompleted.WithLabels(o);

        Registry.AddBeforeCollectCallback(() =>
        {
            long queued = 0, running = 0, limits = 0;
            foreach (var cls in classes().Concat(counters.Classes).Distinct())
            {
                long q = counters.Get(cls, TaskState.Queued), r = counters.Get(cls, TaskState.Running);
                int l = limit(cls);
                (queued, running, limits) = (queued + q, running + r, limits + l);
                _queueDepth.WithLabels(cls).Set(q);
                _running.WithLabels(cls).Set(r);
                _limit.WithLabels(cls).Set(l);
                long all = 0;
                foreach (var s in Enum.GetValues<TaskState>()) all += counters.Get(cls, s);
                _submitted.WithLabels(cls).IncTo(all);
                foreach (var s in new[] { TaskState.Succeeded, TaskState.Failed, TaskState.Cancelled })
                    _completed.WithLabels(cls, s.Name()).IncTo(counters.Get(cls, s));
            }
            readers.Set(logReaders?.Invoke() ?? 0);
            if (dataDir is not null && DiskSpace(dataDir) is var (free, total))
            {
                diskFree.Set(free);
                diskTotal.Set(total);
            }
            _envQueueDepth.Set(queued);
            _orchestratorInflight.Set(running);
            _orchestratorLimit.Set(limits);
        });
    }

    public void SetWorkers(int n) => _workers.Set(n);

    public void ObserveDuration(string cls, double seconds) => _duration.WithLabels(cls).Observe(seconds);
    public void ObserveWait(string cls, double seconds) => _wait.WithLabels(cls).Observe(seconds);

    void Daemon.IEngineObserver.WorkerCount(int count) => SetWorkers(count);

    void Daemon.IEngineObserver.WorkerLost() => _workersLost.Inc();

    /// <summary>The free (for this user) and total bytes of the file system holding <paramref name="dir"/>; null where
    /// it cannot be read (the dir is gone): the series keep their last value rather than claim a full disk.</summary>
    private static (long Free, long Total)? DiskSpace(string dir)
    {
        try
        {
            var drive = new DriveInfo(Path.GetFullPath(dir));
            return (drive.AvailableFreeSpace, drive.TotalSize);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException) { return null; }
    }

    void Daemon.IEngineObserver.QueueWait(string cls, double seconds) => ObserveWait(cls, seconds);

    /// <summary>Run time of attempts that ran: a task that ended without running is not a duration.</summary>
    void Daemon.IEngineObserver.TaskCompleted(string cls, string outcome, double seconds)
    {
        if (seconds > 0) ObserveDuration(cls, seconds);
    }

    /// <summary>
    /// Replaces the GPU view with one sample per GPU (<paramref name="gpus"/>: index or UUID, never a task id).
    /// A null utilization or used memory (the driver could not say) drops that series rather than report 0;
    /// GPUs not in this call are removed.
    /// </summary>
    public void SetGpus(IEnumerable<(string Gpu, double? Utilization, long? UsedBytes, long TotalBytes)> gpus)
    {
        lock (_gpuLock)
        {
            var seen = new HashSet<string>();
            foreach (var (gpu, utilization, used, total) in gpus)
            {
                if (!seen.Add(gpu)) continue;
                if (utilization is { } u) _gpuUtilization.WithLabels(gpu).Set(u); else _gpuUtilization.RemoveLabelled(gpu);
                if (used is { } b) _gpuMemoryUsed.WithLabels(gpu).Set(b); else _gpuMemoryUsed.RemoveLabelled(gpu);
                _gpuMemoryTotal.WithLabels(gpu).Set(total);
            }
            foreach (var gone in _gpus.Where(g => !seen.Contains(g)))
            {
                _gpuUtilization.RemoveLabelled(gone);
                _gpuMemoryUsed.RemoveLabelled(gone);
                _gpuMemoryTotal.RemoveLabelled(gone);
            }
            _gpus = seen;
        }
    }

    public void SlurmJobSubmitted() => _slurmSubmitted.Inc();

    /// <summary><paramref name="outcome"/>: one of <see cref="SlurmOutcomes"/>.</summary>
    public void SlurmJobCompleted(string outcome)
    {
        if (!SlurmOutcomes.Contains(outcome)) throw new ArgumentOutOfRangeException(nameof(outcome), outcome, "not a Slurm outcome");
        _slurmCompleted.WithLabels(outcome).Inc();
    }

    public void SlurmPollError() => _slurmPollErrors.Inc();
}
