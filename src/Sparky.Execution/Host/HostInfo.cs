using System.Globalization;

namespace Sparky.Execution.Host;

/// <summary>Facts about this machine read from /proc: what the resource pool starts from.</summary>
public static class HostInfo
{
    public static int Cores => Environment.ProcessorCount;

    /// <summary>MemTotal from /proc/meminfo in MiB; falls back to what the runtime sees when /proc is not there.</summary>
    public static long MemoryTotalMb() =>
        MemInfoKb("MemTotal") is { } kb ? kb / 1024 : GC.GetGCMemoryInfo().TotalAvailableMemoryBytes / (1024 * 1024);

    /// <summary>MemAvailable from /proc/meminfo in MiB, or null.</summary>
    public static long? MemoryAvailableMb() => MemInfoKb("MemAvailable") / 1024;

    private static long? MemInfoKb(string field)
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/meminfo"))
            {
                if (!line.StartsWith(field + ":", StringComparison.Ordinal)) continue;
                var parts = line[(field.Length + 1)..].Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries);
                return long.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var kb) ? kb : null;
            }
        }
        catch (IOException) { }
        return null;
    }
}
