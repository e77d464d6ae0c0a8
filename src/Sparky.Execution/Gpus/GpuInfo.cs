namespace Sparky.Execution.Gpus;

/// <summary>
/// One GPU as a source reported it. Memory, utilisation and temperature are null where the
/// device did not say. <see cref="UnifiedMemory"/> marks a device that has no memory of its own to
/// report (NVML's NOT_SUPPORTED, nvidia-smi's "[N/A]"; a DGX Spark's GB10): its memory figures are
/// then the host's, or null where the host's could not be read either.
/// </summary>
public sealed record GpuInfo(
    int Index,
    string Uuid,
    string Name,
    long? MemoryTotalBytes,
    long? MemoryUsedBytes,
    double? UtilizationRatio,
    int? TemperatureC,
    string? PciBusId,
    bool UnifiedMemory = false)
{
    /// <summary>The same GPU with the figures that change (memory used, utilisation, temperature) unknown.</summary>
    public GpuInfo WithoutReadings() => this with { MemoryUsedBytes = null, UtilizationRatio = null, TemperatureC = null };
}

/// <summary>The host's memory, which stands in for a unified-memory GPU's.</summary>
public readonly record struct HostMemory(long TotalBytes, long AvailableBytes)
{
    public long UsedBytes => Math.Max(0, TotalBytes - AvailableBytes);

    /// <summary>MemTotal and MemAvailable from /proc/meminfo text (kB); null if either is missing.</summary>
    public static HostMemory? Parse(string meminfo)
    {
        long? total = null, available = null;
        foreach (var raw in meminfo.Split('\n'))
        {
            var line = raw.TrimEnd('\r');
            if (line.StartsWith("MemTotal:", StringComparison.Ordinal)) total = Kilobytes(line);
            else if (line.StartsWith("MemAvailable:", StringComparison.Ordinal)) available = Kilobytes(line);
        }
        return total is { } t && available is { } a ? new HostMemory(t, a) : null;

        static long? Kilobytes(string line)
        {
            var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            return parts.Length >= 2 && long.TryParse(parts[1], out var kb) && kb >= 0 ? kb * 1024 : null;
        }
    }

    /// <summary>Reads /proc/meminfo (or <paramref name="path"/>); null where it cannot be read.</summary>
    public static HostMemory? Read(string path = "/proc/meminfo")
    {
        try { return Parse(File.ReadAllText(path)); }
        catch (IOException) { return null; }
        catch (UnauthorizedAccessException) { return null; }
    }
}

/// <summary>A GPU source that answered with something unusable, or a visible-GPUs list that names no GPU.</summary>
public sealed class GpuException(string message) : Exception(message);
