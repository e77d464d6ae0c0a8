using System.Text;
using System.Text.Json.Nodes;
using Sparky.Core.Tasks;

namespace Sparky.Plans;

/// <summary>
/// One task of a workstream as the daemon takes it: its id, the ids its elements get (one, or one per array index as
/// the daemon names them, <c>&lt;id&gt;_&lt;index&gt;</c>), and the submission, typed, with the envelope that is
/// stored with it (what <c>POST /api/v1/tasks</c> would take for the same task, and parse to the same spec).
/// </summary>
public sealed record TaskEnvelope(string TaskName, string Id, IReadOnlyList<string> TaskIds, Submission Submission)
{
    public JsonObject Envelope => Submission.Envelope;
}

/// <summary>Turns a workstream's tasks into submissions with ids that are the same every time for the same attempt.</summary>
public static class PlanEnvelopes
{
    /// <summary>Room left in an id for the daemon's <c>_&lt;index&gt;</c> on array elements (up to 99,999,999).</summary>
    private const int MaxIdLength = 128 - 9;
    private const int PrefixLength = 80;

    /// <summary>
    /// The envelopes for one submission of <paramref name="ws"/>, in file order (a task's dependencies may come after
    /// it: the daemon takes a batch whole). <paramref name="attempt"/> (1, 2, …) counts submissions of this workstream,
    /// so a re-run after a failure gets fresh ids while a crash-resume of the same attempt gets the same ones (409 = already there).
    /// </summary>
    /// <param name="baseDir">The plan file's folder: the cwd of tasks that name none, and the base of relative ones.</param>
    public static IReadOnlyList<TaskEnvelope> For(Plan plan, Phase phase, Workstream ws, int attempt, string baseDir)
    {
        var ids = ws.Tasks.ToDictionary(t => t.Name, t => TaskId(plan.Name, phase.Name, ws.Name, t.Name, ws.Hash, attempt), StringComparer.Ordinal);
        var elements = ws.Tasks.ToDictionary(t => t.Name, t => ElementIds(ids[t.Name], t.Array), StringComparer.Ordinal);
        var result = new List<TaskEnvelope>(ws.Tasks.Count);
        foreach (var t in ws.Tasks)
        {
            var o = t.Options;
            var env = new Dictionary<string, string>(o.Env, StringComparer.Ordinal)
            {
                // So a task can tell where in the plan it runs.
                ["SPARKY_PLAN"] = plan.Name,
                ["SPARKY_PLAN_PHASE"] = phase.Name,
                ["SPARKY_PLAN_WORKSTREAM"] = ws.Name,
            };
            var cwd = o.Cwd is { } dir ? Path.GetFullPath(dir, baseDir) : Path.GetFullPath(baseDir);
            var name = DisplayName(plan, phase, ws, t);
            var after = t.After.SelectMany(a => elements[a]).Distinct().ToList();

            // The envelope kept with the task, as a client would send it: a crash-resume sends the same one again, and
            // the daemon compares the two, so it is built exactly as it always was.
            var payload = new JsonObject
            {
                ["command"] = t.Argv is { } argv ? new JsonArray(argv.Select(a => (JsonNode?)a).ToArray()) : t.Shell,
            };
            var envJson = new JsonObject();
            foreach (var (k, v) in env) envJson[k] = v;
            payload["env"] = envJson;
            payload["cwd"] = cwd;
            if (o.TimeoutSeconds is { } to) payload["timeout_seconds"] = to;
            if (o.Retries is { } r) payload["retries"] = r;
            var res = new JsonObject();
            if (o.Cpus is { } cpus) res["cpus"] = cpus;
            if (o.MemoryMb is { } mem) res["memory_mb"] = mem;
            if (o.Gpus is { } gpus) res["gpus"] = gpus;
            if (o.GpuMemoryMb is { } gm) res["gpu_memory_mb"] = gm;
            if (o.Nodes is { } nodes) res["nodes"] = nodes;
            if (o.GpusPerNode is { } gpn) res["gpus_per_node"] = gpn;
            if (o.ProcsPerNode is { } ppn) res["procs_per_node"] = ppn;
            if (o.Exclusive is { } exclusive) res["exclusive"] = exclusive;
            if (o.Port is { } port) payload["port"] = port;
            if (res.Count > 0) payload["resources"] = res;

            var envelope = new JsonObject { ["id"] = ids[t.Name] };
            if (o.Class is { } cls) envelope["class"] = cls;
            envelope["name"] = name;
            if (after.Count > 0) envelope["after"] = new JsonArray(after.Select(a => (JsonNode?)a).ToArray());
            if (t.Array is { } arr) envelope["array"] = arr.ToString();
            envelope["payload"] = payload;
            // Kept by the daemon with the task (unknown fields are not dropped): a task can be traced back to its plan.
            envelope["plan"] = new JsonObject
            {
                ["name"] = plan.Name,
                ["phase"] = phase.Name,
                ["workstream"] = ws.Name,
                ["task"] = t.Name,
                ["hash"] = ws.Hash,
                ["attempt"] = attempt,
            };
            // The spec that envelope parses to, built directly: sizes in MiB read as the parser reads them.
            var spec = TaskSpec.Of(t.Argv, t.Shell, o with
            {
                Env = env,
                Cwd = cwd,
                MemoryMb = o.MemoryMb is { } mb ? EnvelopeParser.MiB(mb) : null,
                GpuMemoryMb = o.GpuMemoryMb is { } gmb ? EnvelopeParser.MiB(gmb) : null,
            }) with { Name = name, After = after.Select(Core.Tasks.TaskId.Parse).ToList() };
            var submission = new Submission(Core.Tasks.TaskId.Parse(ids[t.Name]), spec, envelope, t.Array);
            result.Add(new TaskEnvelope(t.Name, ids[t.Name], elements[t.Name], submission));
        }
        return result;
    }

    /// <summary>Why the daemon's native door would refuse these tasks' envelopes, in its words (the first refused one,
    /// with its index where there are several, as for an array sent to <c>POST /api/v1/tasks</c>), or null. Built in
    /// the daemon's process, they are checked (<see cref="EnvelopeParser.Check"/>), not written out and parsed again.</summary>
    public static string? Refusal(IReadOnlyList<TaskEnvelope> tasks, IReadOnlySet<string> knownClasses)
    {
        for (int i = 0; i < tasks.Count; i++)
            if (EnvelopeParser.Check(tasks[i].Submission, knownClasses) is { Count: > 0 } errors)
                return tasks.Count == 1 ? string.Join("; ", errors) : $"task [{i}]: {string.Join("; ", errors)}";
        return null;
    }

    /// <summary>
    /// A task's id: a readable prefix (names, sanitized and clipped) and 12 hex digits of a hash of the exact names,
    /// the workstream's hash and the attempt, so names that sanitize alike still get different ids.
    /// Always matches <see cref="Core.Tasks.TaskId.Pattern"/> with room for an array index.
    /// </summary>
    public static string TaskId(string plan, string phase, string workstream, string task, string hash, int attempt)
    {
        var readable = string.Join('.', new[] { plan, phase, workstream, task }.Select(Sanitize));
        if (readable.Length > PrefixLength) readable = readable[..PrefixLength].TrimEnd('.', '-');
        if (readable.Length == 0 || !char.IsAsciiLetterOrDigit(readable[0])) readable = "p" + readable;
        var digest = SpecHash.Sha256(string.Join('\0', plan, phase, workstream, task, hash, attempt.ToString()))[..12];
        var id = $"{readable}-{digest}";
        return id.Length <= MaxIdLength ? id : id[..(MaxIdLength - 13)] + "-" + digest;
    }

    private static IReadOnlyList<string> ElementIds(string id, ArrayRange? array) =>
        array is { } a ? a.Indices().Select(i => $"{id}_{i}").ToList() : [id];

    private static string DisplayName(Plan plan, Phase phase, Workstream ws, PlanTask t)
    {
        var name = ws.Single ? $"{plan.Name}/{phase.Name}/{ws.Name}" : $"{plan.Name}/{phase.Name}/{ws.Name}/{t.Name}";
        return name.Length <= EnvelopeParser.MaxNameLength ? name : name[..EnvelopeParser.MaxNameLength];
    }

    private static string Sanitize(string name)
    {
        var sb = new StringBuilder(name.Length);
        foreach (var c in name) sb.Append(char.IsAsciiLetterOrDigit(c) || c is '_' or '-' ? c : '_');
        return sb.ToString();
    }
}
