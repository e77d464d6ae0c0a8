using System.Text;

namespace Sparky.Execution.Processes;

/// <summary>Reads /proc: start times (to tell a live process from a reused pid) and the tasks still running after a restart.</summary>
public static class ProcessTable
{
    /// <summary>The fields of /proc/PID/stat after the command name: [0] is field 3 (state), [3] field 6
    /// (session), [19] field 22 (start time in clock ticks since boot). Null if the process is gone.</summary>
    private static string[]? StatFields(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            // The command name (field 2) may hold spaces and parentheses: count fields after the last ')'.
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            return fields.Length > 19 ? fields : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentOutOfRangeException)
        {
            return null;
        }
    }

    /// <summary>A process's start time in clock ticks since boot.</summary>
    public static long? StartTime(int pid) =>
        StatFields(pid) is { } f && long.TryParse(f[19], out var t) ? t : null;

    /// <summary>True if <paramref name="pid"/> is alive and is the same process that started at <paramref name="startTime"/>.</summary>
    public static bool IsSameProcess(int pid, long startTime) =>
        StatFields(pid) is { } f && f[0] != "Z" && long.TryParse(f[19], out var t) && t == startTime;

    /// <summary>
    /// Finds session leaders whose environment carries <c>marker=value</c> and returns the value of
    /// <paramref name="keyVar"/> for each: after a restart, the tasks a dead daemon left running, with the
    /// GPUs they were given (their <c>CUDA_VISIBLE_DEVICES</c>), which they still hold.
    /// </summary>
    public static Dictionary<string, MarkedProcess> FindMarked(string marker, string value)
    {
        var found = new Dictionary<string, MarkedProcess>(StringComparer.Ordinal);
        var needle = marker + "=" + value;
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(System.IO.Path.GetFileName(dir), out int pid)) continue;
            var rest = StatFields(pid);
            if (rest is null || rest[0] == "Z" || rest[3] != pid.ToString()) continue; // session leaders only
            try
            {
                var env = Encoding.UTF8.GetString(File.ReadAllBytes($"/proc/{pid}/environ")).Split('\0');
                if (!env.Contains(needle)) continue;
                string? task = null;
                int attempt = 0;
                string[] gpus = [];
                int? port = null;
                // A Slurm job's processes carry the marker too, and are Slurm's (Containment.IsSlurmJobs).
                if (Containment.IsSlurmJobs(env.FirstOrDefault(kv => kv.StartsWith("SLURM_JOB_ID=", StringComparison.Ordinal))?["SLURM_JOB_ID=".Length..])) continue;
                foreach (var kv in env)
                {
                    if (kv.StartsWith("SPARKY_TASK_ID=", StringComparison.Ordinal)) task = kv["SPARKY_TASK_ID=".Length..];
                    else if (kv.StartsWith("SPARKY_ATTEMPT=", StringComparison.Ordinal)) int.TryParse(kv["SPARKY_ATTEMPT=".Length..], out attempt);
                    else if (kv.StartsWith("CUDA_VISIBLE_DEVICES=", StringComparison.Ordinal))
                        gpus = kv["CUDA_VISIBLE_DEVICES=".Length..].Split(',', StringSplitOptions.RemoveEmptyEntries);
                    else if (kv.StartsWith("SPARKY_PORT=", StringComparison.Ordinal) && int.TryParse(kv["SPARKY_PORT=".Length..], out var p)) port = p;
                }
                if (task is not null) found[task] = new MarkedProcess(pid, long.Parse(rest[19]), attempt, gpus) { Port = port };
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException)
            {
                // gone, or not ours: skip
            }
        }
        return found;
    }
}

/// <summary>Kills what a worker's tasks left behind.</summary>
public static class MarkedProcesses
{
    /// <summary>
    /// SIGKILLs the process group of every process (leader or not) whose environment carries <c>marker=value</c>, and
    /// the process itself (its group may have no leader left). Returns how many processes carried the mark.
    /// </summary>
    public static int KillAll(string marker, string value)
    {
        var needle = Encoding.UTF8.GetBytes(marker + "=" + value + "\0");
        int self = Environment.ProcessId, found = 0;
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out int pid) || pid == self) continue;
            try
            {
                var env = File.ReadAllBytes($"/proc/{pid}/environ");
                // Entries are NUL-terminated: match a whole entry, at the start or after a NUL.
                int at = env.AsSpan().IndexOf(needle);
                if (at < 0 || (at > 0 && env[at - 1] != 0)) continue;
                var stat = File.ReadAllText($"/proc/{pid}/stat");
                var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
                found++;
                if (int.TryParse(fields[2], out int pgid) && pgid > 1) ProcessLauncher.SignalGroup(pgid, Signals.Kill);
                Libc.kill(pid, Signals.Kill);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or IndexOutOfRangeException or ArgumentOutOfRangeException)
            {
                // gone, or not ours
            }
        }
        return found;
    }
}

/// <summary>A task process found by its marker: pid, start time, attempt number, the GPUs and the port it holds.</summary>
public readonly record struct MarkedProcess(int Pid, long StartTime, int Attempt, IReadOnlyList<string> Gpus)
{
    /// <summary>The port Sparky reserved for it (<c>SPARKY_PORT</c>), if any.</summary>
    public int? Port { get; init; }
}
