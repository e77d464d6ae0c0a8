using Sparky.Core.Tasks;

namespace Sparky.Server.Executors;

/// <summary>
/// <c>logs/&lt;shard&gt;/&lt;id&gt;.&lt;attempt&gt;.out|err</c>: a shard (two hex digits of a hash of the id) keeps
/// directories small, and no directory is made per task, so a task costs two new inodes, not three.
/// </summary>
public sealed class TaskLogs(string logsDir)
{
    private readonly HashSet<string> _shardsMade = new(StringComparer.Ordinal);

    public string Dir => logsDir;

    public string PathOf(TaskId id, int attempt, bool stderr) =>
        Path.Combine(ShardOf(id), $"{id.Value}.{attempt}.{(stderr ? "err" : "out")}");

    /// <summary>Makes the task's shard directory once per daemon (the engine's loop only). A full disk throws.</summary>
    public void EnsureShard(TaskId id)
    {
        var dir = ShardOf(id);
        if (_shardsMade.Contains(dir)) return;
        Directory.CreateDirectory(dir);
        _shardsMade.Add(dir);
    }

    /// <summary>Appends a line saying why to an attempt's stderr log, where <c>sparky logs --stderr</c> shows it.</summary>
    public void Note(TaskId id, int attempt, string why)
    {
        try { File.AppendAllText(PathOf(id, attempt, stderr: true), "sparky: " + why + "\n"); } catch (IOException) { }
    }

    private string ShardOf(TaskId id)
    {
        uint h = 2166136261;
        foreach (char c in id.Value) h = (h ^ c) * 16777619;
        return Path.Combine(logsDir, (h & 0xff).ToString("x2"));
    }
}
