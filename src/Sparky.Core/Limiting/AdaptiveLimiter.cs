namespace Sparky.Core.Limiting;

/// <summary>
/// What the adaptive limiters share: the bounds, the run-time statistics, the outside pressure signals, and
/// the rules every algorithm obeys whatever it proposes.
/// </summary>
/// <remarks>
/// The rules, applied in <see cref="OnSample"/> to each algorithm's proposal:
/// <list type="bullet">
/// <item>The limit stays within [Min, Max] and moves at most <see cref="MaxStepFraction"/> of itself (at least 1)
/// per sample, so no single odd sample swings it far.</item>
/// <item>It grows only with demand (tasks queued), with the slots mostly in use (at least half), and with neither
/// memory pressure nor a saturated GPU; a limit nobody uses, or one the host can't feed, says nothing good.</item>
/// <item>Decreases on a sample's signal (failure, slow run time) are spaced by one short-window run time: one
/// overload episode makes a burst of failures, and should cost one decrease, not one per failure.</item>
/// </list>
/// Pressure signals (<see cref="OnPressure"/>): memory PSI at or above <see cref="MemoryPressureHigh"/> is overload,
/// a decrease at most once per <see cref="MemoryDecreaseSpacing"/>; GPU utilisation at or above
/// <see cref="GpuSaturated"/> stops growth (more tasks would only queue on the device); below
/// <see cref="GpuHasRoom"/> a slow run time is not read as crowding (the device is not the bottleneck, so the
/// class may keep growing while work is queued). Readings older than <see cref="PressureStale"/> are ignored.
/// </remarks>
public abstract class AdaptiveLimiter : ILimiter
{
    /// <summary>PSI memory <c>some avg10</c> percent from which the host counts as overloaded: a tenth of the
    /// time some task was stalled on memory, i.e. reclaim or swap is already slowing work down.</summary>
    public const double MemoryPressureHigh = 10.0;

    /// <summary>GPU utilisation from which a GPU class stops growing.</summary>
    public const double GpuSaturated = 0.95;

    /// <summary>GPU utilisation below which slow run times are not read as crowding.</summary>
    public const double GpuHasRoom = 0.5;

    /// <summary>Factor applied on memory pressure.</summary>
    public const double MemoryBackoff = 0.9;

    /// <summary>Largest move per sample, as a fraction of the limit (at least 1 whatever the limit).</summary>
    public const double MaxStepFraction = 0.25;

    /// <summary>PSI avg10 is a 10-second average: deciding on it more often would punish one episode repeatedly.</summary>
    public static readonly TimeSpan MemoryDecreaseSpacing = TimeSpan.FromSeconds(10);

    /// <summary>A pressure reading older than this (the reader stopped) no longer counts.</summary>
    public static readonly TimeSpan PressureStale = TimeSpan.FromSeconds(30);

    private double _estimate;
    private DateTimeOffset? _lastDecrease;
    private DateTimeOffset? _lastMemoryDecrease;
    private PressureSample? _pressure;

    protected AdaptiveLimiter(int min, int max, int initial)
    {
        Limiters.CheckBounds(min, max);
        Min = min;
        Max = max;
        _estimate = Math.Clamp(initial, min, max);
    }

    public abstract string Algorithm { get; }
    public int Min { get; }
    public int Max { get; }
    public int Limit => Math.Clamp((int)Math.Floor(_estimate), Min, Max);

    /// <summary>The limit before rounding down: algorithms move it by fractions (one per round of completions).</summary>
    public double Estimate => _estimate;

    /// <summary>Run time of successful attempts: short window and baseline.</summary>
    public RunTimeStats RunTime { get; } = new();

    public int OnSample(in LimiterSample sample)
    {
        // A failed attempt's run time says little about the resource (it may have died at once), so it feeds
        // only the failure signal.
        if (!sample.Failed) RunTime.Add(sample.RunTime.TotalSeconds);
        var target = Propose(sample);
        if (target > _estimate && !MayGrow(sample)) target = _estimate;
        MoveTo(target);
        return Limit;
    }

    public int OnPressure(in PressureSample pressure)
    {
        _pressure = pressure;
        if (pressure.MemoryPressure >= MemoryPressureHigh
            && (_lastMemoryDecrease is not { } last || pressure.Now - last >= MemoryDecreaseSpacing))
        {
            _lastMemoryDecrease = pressure.Now;
            MoveTo(_estimate * MemoryBackoff);
        }
        return Limit;
    }

    /// <summary>The algorithm's wanted estimate after this sample; the base applies the bounds and rules.</summary>
    protected abstract double Propose(in LimiterSample sample);

    /// <summary>The estimate times <paramref name="factor"/>, or unchanged when the last decrease was less than
    /// one short-window run time ago (the same overload episode).</summary>
    protected double Decreased(DateTimeOffset now, double factor)
    {
        if (_lastDecrease is { } last && (now - last).TotalSeconds < RunTime.Short) return _estimate;
        _lastDecrease = now;
        return _estimate * factor;
    }

    /// <summary>Whether run time can be read as crowding: warm, and not a GPU class whose GPU is mostly idle.</summary>
    protected bool RunTimeMeaningful(DateTimeOffset now) =>
        RunTime.Ready && !(Fresh(now) is { GpuUtilization: { } gpu } && gpu < GpuHasRoom);

    private bool MayGrow(in LimiterSample s) =>
        s.Queued > 0
        && s.InFlight * 2 >= Limit
        && !(Fresh(s.Now) is { } p && (p.MemoryPressure >= MemoryPressureHigh || p.GpuUtilization >= GpuSaturated));

    private PressureSample? Fresh(DateTimeOffset now) =>
        _pressure is { } p && now - p.Now <= PressureStale ? p : null;

    private void MoveTo(double target)
    {
        if (double.IsNaN(target)) return;
        var step = Math.Max(1.0, _estimate * MaxStepFraction);
        target = Math.Clamp(target, _estimate - step, _estimate + step);
        _estimate = Math.Clamp(target, Min, Max);
    }
}
