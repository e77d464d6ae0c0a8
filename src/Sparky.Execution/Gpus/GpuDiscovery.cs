namespace Sparky.Execution.Gpus;

/// <summary>Where discovery looks. Each path is injectable so tests can point at fakes; null skips that source.</summary>
public sealed record GpuDiscoveryOptions
{
    /// <summary>The value of SPARKY_VISIBLE_GPUS (indices and/or UUIDs, comma-separated); null or blank: all.</summary>
    public string? VisibleGpus { get; init; }
    public string? NvmlLibrary { get; init; } = NvmlSource.DefaultLibrary;
    public string? NvidiaSmi { get; init; } = NvidiaSmiSource.DefaultExecutable;
    public TimeSpan NvidiaSmiTimeout { get; init; } = TimeSpan.FromSeconds(5);
    public string MemInfoPath { get; init; } = "/proc/meminfo";
}

/// <summary>
/// Finds the GPUs: NVML first, then nvidia-smi, then none (no GPU is a normal case: an empty list,
/// source "none"). Keeps the source open so <see cref="Sample"/> can re-read utilisation, memory and
/// temperature of the same GPUs later. Thread-safe.
/// </summary>
public sealed class GpuDiscovery : IDisposable
{
    public const string None = "none";

    private readonly IGpuSource? _source;
    private readonly Lock _lock = new();

    /// <summary>"nvml", "nvidia-smi" or "none".</summary>
    public string Source => _source?.Name ?? None;

    /// <summary>The visible GPUs as found at discovery, by index.</summary>
    public IReadOnlyList<GpuInfo> Gpus { get; }

    /// <summary>Why each source tried before <see cref="Source"/> gave nothing, for logs and `sparky gpus`.</summary>
    public IReadOnlyList<string> Problems { get; }

    /// <summary>Why the last <see cref="Sample"/> could not read the source; null when it could.</summary>
    public string? LastSampleError { get; private set; }

    private GpuDiscovery(IGpuSource? source, IReadOnlyList<GpuInfo> gpus, IReadOnlyList<string> problems)
    {
        _source = source;
        Gpus = gpus;
        Problems = problems;
    }

    /// <summary>
    /// Looks for GPUs. Never throws for a missing or failing source; throws <see cref="GpuException"/>
    /// only when <see cref="GpuDiscoveryOptions.VisibleGpus"/> names a GPU that was not found.
    /// </summary>
    public static GpuDiscovery Discover(GpuDiscoveryOptions? options = null)
    {
        options ??= new GpuDiscoveryOptions();
        var problems = new List<string>();
        Func<HostMemory?> host = () => HostMemory.Read(options.MemInfoPath);

        foreach (var open in Candidates(options, host, problems))
        {
            var source = open();
            if (source is null) continue;
            IReadOnlyList<GpuInfo> found;
            try { found = source.Read(); }
            catch (GpuException e)
            {
                problems.Add(e.Message);
                source.Dispose();
                continue;
            }
            try { return new GpuDiscovery(source, GpuFilter.Apply(found, options.VisibleGpus), problems); }
            catch { source.Dispose(); throw; }
        }
        try { return new GpuDiscovery(null, GpuFilter.Apply([], options.VisibleGpus), problems); }
        catch (GpuException e) when (problems.Count > 0)
        {
            throw new GpuException($"{e.Message} ({string.Join("; ", problems)})");
        }
    }

    private static IEnumerable<Func<IGpuSource?>> Candidates(GpuDiscoveryOptions o, Func<HostMemory?> host, List<string> problems)
    {
        if (o.NvmlLibrary is { } lib)
            yield return () =>
            {
                var s = NvmlSource.TryOpen(lib, host, out var problem);
                if (problem is not null) problems.Add(problem);
                return s;
            };
        if (o.NvidiaSmi is { } smi)
            yield return () => new NvidiaSmiSource(smi, o.NvidiaSmiTimeout, host);
    }

    /// <summary>
    /// Fresh readings for <see cref="Gpus"/>, in the same order. A GPU the source no longer reports,
    /// or a source that fails, gives that GPU with its readings null (see <see cref="LastSampleError"/>);
    /// this never throws, so a metrics loop can call it every couple of seconds.
    /// </summary>
    public IReadOnlyList<GpuInfo> Sample()
    {
        if (_source is null) return [];
        lock (_lock)
        {
            IReadOnlyList<GpuInfo> fresh;
            try { fresh = _source.Read(); LastSampleError = null; }
            catch (Exception e) when (e is GpuException or ObjectDisposedException)
            {
                LastSampleError = e.Message;
                return Gpus.Select(g => g.WithoutReadings()).ToList();
            }
            var byUuid = fresh.ToDictionary(g => g.Uuid, StringComparer.OrdinalIgnoreCase);
            // Keep the index found at discovery: it is what the rest of the daemon knows this GPU by.
            return Gpus.Select(g => byUuid.TryGetValue(g.Uuid, out var f) ? f with { Index = g.Index } : g.WithoutReadings()).ToList();
        }
    }

    public void Dispose()
    {
        lock (_lock) _source?.Dispose();
    }
}
