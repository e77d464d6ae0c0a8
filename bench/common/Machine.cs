/// <summary>What a benchmark reports about the machine it ran on (compiled into each bench).</summary>
internal static class Machine
{
    /// <summary>The 1, 5 and 15 minute load averages, "?" where /proc has none: printed beside every figure, since a
    /// 2-core machine shared with other work gives other numbers.</summary>
    public static string LoadAvg() =>
        File.Exists("/proc/loadavg") ? string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "?";
}
