using System.Text;
using System.Text.Json.Nodes;
using Sparky.Core.Tasks;

namespace Sparky.Plans;

/// <summary>
/// One task of a workstream as the daemon takes it (<c>POST /api/v1/tasks</c>): its id, the ids its elements get
/// (one, or one per array index as the daemon names them, <c>&lt;id&gt;_&lt;index&gt;</c>), and the envelope.
/// </summary>
public sealed record TaskEnvelope(string TaskName, string Id, IReadOnlyList<string> TaskIds, JsonObject Envelope);

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
            var payload = new JsonObject
            {
                ["command"] = t.Argv is { } argv ? new JsonArray(argv.Select(a => (JsonNode?)a).ToArray()) : t.Shell,
            };
            var env = new JsonObject();
            foreach (var (k, v) in t.Env) env[k] = v;
            // So a task can tell where in the plan it runs.
            env["SPARKY_PLAN"] = plan.Name;
            env["SPARKY_PLAN_PHASE"] = phase.Name;
            env["SPARKY_PLAN_WORKSTREAM"] = ws.Name;
            payload["env"] = env;
            payload["cwd"] = t.Cwd is { } cwd ? Path.GetFullPath(cwd, baseDir) : Path.GetFullPath(baseDir);
            if (t.TimeoutSeconds is { } to) payload["timeout_seconds"] = to;
            if (t.Retries is { } r) payload["retries"] = r;
            var res = new JsonObject();
            if (t.Cpus is { } cpus) res["cpus"] = cpus;
            if (t.MemoryMb is { } mem) res["memory_mb"] = mem;
            if (t.Gpus is { } gpus) res["gpus"] = gpus;
            if (t.GpuMemoryMb is { } gm) res["gpu_memory_mb"] = gm;
            if (res.Count > 0) payload["resources"] = res;

            var envelope = new JsonObject { ["id"] = ids[t.Name] };
            if (t.Class is { } cls) envelope["class"] = cls;
            envelope["name"] = DisplayName(plan, phase, ws, t);
            var after = t.After.SelectMany(a => elements[a]).Distinct().ToList();
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
            result.Add(new TaskEnvelope(t.Name, ids[t.Name], elements[t.Name], envelope));
        }
        return result;
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
