namespace Sparky.Core.Limiting;

/// <summary>
/// One finished attempt of a class, fed to that class's limiter when the attempt ends.
/// </summary>
/// <param name="RunTime">How long the attempt ran (start to exit).</param>
/// <param name="QueueWait">How long it waited between becoming startable and starting. Carried for metrics;
/// the limiters read demand from <paramref name="Queued"/> instead, since with a backlog the wait measures the
/// backlog's length, not whether the limit fits the resource.</param>
/// <param name="Failed">The attempt failed (non-zero exit, signal, timeout, lost): an error or overload signal.</param>
/// <param name="InFlight">Attempts of the class running when it ended, this one included.</param>
/// <param name="Queued">Tasks of the class ready to start but waiting when it ended. Zero means no demand:
/// no limiter grows then, since a limit nobody uses tells nothing about the resource.</param>
/// <param name="Now">When it ended. Limiters have no clock of their own.</param>
public readonly record struct LimiterSample(
    TimeSpan RunTime,
    TimeSpan QueueWait,
    bool Failed,
    int InFlight,
    int Queued,
    DateTimeOffset Now);

/// <summary>
/// Signals from outside the class's own attempts, fed periodically (every few seconds).
/// </summary>
/// <param name="Now">When they were read.</param>
/// <param name="GpuUtilization">Utilisation of the GPUs the class uses, 0..1 (the busiest, or the mean). Null when
/// there is no GPU or the class uses none: then it has no effect.</param>
/// <param name="MemoryPressure">Host memory PSI, the <c>some avg10</c> percent from /proc/pressure/memory (0..100).
/// Null where PSI is not available.</param>
public readonly record struct PressureSample(
    DateTimeOffset Now,
    double? GpuUtilization,
    double? MemoryPressure);
