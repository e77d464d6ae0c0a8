using System.Text;

namespace Sparky.Execution.Processes;

/// <summary>Reads /proc: start times (to tell a live process from a reused pid) and the tasks still running after a restart.</summary>
public static class ProcessTable
{
    /// <summary>Field 22 of /proc/PID/stat: start time in clock ticks since boot.</summary>
    public static long? StartTime(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            // The command name (field 2) may hold spaces and parentheses: count fields after the last ')'.
            var rest = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            return long.Parse(rest[19]);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException)
        {
            return null;
        }
    }

    /// <summary>True if <paramref name="pid"/> is alive and is the same process that started at <paramref name="startTime"/>.</summary>
    public static bool IsSameProcess(int pid, long startTime) =>
        StartTime(pid) is { } st && st == startTime && !IsZombie(pid);

    private static bool IsZombie(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            return stat[stat.LastIndexOf(')') + 2] == 'Z';
        }
        catch (IOException) { return true; }
    }

    /// <summary>
    /// Finds session leaders whose environment carries <c>marker=value</c> and returns the value of
    /// <paramref name="keyVar"/> for each: after a restart, the tasks a dead daemon left running.
    /// </summary>
    public static Dictionary<string, (int Pid, long StartTime, int Attempt)> FindMarked(string marker, string value)
    {
        var found = new Dictionary<string, (int, long, int)>(StringComparer.Ordinal);
        var needle = marker + "=" + value;
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(System.IO.Path.GetFileName(dir), out int pid)) continue;
            try
            {
                var stat = File.ReadAllText($"/proc/{pid}/stat");
                var rest = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
                if (rest[0] == "Z" || int.Parse(rest[3]) != pid) continue; // field 6, session id: only session leaders
                var env = Encoding.UTF8.GetString(File.ReadAllBytes($"/proc/{pid}/environ")).Split('\0');
                if (!env.Contains(needle)) continue;
                string? task = null;
                int attempt = 0;
                foreach (var kv in env)
                {
                    if (kv.StartsWith("SPARKY_TASK_ID=", StringComparison.Ordinal)) task = kv["SPARKY_TASK_ID=".Length..];
                    else if (kv.StartsWith("SPARKY_ATTEMPT=", StringComparison.Ordinal)) int.TryParse(kv["SPARKY_ATTEMPT=".Length..], out attempt);
                }
                if (task is not null) found[task] = (pid, long.Parse(rest[19]), attempt);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException)
            {
                // gone, or not ours: skip
            }
        }
        return found;
    }
}
