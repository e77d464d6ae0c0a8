namespace Sparky.Execution.Gpus;

/// <summary>
/// Applies SPARKY_VISIBLE_GPUS: a comma-separated list of indices and/or UUIDs. Pure: the value
/// comes in as a parameter.
/// </summary>
public static class GpuFilter
{
    /// <summary>
    /// The GPUs <paramref name="visible"/> names, in discovery order. Null or blank keeps all;
    /// "none" keeps none. An entry that matches no GPU throws <see cref="GpuException"/>, since a
    /// typo silently giving a task the wrong GPUs (or all of them) is worse than not starting.
    /// </summary>
    public static IReadOnlyList<GpuInfo> Apply(IReadOnlyList<GpuInfo> gpus, string? visible)
    {
        if (string.IsNullOrWhiteSpace(visible)) return gpus;
        if (visible.Trim().Equals("none", StringComparison.OrdinalIgnoreCase)) return [];

        var entries = visible.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        if (entries.Length == 0) return gpus;

        var keep = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        var unknown = new List<string>();
        foreach (var entry in entries)
        {
            var match = entry.All(char.IsAsciiDigit)
                ? gpus.FirstOrDefault(g => int.TryParse(entry, out var i) && g.Index == i)
                : gpus.FirstOrDefault(g => string.Equals(g.Uuid, entry, StringComparison.OrdinalIgnoreCase));
            if (match is null) unknown.Add(entry);
            else keep.Add(match.Uuid);
        }
        if (unknown.Count > 0)
        {
            var known = gpus.Count == 0 ? "no GPU was found" : "found: " + string.Join(", ", gpus.Select(g => $"{g.Index} ({g.Uuid})"));
            throw new GpuException($"SPARKY_VISIBLE_GPUS names {(unknown.Count == 1 ? "a GPU" : "GPUs")} that {(unknown.Count == 1 ? "does" : "do")} not exist: {string.Join(", ", unknown.Select(u => $"'{u}'"))}; {known}");
        }
        return gpus.Where(g => keep.Contains(g.Uuid)).ToList();
    }
}
