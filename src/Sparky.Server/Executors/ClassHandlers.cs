using Sparky.Core.Config;
using Sparky.Core.Tasks;
using Sparky.Execution.Slurm;

namespace Sparky.Server.Executors;

/// <summary>
/// Tasks whose payload names work instead of a command (<see cref="TaskSpec.HandlerPayload"/>, as the replaced system's
/// clients send them) are run by their class's handler. Locally and on Slurm the handler is <c>&lt;class&gt;_handler</c>,
/// an argv given the payload as JSON on stdin and in <c>$SPARKY_PAYLOAD_FILE</c> (a file this daemon writes, owner-only,
/// removed when the attempt ends); on Slurm a <c>&lt;class&gt;_sbatch_template</c> wins, filled from the payload. On
/// workers the worker writes the file (the payload travels in the task message).
/// </summary>
public sealed class ClassHandlers(SparkyConfig config, string runDir, IReadOnlySet<string> workerClasses)
{
    private const string PayloadSuffix = ".payload.json";

    /// <summary>What runs a payload-only task of <paramref name="cls"/> here: a handler argv, or a batch template on Slurm
    /// (which wins), or neither. A worker class runs tasks on workers, so only its handler applies.</summary>
    public (IReadOnlyList<string>? Handler, string? Template) HandlerOf(string cls)
    {
        var template = workerClasses.Contains(cls) ? null : config.SbatchTemplateFor(cls);
        return (template is null ? config.HandlerFor(cls) : null, template);
    }

    /// <summary><c>&lt;data&gt;/run/&lt;id&gt;.&lt;attempt&gt;.payload.json</c>: beside the exit files, on the same (shared) file
    /// system as the logs, so a Slurm job reads it where it reads nothing else of the daemon's.</summary>
    public string PayloadPath(TaskId id, int attempt) => Path.Combine(runDir, $"{id.Value}.{attempt}{PayloadSuffix}");

    /// <summary>Writes an attempt's payload for its handler: readable by this user only (it may hold what a client
    /// would not show others), replaced whole if a crashed start left one.</summary>
    public string WritePayloadFile(TaskId id, int attempt, string payloadJson)
    {
        var path = PayloadPath(id, attempt);
        using (var f = new FileStream(path, new FileStreamOptions
        {
            Mode = FileMode.Create, Access = FileAccess.Write,
            UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
        }))
        {
            f.Write(System.Text.Encoding.UTF8.GetBytes(payloadJson));
        }
        return path;
    }

    /// <summary>Payload files no attempt in flight owns (a daemon died between writing one and its attempt's end).</summary>
    public void RemoveStalePayloadFiles(IReadOnlySet<string> keep)
    {
        try
        {
            foreach (var f in Directory.EnumerateFiles(runDir, "*" + PayloadSuffix))
                if (!keep.Contains(f))
                    try { File.Delete(f); } catch (IOException) { }
        }
        catch (IOException) { }
    }

    /// <summary>Why a payload-only task cannot fill its class's batch template, naming each field, or null. Checked at
    /// submit, so the client hears it (and again at the start, where the template may have changed).</summary>
    public string? WhyTemplateRefuses(TaskSpec spec)
    {
        if (spec.HandlerPayload is not { } payload || HandlerOf(spec.Class).Template is not { } path) return null;
        var (_, errors) = FillTemplate(spec.Class, path, payload, "task-id");
        return errors.Count == 0 ? null : string.Join("; ", errors);
    }

    /// <summary>Reads and fills <c>&lt;class&gt;_sbatch_template</c>; the errors say which setting and file they concern.</summary>
    public static (string? Script, IReadOnlyList<string> Errors) FillTemplate(string cls, string path, string payload, string taskId)
    {
        string text;
        try { text = File.ReadAllText(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return (null, [$"{cls}_sbatch_template '{path}' cannot be read: {e.Message}"]);
        }
        var (script, errors) = SbatchTemplate.Fill(text, payload, taskId);
        return errors.Count == 0 ? (script, errors) : (null, errors.Select(e => $"{e} ({cls}_sbatch_template {path})").ToList());
    }
}
