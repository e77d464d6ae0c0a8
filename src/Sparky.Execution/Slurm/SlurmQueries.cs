using System.Collections.ObjectModel;
using System.Globalization;
using System.Text.RegularExpressions;

namespace Sparky.Execution.Slurm;

/// <summary>A line a parser could not read, with why. Skipping is safe: a job missing from a poll is looked
/// up again, never taken as done.</summary>
public sealed record SkippedLine(int LineNumber, string Line, string Reason);

/// <summary>Parsed jobs, plus the lines that were skipped (for the executor to log).</summary>
public sealed class SlurmJobList(IList<SlurmJob> jobs, IReadOnlyList<SkippedLine> skipped) : ReadOnlyCollection<SlurmJob>(jobs)
{
    public IReadOnlyList<SkippedLine> Skipped { get; } = skipped;
}

/// <summary>What <c>sbatch --parsable</c> printed: the job id and, on a multi-cluster setup, the cluster.</summary>
public sealed record SubmittedJob(string JobId, string? Cluster);

/// <summary>
/// Arguments for Slurm's query commands and pure parsers for what they print. Run each command with
/// <see cref="Environment"/> added, and pass arguments as an argument list (no shell).
/// </summary>
public static partial class SlurmQueries
{
    /// <summary>Environment for every Slurm command: fixes the time format the parsers read
    /// (<c>2026-11-25T02:41:12</c>, the cluster's local time).</summary>
    public static IReadOnlyDictionary<string, string> Environment { get; } =
        new Dictionary<string, string> { ["SLURM_TIME_FORMAT"] = "standard" };

    /// <summary>squeue fields: id, state (long form), nodes, start, end, reason, comment. The comment is last
    /// because it is free text and may hold '|'; the parser gives it the rest of the line.</summary>
    public const string SqueueFormat = "%i|%T|%N|%S|%e|%r|%k";

    /// <summary><c>squeue</c> arguments: no header, all partitions, only this user's jobs (so no one else's
    /// comment can pose as a Sparky task), recently finished jobs too, one line per array element.</summary>
    public static IReadOnlyList<string> SqueueArgs { get; } =
        ["--noheader", "--all", "--me", "--states=all", "--array", "--format=" + SqueueFormat];

    /// <summary>sacct fields, Comment last for the same reason as in <see cref="SqueueFormat"/>.
    /// Comment is only filled when the cluster sets <c>AccountingStoreFlags=job_comment</c>.</summary>
    public const string SacctFields = "JobID,State,ExitCode,NodeList,Start,End,Comment";

    /// <summary><c>sacct</c> arguments for the given job ids: no header, '|'-separated, allocations only (no steps).
    /// With <c>-j</c> sacct searches from the epoch, so old jobs are found.</summary>
    public static IReadOnlyList<string> SacctArgs(IEnumerable<string> jobIds) =>
        ["--noheader", "--parsable2", "--allocations", "--format=" + SacctFields, "--jobs=" + JoinIds(jobIds)];

    /// <summary><c>scontrol show job</c> arguments: one line per job; all jobs when <paramref name="jobId"/> is null.</summary>
    public static IReadOnlyList<string> ScontrolArgs(string? jobId = null) =>
        jobId is null ? ["--oneliner", "show", "job"] : ["--oneliner", "show", "job", CheckId(jobId)];

    /// <summary>Arguments for <c>sbatch</c>, given the script's path.</summary>
    public static IReadOnlyList<string> SbatchArgs(string scriptPath) => ["--parsable", scriptPath];

    /// <summary>scontrol and squeue print this (on stderr, exit 1) for a job id Slurm no longer knows.</summary>
    public const string InvalidJobIdMessage = "Invalid job id specified";

    private static string JoinIds(IEnumerable<string> ids)
    {
        var list = ids.Select(CheckId).ToList();
        return list.Count > 0 ? string.Join(',', list) : throw new ArgumentException("no job ids given", nameof(ids));
    }

    private static string CheckId(string id) =>
        id is not null && QueryJobIdRegex().IsMatch(id) ? id : throw new ArgumentException($"invalid Slurm job id '{SbatchScript.Printable(id)}'", nameof(id));

    // ---- sbatch --parsable ----

    /// <summary>Reads <c>sbatch --parsable</c> stdout: <c>1234</c> or <c>1234;cluster</c>.</summary>
    /// <exception cref="FormatException">Anything else, quoting what was printed.</exception>
    public static SubmittedJob ParseSbatch(string? stdout)
    {
        var lines = Lines(stdout ?? "").Select(l => l.Trim()).Where(l => l.Length > 0).ToList();
        if (lines.Count == 1 && SbatchRegex().Match(lines[0]) is { Success: true } m)
            return new SubmittedJob(m.Groups["id"].Value, m.Groups["cluster"].Success ? m.Groups["cluster"].Value : null);
        var shown = string.Join("\\n", lines.Select(SbatchScript.Printable));
        throw new FormatException(lines.Count == 0
            ? "sbatch --parsable printed no job id"
            : $"sbatch --parsable printed '{(shown.Length > 300 ? shown[..300] + "..." : shown)}', not a job id ('1234' or '1234;cluster')");
    }

    // ---- squeue ----

    /// <summary>Parses squeue output produced with <see cref="SqueueArgs"/>.</summary>
    /// <param name="zone">The cluster's time zone, which Slurm's times are in; null: this machine's.</param>
    public static SlurmJobList ParseSqueue(string? text, TimeZoneInfo? zone = null) =>
        ParseRows(text, SqueueFormat, f => new SlurmJob(f[0].Trim(), f[1].Trim(), NodeOrNull(f[2]), NullIfNone(f[6]), null, null,
            ParseTime(f[3], zone), ParseTime(f[4], zone), NullIfNone(f[5])));

    /// <summary>Seven '|'-separated fields a line, job id and state first (squeue's and sacct's shape here; the
    /// comment is last, so a '|' inside it does no harm). Lines that do not fit are skipped with the reason.</summary>
    private static SlurmJobList ParseRows(string? text, string format, Func<string[], SlurmJob> job)
    {
        var jobs = new List<SlurmJob>();
        var skipped = new List<SkippedLine>();
        int n = 0;
        foreach (var line in Lines(text ?? ""))
        {
            n++;
            if (line.Length == 0) continue;
            var f = line.Split('|', 7);
            if (f.Length < 7) { skipped.Add(new(n, line, $"expected 7 '|'-separated fields ({format}), found {f.Length}")); continue; }
            if (Invalid(f[0], f[1]) is { } why) { skipped.Add(new(n, line, why)); continue; }
            jobs.Add(job(f));
        }
        return new SlurmJobList(jobs, skipped);
    }

    // ---- sacct ----

    /// <summary>Parses sacct output produced with <see cref="SacctArgs"/>.</summary>
    public static SlurmJobList ParseSacct(string? text, TimeZoneInfo? zone = null) =>
        ParseRows(text, SacctFields, f =>
        {
            var (code, signal) = ParseExitCode(f[2]);
            return new SlurmJob(f[0].Trim(), f[1].Trim(), NodeOrNull(f[3]), NullIfNone(f[6]), code, signal,
                ParseTime(f[4], zone), ParseTime(f[5], zone), null);
        });

    // ---- scontrol show job ----

    /// <summary>Parses <c>scontrol show job</c> output, one line per job (<c>--oneliner</c>) or Slurm's default
    /// multi-line form (continuation lines start with spaces). Array elements get squeue-style ids
    /// (<c>ArrayJobId_ArrayTaskId</c>, pending ranges as <c>ArrayJobId_[range]</c>).</summary>
    public static SlurmJobList ParseScontrol(string? text, TimeZoneInfo? zone = null)
    {
        var jobs = new List<SlurmJob>();
        var skipped = new List<SkippedLine>();
        int n = 0, recordLine = 0;
        string? record = null;

        void Flush()
        {
            if (record is null) return;
            var fields = ScontrolFields(record);
            if (ScontrolJob(fields, zone, out var why) is { } job) jobs.Add(job);
            else skipped.Add(new(recordLine, record, why!));
            record = null;
        }

        foreach (var raw in Lines(text ?? ""))
        {
            n++;
            if (raw.Length == 0) { Flush(); continue; }
            if (raw.StartsWith("JobId=", StringComparison.Ordinal)) { Flush(); record = raw; recordLine = n; continue; }
            if (record is not null && char.IsWhiteSpace(raw[0])) { record += " " + raw.Trim(); continue; }
            Flush();
            skipped.Add(new(n, raw, raw.Trim() == "No jobs in the system" ? "no jobs" : "not a job record (expected a line starting with JobId=)"));
        }
        Flush();
        return new SlurmJobList(jobs, skipped);
    }

    private static SlurmJob? ScontrolJob(Dictionary<string, string> f, TimeZoneInfo? zone, out string? why)
    {
        why = null;
        var id = f.GetValueOrDefault("JobId", "");
        if (f.TryGetValue("ArrayJobId", out var arrayJob) && f.TryGetValue("ArrayTaskId", out var arrayTask)
            && arrayJob.Length > 0 && arrayTask is not ("" or "N/A"))
            id = arrayTask.All(char.IsAsciiDigit) ? $"{arrayJob}_{arrayTask}" : $"{arrayJob}_[{arrayTask}]";
        var state = f.GetValueOrDefault("JobState", "");
        if (Invalid(id, state) is { } bad) { why = bad; return null; }
        var (code, signal) = ParseExitCode(f.GetValueOrDefault("ExitCode"));
        return new SlurmJob(id, state, NodeOrNull(f.GetValueOrDefault("NodeList")), NullIfNone(f.GetValueOrDefault("Comment")),
            code, signal, ParseTime(f.GetValueOrDefault("StartTime"), zone), ParseTime(f.GetValueOrDefault("EndTime"), zone),
            NullIfNone(f.GetValueOrDefault("Reason")))
        {
            WorkDir = NullIfNone(f.GetValueOrDefault("WorkDir")),
            StdOut = NullIfNone(f.GetValueOrDefault("StdOut")),
        };
    }

    // scontrol separates fields with a space but does not quote values, and some values are free text
    // (Comment=a b c, WorkDir=/my dir, Reason=...). A field boundary is a space followed by Key=; inside a
    // free-text value only a key scontrol is known to print counts, so "Comment=x y=z" stays one value.
    // The first occurrence of a key wins: the status keys (JobState, ExitCode, times, NodeList) come before
    // any free-text field, so text posing as "JobState=..." in a later comment cannot replace them.
    internal static Dictionary<string, string> ScontrolFields(string record)
    {
        var fields = new Dictionary<string, string>(StringComparer.Ordinal);
        var starts = new List<(int KeyStart, int ValueStart, string Key)>();
        string? current = null;
        foreach (Match m in ScontrolKeyRegex().Matches(record))
        {
            var key = m.Groups["key"].Value;
            bool known = KnownScontrolKeys.Contains(key);
            if (current is not null && FreeTextKeys.Contains(current) && !known) continue;
            starts.Add((m.Groups["key"].Index, m.Index + m.Length, key));
            current = key;
        }
        for (int i = 0; i < starts.Count; i++)
        {
            int end = i + 1 < starts.Count ? starts[i + 1].KeyStart : record.Length;
            var value = record[starts[i].ValueStart..end].TrimEnd();
            fields.TryAdd(starts[i].Key, value);
        }
        return fields;
    }

    private static readonly HashSet<string> FreeTextKeys = new(StringComparer.Ordinal)
    {
        "JobName", "Reason", "Comment", "AdminComment", "SystemComment", "Command", "WorkDir", "StdErr", "StdIn", "StdOut",
        "Features", "Dependency", "MailUser",
    };

    // Keys `scontrol show job` prints (Slurm 22.05 and nearby, including -d detail lines).
    private static readonly HashSet<string> KnownScontrolKeys = new(StringComparer.Ordinal)
    {
        "JobId", "JobName", "UserId", "GroupId", "MCS_label", "Priority", "Nice", "Account", "QOS", "WCKey",
        "JobState", "Reason", "Dependency", "Requeue", "Restarts", "BatchFlag", "Reboot", "ExitCode", "DerivedExitCode",
        "RunTime", "TimeLimit", "TimeMin", "SubmitTime", "EligibleTime", "AccrueTime", "StartTime", "EndTime", "Deadline",
        "PreemptEligibleTime", "PreemptTime", "SuspendTime", "SecsPreSuspend", "LastSchedEval", "Scheduler", "Partition",
        "AllocNode:Sid", "ReqNodeList", "ExcNodeList", "NodeList", "SchedNodeList", "BatchHost", "NumNodes", "NumCPUs",
        "NumTasks", "CPUs/Task", "ReqB:S:C:T", "TRES", "Socks/Node", "NtasksPerN:B:S:C", "CoreSpec", "MinCPUsNode",
        "MinMemoryNode", "MinMemoryCPU", "MinTmpDiskNode", "Features", "DelayBoot", "OverSubscribe", "Contiguous",
        "Licenses", "Network", "Command", "WorkDir", "AdminComment", "SystemComment", "Comment", "StdErr", "StdIn",
        "StdOut", "Power", "MailUser", "MailType", "TresPerNode", "TresPerJob", "TresPerTask", "TresPerSocket",
        "CpusPerTres", "MemPerTres", "Gres", "Reservation", "ArrayJobId", "ArrayTaskId", "ArrayTaskThrottle",
        "HetJobId", "HetJobOffset", "HetJobIdSet", "Container", "ContainerID", "NtasksPerTRES", "ResizeTime",
        "Switches", "Wait-for-Switch", "Nodes", "CPU_IDs", "Mem", "GRES", "GRES_IDX", "ThreadSpec", "BurstBuffer",
        "BurstBufferState", "CpuFreqMin", "CpuFreqMax", "CpuFreqGov", "Profile",
        "Cluster", "ClusterFeatures", "FedOrigin", "FedViableSiblings", "FedActiveSiblings", "SiblingsActive",
        "SiblingsViable", "LicensesAlloc", "Prefer", "CronJob", "CrontabSpec", "OOMKillStep", "Segment",
    };

    // ---- shared pieces ----

    /// <summary>Reads Slurm's <c>code:signal</c> exit code; (null, null) when absent or unreadable.</summary>
    public static (int? Code, int? Signal) ParseExitCode(string? text)
    {
        var parts = (text ?? "").Trim().Split(':');
        if (parts.Length == 2 && int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var code)
            && int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var signal))
            return (code, signal);
        return (null, null);
    }

    /// <summary>Reads a Slurm time (<c>2026-11-25T02:41:12</c>, local to the cluster, no zone) in
    /// <paramref name="zone"/> (null: this machine's). <c>Unknown</c>, <c>None</c>, <c>N/A</c>, <c>(null)</c>,
    /// empty and anything unreadable are null: times are informative, never what decides a state.</summary>
    public static DateTimeOffset? ParseTime(string? text, TimeZoneInfo? zone = null)
    {
        if (!DateTime.TryParseExact((text ?? "").Trim(), "yyyy-MM-dd'T'HH:mm:ss", CultureInfo.InvariantCulture,
                DateTimeStyles.None, out var local))
            return null;
        local = DateTime.SpecifyKind(local, DateTimeKind.Unspecified);
        return new DateTimeOffset(local, (zone ?? TimeZoneInfo.Local).GetUtcOffset(local));
    }

    private static string? Invalid(string id, string state)
    {
        id = id.Trim();
        state = state.Trim();
        if (!ParsedJobIdRegex().IsMatch(id)) return $"'{SbatchScript.Printable(id)}' is not a Slurm job id";
        if (state.Length == 0) return "no job state";
        return null;
    }

    private static string? NullIfNone(string? value)
    {
        var v = value?.Trim();
        return v is null or "" or "(null)" or "None" or "N/A" ? null : v;
    }

    /// <summary>A job's nodes, every one named (<c>node1,node2</c> for Slurm's <c>node[1-2]</c>), so each shows
    /// where the attempt ran; null where none is assigned.</summary>
    private static string? NodeOrNull(string? value)
    {
        var v = NullIfNone(value);
        return v is null or "None assigned" ? null : SlurmHostlist.Join(v);
    }

    // Trailing whitespace and \r are dropped: squeue pads nothing in our format, and a comment with
    // trailing spaces is never one Sparky wrote.
    private static IEnumerable<string> Lines(string text) => text.Split('\n').Select(l => l.TrimEnd());

    [GeneratedRegex(@"\A(?<id>[0-9]+)(;(?<cluster>[A-Za-z0-9_.-]+))?\z", RegexOptions.CultureInvariant)]
    private static partial Regex SbatchRegex();

    // 1234, 1234_5, 1234_[5-9%2], 1234_[1,3,5-7], 1234+0 (a het job component).
    [GeneratedRegex(@"\A[0-9]+(_([0-9]+|\[[0-9,:%\-]+\])|\+[0-9]+)?\z", RegexOptions.CultureInvariant)]
    private static partial Regex ParsedJobIdRegex();

    [GeneratedRegex(@"\A[0-9]+(_[0-9]+)?\z", RegexOptions.CultureInvariant)]
    private static partial Regex QueryJobIdRegex();

    [GeneratedRegex(@"(?:\A|(?<=\s))(?<key>[A-Za-z][A-Za-z0-9_:/\-]*)=", RegexOptions.CultureInvariant)]
    private static partial Regex ScontrolKeyRegex();
}
