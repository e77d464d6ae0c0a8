using System.Globalization;

namespace Sparky.Execution.Gpus;

/// <summary>
/// Parses what <c>nvidia-smi --query-gpu=&lt;<see cref="Fields"/>&gt; --format=csv,noheader,nounits</c>
/// prints. Pure: the host's memory comes in as a parameter, for devices that report none.
/// </summary>
public static class NvidiaSmiCsv
{
    public const string Fields = "index,uuid,name,memory.total,memory.used,utilization.gpu,temperature.gpu,pci.bus_id";
    private const int FieldCount = 8;
    private const long MiB = 1024 * 1024;

    /// <summary>The GPUs in <paramref name="text"/>, by index. Empty text is no GPU. Throws <see cref="GpuException"/> on anything else it cannot read.</summary>
    public static IReadOnlyList<GpuInfo> Parse(string text, HostMemory? host)
    {
        var gpus = new List<GpuInfo>();
        var lines = text.Split('\n');
        for (int i = 0; i < lines.Length; i++)
        {
            var line = lines[i].Trim().TrimStart('\uFEFF');
            if (line.Length == 0) continue;
            // A header (someone dropped "noheader") is not a GPU.
            if (i == 0 && line.StartsWith("index,", StringComparison.OrdinalIgnoreCase)) continue;
            var gpu = ParseLine(line, host, i + 1);
            if (gpus.Any(g => g.Index == gpu.Index)) throw Bad(i + 1, line, $"index {gpu.Index} appears twice");
            if (gpus.Any(g => string.Equals(g.Uuid, gpu.Uuid, StringComparison.OrdinalIgnoreCase))) throw Bad(i + 1, line, $"UUID {gpu.Uuid} appears twice");
            gpus.Add(gpu);
        }
        gpus.Sort((a, b) => a.Index.CompareTo(b.Index));
        return gpus;
    }

    private static GpuInfo ParseLine(string line, HostMemory? host, int lineNo)
    {
        var f = line.Split(',').Select(s => s.Trim()).ToArray();
        if (f.Length < FieldCount)
            throw Bad(lineNo, line, $"expected {FieldCount} comma-separated fields ({Fields}), got {f.Length}");
        // The name is the one free-text field: any extra commas belong to it.
        int extra = f.Length - FieldCount;
        string name = string.Join(", ", f[2..(3 + extra)]);
        var rest = f[(3 + extra)..];
        string memTotal = rest[0], memUsed = rest[1], util = rest[2], temp = rest[3], bus = rest[4];

        if (!int.TryParse(f[0], NumberStyles.None, CultureInfo.InvariantCulture, out int index))
            throw Bad(lineNo, line, $"index '{f[0]}' is not a number");
        string uuid = f[1];
        if (!uuid.StartsWith("GPU-", StringComparison.OrdinalIgnoreCase) || uuid.Length < 8 || uuid.Contains(' '))
            throw Bad(lineNo, line, $"'{uuid}' is not a GPU UUID (GPU-…)");
        if (name.Length == 0 || IsMissing(name)) name = "unknown";

        long? total = Number(memTotal, "MiB", "memory.total", lineNo, line) * MiB;
        long? used = Number(memUsed, "MiB", "memory.used", lineNo, line) * MiB;
        bool unified = total is null && NotReported(memTotal);
        if (unified && host is { } h)
        {
            total = h.TotalBytes;
            used = h.UsedBytes;
        }

        long? pct = Number(util, "%", "utilization.gpu", lineNo, line);
        if (pct is < 0 or > 100) throw Bad(lineNo, line, $"utilization.gpu {pct} is outside 0-100");
        long? celsius = Number(temp, "C", "temperature.gpu", lineNo, line);

        return new GpuInfo(index, uuid, name, total, used, pct / 100.0, (int?)celsius,
            IsMissing(bus) ? null : bus, unified);
    }

    // "[N/A]" and "[Not Supported]" (bracketed in newer drivers, bare in older ones) mean the device
    // does not report this value; other bracketed values ("[Unknown Error]", "[GPU is lost]") are failures.
    private static bool NotReported(string v) => v.Trim('[', ']') is "N/A" or "Not Supported";
    private static bool IsMissing(string v) => v.Length == 0 || (v.StartsWith('[') && v.EndsWith(']')) || NotReported(v);

    private static long? Number(string v, string unit, string field, int lineNo, string line)
    {
        if (IsMissing(v)) return null;
        // Tolerate the unit, in case the query ran without "nounits".
        var s = v.EndsWith(unit, StringComparison.Ordinal) ? v[..^unit.Length].TrimEnd() : v;
        if (long.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out long n)) return n;
        throw Bad(lineNo, line, $"{field} '{v}' is not a number");
    }

    private static GpuException Bad(int lineNo, string line, string why) =>
        new($"nvidia-smi output, line {lineNo}: {why}: \"{(line.Length > 120 ? line[..120] + "…" : line)}\"");
}
