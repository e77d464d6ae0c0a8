using System.Text.Json.Nodes;
using Sparky.Cli.Progress;

namespace Sparky.Cli.Top;

/// <summary>A key as the view reads it: the character typed and the key's name (Enter, Escape, Backspace…).</summary>
internal readonly record struct KeyPress(char Char, ConsoleKey Key);

internal enum KeyOutcome { None, Redraw, Quit }

/// <summary>
/// What <c>sparky top</c> knows of the daemon: built from full reads (<see cref="Apply(TopSnapshot)"/>) and kept
/// current by events between them (<see cref="Apply(string, long, JsonObject)"/>), plus the filter being typed.
/// Pure: no I/O, no clock (an event carries its time); <see cref="TopView"/> draws it.
/// </summary>
internal sealed class TopState(string server)
{
    /// <summary>How many ended tasks are kept (the view shows what fits).</summary>
    public const int EndedKept = 50;
    /// <summary>How many names from <c>task.queued</c> are remembered for the tasks' starts.</summary>
    private const int NamesKept = 10_000;
    /// <summary>The longest filter that can be typed.</summary>
    public const int FilterMax = 64;

    private readonly Dictionary<string, RunningTask> _running = new(StringComparer.Ordinal);
    private readonly List<EndedTask> _ended = [];
    private readonly Dictionary<string, string?> _names = new(StringComparer.Ordinal);

    public string Server { get; } = server;
    public IReadOnlyList<ClassRow> Classes { get; private set; } = [];
    public IReadOnlyList<GpuRow> Gpus { get; private set; } = [];
    /// <summary>Whether the event stream is open: the view is live.</summary>
    public bool Live { get; set; }
    /// <summary>Why the view may be stale (the stream broke, a read failed); null when all is well.</summary>
    public string? Problem { get; set; }
    public string Filter { get; private set; } = "";
    /// <summary>The filter is being typed (after <c>/</c>).</summary>
    public bool Editing { get; private set; }

    public int RunningCount => _running.Count;
    public int EndedCount => _ended.Count;

    /// <summary>The topics the view follows.</summary>
    public static bool Wants(string topic) => topic.StartsWith("task.", StringComparison.Ordinal);

    // ---------- full reads ----------

    public void Apply(TopSnapshot s)
    {
        if (s.Classes is not null) SetClasses(s.Classes);
        if (s.Gpus is not null) SetGpus(s.Gpus);
        var running = new Dictionary<string, RunningTask>(StringComparer.Ordinal);
        foreach (var t in s.Running)
            if (RunningTask.Of(t) is { } r)
            {
                // A progress reported by an event since is as new as the read's, or newer.
                r.Progress ??= _running.GetValueOrDefault(r.Id)?.Progress;
                running[r.Id] = r;
            }
        _running.Clear();
        foreach (var (id, r) in running) _running[id] = r;
        var ended = _ended.ToDictionary(e => e.Id, StringComparer.Ordinal);
        foreach (var t in s.Ended)
            if (EndedTask.Of(t) is { } e) ended.TryAdd(e.Id, e);
        _ended.Clear();
        _ended.AddRange(ended.Values.OrderByDescending(e => e.EndedAt ?? DateTimeOffset.MinValue).Take(EndedKept));
    }

    public void SetClasses(JsonNode classes) =>
        Classes = (classes["classes"] as JsonArray ?? []).Select(ClassRow.Of).OfType<ClassRow>().ToList();

    public void SetGpus(JsonNode gpus) =>
        Gpus = (gpus["gpus"] as JsonArray ?? []).Select(GpuRow.Of).OfType<GpuRow>().ToList();

    // ---------- events ----------

    /// <summary>One event from the daemon; true when it changed what the view shows.</summary>
    public bool Apply(string topic, long tsMs, JsonObject body)
    {
        if (JsonRead.Str(body, "id") is not { } id) return false;
        var cls = JsonRead.Str(body, "class") ?? "";
        switch (topic)
        {
            case "task.queued":
                if (_names.Count >= NamesKept) _names.Clear();
                _names[id] = JsonRead.Str(body, "name");
                return false;
            case "task.started":
                _running[id] = new RunningTask(id, cls)
                {
                    Name = _names.GetValueOrDefault(id),
                    StartedAt = tsMs > 0 ? DateTimeOffset.FromUnixTimeMilliseconds(tsMs) : null,
                    Attempt = (int?)JsonRead.Long(body, "attempt"),
                    // Its name came with its submission; a task queued before the view began is read once.
                    Described = _names.ContainsKey(id),
                };
                return true;
            case "task.retrying":
                ReleaseGpus(id);
                return _running.Remove(id);
            case "task.finished":
                ReleaseGpus(id);
                _running.Remove(id, out var was);
                _ended.RemoveAll(e => e.Id == id);
                _ended.Insert(0, new EndedTask(id, was?.Name ?? _names.GetValueOrDefault(id), cls, JsonRead.Str(body, "state") ?? "?",
                    (int?)JsonRead.Long(body, "exit_code"), (int?)JsonRead.Long(body, "signal"), JsonRead.Str(body, "reason"),
                    JsonRead.Long(body, "duration_ms"), tsMs > 0 ? DateTimeOffset.FromUnixTimeMilliseconds(tsMs) : null));
                if (_ended.Count > EndedKept) _ended.RemoveAt(_ended.Count - 1);
                _names.Remove(id);
                return true;
            case "task.progress":
                if (!_running.TryGetValue(id, out var r)) return false;
                r.Progress = TaskProgress.Of(body["progress"]);
                return true;
            default:
                return false;
        }
    }

    /// <summary>A task that stopped running holds no GPU any more (which one a start takes, only a read says).</summary>
    private void ReleaseGpus(string id)
    {
        if (Gpus.Any(g => g.Holders.Any(h => h.Id == id)))
            Gpus = Gpus.Select(g => g with { Holders = g.Holders.Where(h => h.Id != id).ToList() }).ToList();
    }

    /// <summary>Whether an event changes the classes' counts (they are read again, shortly after).</summary>
    public static bool ChangesCounts(string topic) => topic is "task.queued" or "task.started" or "task.retrying" or "task.finished";

    /// <summary>Up to <paramref name="max"/> running tasks whose details are not known yet; each is returned once.</summary>
    public IReadOnlyList<string> TakeUndescribed(int max)
    {
        var ids = new List<string>();
        foreach (var r in _running.Values)
        {
            if (ids.Count >= max) break;
            if (r.Described) continue;
            r.Described = true;
            ids.Add(r.Id);
        }
        return ids;
    }

    /// <summary>A running task's details, read after its start.</summary>
    public void Describe(JsonNode task)
    {
        if (RunningTask.Of(task) is not { } read || !_running.TryGetValue(read.Id, out var r)) return;
        r.Name = read.Name;
        r.StartedAt ??= read.StartedAt;
        r.Progress ??= read.Progress;
    }

    // ---------- keys and the filter ----------

    public KeyOutcome OnKey(KeyPress k)
    {
        if (Editing)
        {
            switch (k.Key)
            {
                case ConsoleKey.Enter:
                    Editing = false;
                    return KeyOutcome.Redraw;
                case ConsoleKey.Escape:
                    (Filter, Editing) = ("", false);
                    return KeyOutcome.Redraw;
                case ConsoleKey.Backspace:
                    if (Filter.Length > 0) Filter = Filter[..^1];
                    return KeyOutcome.Redraw;
                default:
                    if (char.IsControl(k.Char) || k.Char == '\0' || Filter.Length >= FilterMax) return KeyOutcome.None;
                    Filter += k.Char;
                    return KeyOutcome.Redraw;
            }
        }
        if (k.Char is 'q' or 'Q') return KeyOutcome.Quit;
        if (k.Char == '/')
        {
            Editing = true;
            return KeyOutcome.Redraw;
        }
        if (k.Key == ConsoleKey.Escape && Filter.Length > 0)
        {
            Filter = "";
            return KeyOutcome.Redraw;
        }
        return KeyOutcome.None;
    }

    /// <summary>Whether a task passes the filter: its id, name or class contains the text, in any case.</summary>
    public bool Matches(string id, string? name, string cls) =>
        Filter.Length == 0
        || id.Contains(Filter, StringComparison.OrdinalIgnoreCase)
        || (name?.Contains(Filter, StringComparison.OrdinalIgnoreCase) ?? false)
        || cls.Contains(Filter, StringComparison.OrdinalIgnoreCase);

    /// <summary>The running tasks that pass the filter, the longest-running first.</summary>
    public IReadOnlyList<RunningTask> VisibleRunning() =>
        _running.Values.Where(r => Matches(r.Id, r.Name, r.Class))
            .OrderBy(r => r.StartedAt ?? DateTimeOffset.MaxValue).ThenBy(r => r.Id, StringComparer.Ordinal).ToList();

    /// <summary>The ended tasks that pass the filter, the latest first.</summary>
    public IReadOnlyList<EndedTask> VisibleEnded() => _ended.Where(e => Matches(e.Id, e.Name, e.Class)).ToList();
}
