using Prometheus;
using Sparky.Core.Tasks;
using Sparky.Store.Sqlite;

namespace Sparky.Server.Metrics;

/// <summary>
/// The Prometheus view. Counts come from the store's counters at scrape time (so they are right
/// after a restart); durations and waits are observed as they happen. No label ever holds a task id.
/// </summary>
public sealed class SparkyMetrics
{
    public CollectorRegistry Registry { get; } = Prometheus.Metrics.NewCustomRegistry();

    private readonly Gauge _queueDepth, _running, _limit, _workers;
    private readonly Counter _submitted, _completed;
    private readonly Histogram _duration, _wait;

    private static readonly double[] DurationBuckets = [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, 14400, 86400];
    private static readonly double[] WaitBuckets = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 60, 300, 3600];

    public SparkyMetrics(Counters counters, Func<IEnumerable<string>> classes, Func<string, int> limit)
    {
        var f = Prometheus.Metrics.WithCustomRegistry(Registry);
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
        _workers.Set(0);

        Registry.AddBeforeCollectCallback(() =>
        {
            foreach (var cls in classes().Concat(counters.Classes).Distinct())
            {
                _queueDepth.WithLabels(cls).Set(counters.Get(cls, TaskState.Queued));
                _running.WithLabels(cls).Set(counters.Get(cls, TaskState.Running));
                _limit.WithLabels(cls).Set(limit(cls));
                long all = 0;
                foreach (var s in Enum.GetValues<TaskState>()) all += counters.Get(cls, s);
                _submitted.WithLabels(cls).IncTo(all);
                foreach (var s in new[] { TaskState.Succeeded, TaskState.Failed, TaskState.Cancelled })
                    _completed.WithLabels(cls, s.Name()).IncTo(counters.Get(cls, s));
            }
        });
    }

    public void ObserveDuration(string cls, double seconds) => _duration.WithLabels(cls).Observe(seconds);
    public void ObserveWait(string cls, double seconds) => _wait.WithLabels(cls).Observe(seconds);
}
