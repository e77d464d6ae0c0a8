using System.Text.Json.Nodes;
using Spectre.Console;
using static Sparky.Cli.TermText;

namespace Sparky.Cli.Progress;

/// <summary>
/// What a follower of some tasks knows of them (a wait's: <c>sparky wait</c>, <c>submit --wait</c>; a plan's:
/// <c>plan run</c>, <c>demo</c>): their states and own progress as reads and events move them, how fast they end; and
/// what to show of it, as markup lines on a terminal or as one plain line. Pure: times are passed in.
/// </summary>
internal sealed class TaskSetProgress
{
    /// <summary>How many running tasks' own progress is shown: on a terminal, and in a plain line.</summary>
    private const int LiveTasks = 5, PlainTasks = 2;

    /// <summary>The tasks followed, in the order they were given (the first ones' progress is shown first).</summary>
    private readonly List<string> _ids = [];
    private readonly HashSet<string> _wanted = new(StringComparer.Ordinal);
    private readonly string _title, _noun;
    private readonly DateTimeOffset _began;
    private readonly Dictionary<string, string> _states = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string?> _names = new(StringComparer.Ordinal);
    private readonly Dictionary<string, TaskProgress> _progress = new(StringComparer.Ordinal);
    private readonly Dictionary<string, RateMeter> _taskRates = new(StringComparer.Ordinal);
    private readonly RateMeter _rate = new();

    /// <param name="noun">What is counted in a line: "done" reads "3/10 done"; "tasks done", "3/10 tasks done".</param>
    public TaskSetProgress(IEnumerable<string> ids, string title, DateTimeOffset began, string noun = "done")
    {
        Track(ids);
        _title = Visible(title);
        _noun = noun;
        _began = began;
        _rate.Add(began, 0);
    }

    /// <summary>Follows these tasks too (a plan's, as its phases submit them).</summary>
    public void Track(IEnumerable<string> ids)
    {
        foreach (var id in ids)
            if (_wanted.Add(id)) _ids.Add(id);
    }

    /// <summary>How many tasks there will be in all (a plan's later phases list tasks not submitted yet); at least those followed.</summary>
    public int Total { get => Math.Max(_total, _ids.Count); set => _total = value; }
    private int _total;

    /// <summary>The tasks that ended, as last read (what the wait prints and returns).</summary>
    public Dictionary<string, JsonNode> Final { get; } = new(StringComparer.Ordinal);

    public bool Done => Final.Count >= Total;

    /// <summary>The tasks still to end.</summary>
    public IEnumerable<string> Pending => _ids.Where(id => !Final.ContainsKey(id));

    /// <summary>A running task's own progress, where it reported one.</summary>
    public TaskProgress? ProgressOf(string id) => _progress.GetValueOrDefault(id);

    /// <summary>A task as read from the daemon.</summary>
    public void Saw(JsonNode task, DateTimeOffset now)
    {
        if (JsonRead.Str(task, "id") is not { } id || !_wanted.Contains(id) || Final.ContainsKey(id)) return;
        var state = JsonRead.Str(task, "state") ?? "queued";
        _states[id] = state;
        _names[id] = JsonRead.Str(task, "name");
        if (TaskProgress.Of(task["progress"]) is { } p) Progressed(id, p, now);
        if (state is "succeeded" or "failed" or "cancelled")
        {
            Final[id] = task;
            _progress.Remove(id);
            _taskRates.Remove(id);
            _rate.Add(now, Final.Count);
        }
    }

    /// <summary>An event from the daemon. True when the task ended: its final record is to be read.</summary>
    public bool Apply(string topic, JsonObject body, DateTimeOffset now)
    {
        if (JsonRead.Str(body, "id") is not { } id || !_wanted.Contains(id) || Final.ContainsKey(id)) return false;
        switch (topic)
        {
            case "task.started": _states[id] = "running"; break;
            case "task.retrying": _states[id] = "queued"; break;
            case "task.progress" when TaskProgress.Of(body["progress"]) is { } p: Progressed(id, p, now); break;
            case "task.finished": return true;
        }
        return false;
    }

    private void Progressed(string id, TaskProgress p, DateTimeOffset now)
    {
        _progress[id] = p;
        if (p.Done is { } done)
        {
            if (!_taskRates.TryGetValue(id, out var rate)) _taskRates[id] = rate = new RateMeter();
            rate.Add(now, done);
        }
    }

    private int Count(Func<string, bool> state) => _ids.Count(id => !Final.ContainsKey(id) && state(_states.GetValueOrDefault(id, "queued")));

    private int Failed => Final.Values.Count(t => JsonRead.Str(t, "state") != "succeeded");

    /// <summary>"3/10 done, 1 failed, 2 running, 5 queued": what changed, when a plain line is due.</summary>
    private string Counts()
    {
        int failed = Failed, running = Count(s => s == "running"), queued = Count(s => s != "running");
        var parts = new List<string> { $"{Final.Count}/{Total} {_noun}" };
        if (failed > 0) parts.Add($"{failed} failed");
        if (running > 0) parts.Add($"{running} running");
        if (queued > 0) parts.Add($"{queued} queued");
        return string.Join(", ", parts);
    }

    /// <summary>"0.8/s, ETA 9s": how fast tasks end, for a wait on more than one.</summary>
    private string? Pace(DateTimeOffset now)
    {
        if (Total < 2 || Done) return null;
        if (_rate.PerSecond(now) is not { } rate) return null;
        var eta = _rate.Eta(Total - Final.Count, now);
        return RateMeter.RateText(rate) + (eta is { } e ? ", ETA " + RateMeter.DurationText(e) : "");
    }

    /// <summary>The running tasks that report progress, the first ones asked for first.</summary>
    private IEnumerable<(string Id, TaskProgress Progress)> Reporting() =>
        _ids.Where(id => !Final.ContainsKey(id) && _progress.ContainsKey(id)).Select(id => (id, _progress[id]));

    /// <summary>A task's own progress with its ETA: "45/100 epoch 5, ETA 1m10s".</summary>
    public string TaskText(string id, TaskProgress p, DateTimeOffset now)
    {
        var text = p.Text;
        if (p.Total is { } total && p.Done is { } done && _taskRates.TryGetValue(id, out var rate) && rate.Eta(total - done, now) is { } eta && eta > TimeSpan.Zero)
            text += ", ETA " + RateMeter.DurationText(eta);
        return text;
    }

    private string Label(string id) => _names.GetValueOrDefault(id) is { Length: > 0 } name ? $"{id} ({name})" : id;

    // ---------- plain lines ----------

    /// <summary>What a plain line is printed for: a change of counts or of a task's progress (not of the rate alone).</summary>
    public string PlainKey() => Counts() + string.Concat(Reporting().Take(PlainTasks).Select(r => "|" + r.Id + r.Progress.Text));

    /// <summary>One line: "waiting: 3/10 done, 2 running, 0.8/s, ETA 9s; ID (name): 45/100 epoch 5, ETA 1m10s".</summary>
    public string PlainLine(DateTimeOffset now)
    {
        var line = $"{_title}: {Counts()}";
        if (Done) return line + " in " + Sparky.Core.Tasks.Durations.Format(now - _began);
        if (Pace(now) is { } pace) line += ", " + pace;
        var reporting = Reporting().ToList();
        foreach (var (id, p) in reporting.Take(PlainTasks)) line += $"; {Visible(Label(id))}: {Visible(TaskText(id, p, now))}";
        if (reporting.Count > PlainTasks) line += $"; {reporting.Count - PlainTasks} more reporting";
        return line;
    }

    // ---------- the terminal ----------

    /// <summary>Markup lines for a live view <paramref name="width"/> columns wide: a bar for the tasks, then (unless
    /// <paramref name="tasks"/> is false: a plan's tree shows them) one per running task that reports progress.</summary>
    public IReadOnlyList<string> LiveLines(DateTimeOffset now, int width, bool tasks = true)
    {
        width = Math.Max(width, 20);
        int total = Total, failed = Failed;
        var head = $"{Markup.Escape(_title)} [green]{Bar(total == 0 ? 1 : (double)Final.Count / total, 20)}[/] {Final.Count}/{total} {_noun}";
        if (failed > 0) head += $" · [red]{failed} failed[/]";
        int running = Count(s => s == "running");
        if (running > 0) head += $" · [blue]{running} running[/]";
        if (Pace(now) is { } pace) head += " · " + pace.Replace(", ", " · ");
        head += $" · [grey]{RateMeter.DurationText(now - _began)}[/]";
        var lines = new List<string> { head };
        var reporting = tasks ? Reporting().ToList() : [];
        int labelWidth = Math.Clamp(width / 3, 10, 40), barWidth = 10;
        foreach (var (id, p) in reporting.Take(LiveTasks))
        {
            int rest = Math.Max(0, width - 2 - labelWidth - 1 - barWidth - 1);
            var bar = p.Fraction is { } f ? $"[green]{Bar(f, barWidth)}[/]" : new string(' ', barWidth);
            lines.Add($"  {Cell(Label(id), labelWidth)} {bar} {Cell(TaskText(id, p, now), rest)}");
        }
        if (reporting.Count > LiveTasks) lines.Add($"  [grey]{reporting.Count - LiveTasks} more reporting progress[/]");
        return lines.Select(l => FitMarkup(l, width)).ToList();
    }
}
