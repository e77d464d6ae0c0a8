using System.Globalization;

namespace Sparky.Execution.Slurm;

/// <summary>One partition as <c>sinfo</c> shows it: its nodes, and the most GPUs any one of them has.</summary>
public sealed record SlurmPartition(string Name, bool IsDefault, int Nodes, int MaxGpusPerNode);

/// <summary>
/// What a cluster has, per partition, from <c>sinfo --noheader --Node --format=%N|%P|%G</c> (one line per node and
/// partition; the default partition is marked <c>*</c>), so a task asking for more nodes or more GPUs per node than
/// exist is refused at submit instead of pending forever. Pure.
/// </summary>
public static class SlurmShape
{
    public static IReadOnlyList<string> SinfoArgs { get; } = ["--noheader", "--Node", "--format=%N|%P|%G"];

    public static IReadOnlyList<SlurmPartition> Parse(string? text)
    {
        var nodes = new Dictionary<string, HashSet<string>>(StringComparer.Ordinal);
        var gpus = new Dictionary<string, int>(StringComparer.Ordinal);
        string? defaultPartition = null;
        foreach (var raw in (text ?? "").Split('\n'))
        {
            var f = raw.Trim().Split('|');
            if (f.Length != 3 || f[0].Length == 0 || f[1].Length == 0) continue;
            var partition = f[1];
            if (partition.EndsWith('*')) defaultPartition = partition = partition[..^1];
            if (!nodes.TryGetValue(partition, out var set)) nodes[partition] = set = new HashSet<string>(StringComparer.Ordinal);
            set.Add(f[0]);
            gpus[partition] = Math.Max(gpus.GetValueOrDefault(partition), GpusOf(f[2]));
        }
        return nodes.Select(kv => new SlurmPartition(kv.Key, kv.Key == defaultPartition, kv.Value.Count, gpus[kv.Key])).ToList();
    }

    /// <summary>GPUs in a node's gres: <c>gpu:2</c>, <c>gpu:a100:4(S:0-1)</c>, <c>gpu:a100:4,gpu:v100:2</c>; 0 for
    /// <c>(null)</c> or none.</summary>
    public static int GpusOf(string gres)
    {
        int total = 0;
        foreach (var item in gres.Split(','))
        {
            var parts = item.Split('(')[0].Split(':');
            if (parts.Length >= 2 && parts[0] == "gpu" && int.TryParse(parts[^1], NumberStyles.None, CultureInfo.InvariantCulture, out var n)) total += n;
        }
        return total;
    }

    /// <summary>Why a task asking for <paramref name="nodes"/> nodes with <paramref name="gpusPerNode"/> GPUs each can
    /// never run in <paramref name="partition"/> (a comma-separated list: the largest counts; null: the default
    /// partition), saying what exists; null when it may, or when the partition is not known here (Slurm decides).</summary>
    public static string? WhyNeverFits(IReadOnlyList<SlurmPartition> shape, string? partition, int nodes, int? gpusPerNode)
    {
        var names = partition?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var chosen = names is null ? shape.Where(p => p.IsDefault).ToList() : shape.Where(p => names.Contains(p.Name)).ToList();
        if (chosen.Count == 0) return null;
        var where = names is null ? $"the default partition {chosen[0].Name}" : $"partition {partition}";
        int most = chosen.Max(p => p.Nodes);
        if (nodes > most) return $"asks for {nodes} nodes; {where} has {most}";
        int gpus = chosen.Max(p => p.MaxGpusPerNode);
        if (gpusPerNode > gpus) return $"asks for {gpusPerNode} GPUs per node; the nodes of {where} have at most {gpus}";
        return null;
    }
}
