using System.Globalization;
using System.Text;

namespace Sparky.Core.Tasks;

/// <summary>
/// One page of the task list as asked (<c>GET /api/v1/tasks</c>, ZeroMQ <c>list</c>, <c>sparky ls</c>): tasks in any of
/// <see cref="States"/> (none: every state), of any of <see cref="Classes"/> (none: every class), whose name or command
/// line holds <see cref="Text"/> (case-insensitive), in submission order after <see cref="Cursor"/> (before it when
/// <see cref="Descending"/>). The cursor is the last task's submission number, so a page never repeats or skips a task
/// that existed when the paging began, whatever is added or changes state meanwhile.
/// </summary>
public sealed record TaskQuery
{
    public const int DefaultLimit = 100;
    public const int MaxLimit = 10_000;
    /// <summary>The search matches runs of three characters (SQLite's trigram index): a shorter text is refused.</summary>
    public const int MinTextLength = 3;
    /// <summary>Each character of a search is a lookup in the index: a bound keeps one request cheap.</summary>
    public const int MaxTextLength = 200;

    public IReadOnlyList<TaskState> States { get; init; } = [];
    public IReadOnlyList<string> Classes { get; init; } = [];
    public string? Text { get; init; }
    public int Limit { get; init; } = DefaultLimit;
    public long? Cursor { get; init; }
    public bool Descending { get; init; }

    public bool Filtered => States.Count > 0 || Classes.Count > 0;
}

/// <summary>How a page of the task list is found: decided from the query and the counts alone, so it is tested without
/// a store (<see cref="TaskQueries.Plan"/>).</summary>
public enum TaskListPlan
{
    /// <summary>No search: the (class, state) index, or the table itself, in submission order.</summary>
    Scan,
    /// <summary>The search index drives, in submission order; each match is checked against the filter, if any (<see cref="SearchWalk"/>).</summary>
    Search,
    /// <summary>A small filter drives: its tasks in submission order, each one's name and command matched as text.</summary>
    FilterThenMatch,
}

/// <summary>
/// How far one request walks the search index under a filter: windows of submission numbers (seqs) from the cursor on,
/// each sized from what the last one cost, until the page is full, the tasks run out, or <see cref="Budget"/> is spent.
/// Then the page comes back short, with the cursor where the walk stopped, and the next request goes on from there: a
/// search whose many matches the filter mostly rejects costs a few such pages instead of one slow answer. (Without a
/// filter every match is taken, and one query reads the page.) The index itself looks past a window for its first
/// match, so a text that matches nothing while each of its runs of three is common (words in an order no command has)
/// still costs a read of the tasks that hold them all; see bench/README.md.
/// </summary>
public static class SearchWalk
{
    /// <summary>The first window's span in seqs: a few milliseconds of matches even when the filter rejects them all.</summary>
    public const long FirstSpan = 4_096;
    public static readonly TimeSpan Budget = TimeSpan.FromMilliseconds(25);
    /// <summary>Smaller windows than this are not worth a query: the walk stops and says where.</summary>
    public const long MinSpan = 1_024;

    /// <summary>The next window's span after one of <paramref name="span"/> seqs took <paramref name="took"/>, with
    /// <paramref name="spent"/> spent in all: at most four times larger, and no larger than the rest of the budget
    /// affords at the last window's rate. 0: stop here.</summary>
    public static long NextSpan(long span, TimeSpan took, TimeSpan spent)
    {
        var left = Budget - spent;
        if (left <= TimeSpan.Zero) return 0;
        long next = span > long.MaxValue / 4 ? long.MaxValue : span * 4;
        if (took > TimeSpan.Zero) next = (long)Math.Min(next, span * (left / took));
        return next < MinSpan ? 0 : next;
    }
}

/// <summary>Reads a task list query from a request's parameters; each refusal names the parameter it is about.</summary>
public static class TaskQueries
{
    /// <summary>
    /// A search under a filter either reads the filter's tasks and matches each one's text (<paramref name="filterRows"/>
    /// of them at most), or walks the index's matches until a page of them pass the filter: about limit × total /
    /// filterRows of them when the filter has nothing to do with the text. One task costs about the same either way
    /// (a row read; measured in bench/tasklist), so the filter is read when filterRows² ≤ limit × total: at most
    /// 10,000 tasks of a million for a page of 100, a few milliseconds, and a walk past that is cheaper still.
    /// </summary>
    public static TaskListPlan Plan(TaskQuery q, long filterRows, long totalRows) =>
        q.Text is null ? TaskListPlan.Scan
        : q.Filtered && (double)filterRows * filterRows <= (double)q.Limit * totalRows ? TaskListPlan.FilterThenMatch
        : TaskListPlan.Search;

    /// <summary>The query, or one line saying which parameter is wrong and why. <paramref name="limit"/> and
    /// <paramref name="cursor"/> as integers (ZeroMQ sends them so); <see cref="ParseInteger"/> reads them from text.</summary>
    /// <param name="state">Comma-separated states; empty items are ignored.</param>
    /// <param name="cls">Comma-separated classes, each one of <paramref name="knownClasses"/>.</param>
    /// <param name="text">The search; empty is none.</param>
    public static (TaskQuery? Query, string? Error) Parse(string? state, string? cls, string? text, long? limit, long? cursor, string? order,
        IReadOnlyCollection<string> knownClasses)
    {
        var states = new List<TaskState>();
        foreach (var item in Items(state))
        {
            if (!TaskStates.TryParse(item, out var s))
                return Fail($"state: unknown state '{Clip(item)}' (states: {string.Join(", ", Enum.GetValues<TaskState>().Select(v => v.Name()))})");
            if (!states.Contains(s)) states.Add(s);
        }
        var classes = new List<string>();
        foreach (var item in Items(cls))
        {
            if (!knownClasses.Contains(item))
                return Fail($"class: unknown class '{Clip(item)}' (classes: {string.Join(", ", knownClasses.Order(StringComparer.Ordinal))})");
            if (!classes.Contains(item)) classes.Add(item);
        }
        if (string.IsNullOrEmpty(text)) text = null;
        else if (TextProblem(text) is { } problem) return Fail("q: " + problem);
        if (cursor is < 0) return Fail("cursor: not a cursor this API gave (use a page's next_cursor)");
        bool descending;
        if (string.IsNullOrEmpty(order) || order == "asc") descending = false;
        else if (order == "desc") descending = true;
        else return Fail($"order: must be asc or desc, not '{Clip(order)}'");
        return (new TaskQuery
        {
            States = states, Classes = classes, Text = text, Cursor = cursor, Descending = descending,
            // As before: out of range is brought into it, not refused.
            Limit = (int)Math.Clamp(limit ?? TaskQuery.DefaultLimit, 1, TaskQuery.MaxLimit),
        }, null);

        static (TaskQuery?, string?) Fail(string error) => (null, error);
    }

    /// <summary>An integer parameter given as text (<c>limit</c>, <c>cursor</c>): null when absent or empty.</summary>
    public static string? ParseInteger(string name, string? text, out long? value)
    {
        value = null;
        if (string.IsNullOrEmpty(text)) return null;
        if (long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var v)) { value = v; return null; }
        return name == "cursor"
            ? "cursor: not a cursor this API gave (use a page's next_cursor)"
            : $"{name}: must be an integer, not '{Clip(text)}'";
    }

    /// <summary>Why a search text is refused, or null. Its length is counted in characters (code points), as the
    /// trigram index counts them.</summary>
    public static string? TextProblem(string text)
    {
        int length = 0;
        foreach (var rune in text.EnumerateRunes())
        {
            if (Rune.IsControl(rune)) return "must not contain control characters";
            length++;
        }
        if (length < TaskQuery.MinTextLength) return $"must be at least {TaskQuery.MinTextLength} characters (the search matches runs of {TaskQuery.MinTextLength} or more)";
        if (length > TaskQuery.MaxTextLength) return $"must be at most {TaskQuery.MaxTextLength} characters";
        return null;
    }

    /// <summary>Whether a task's name or command line holds the search text, ignoring case: what the search index
    /// answers, for the tasks read one by one (<see cref="TaskListPlan.FilterThenMatch"/>).</summary>
    public static bool Matches(string? name, string? commandLine, string text) =>
        (name?.Contains(text, StringComparison.OrdinalIgnoreCase) ?? false) || (commandLine?.Contains(text, StringComparison.OrdinalIgnoreCase) ?? false);

    private static IEnumerable<string> Items(string? list) =>
        string.IsNullOrEmpty(list) ? [] : list.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);

    /// <summary>A value quoted back in an error, kept short (a hostile parameter may be kilobytes).</summary>
    private static string Clip(string s) => s.Length <= 40 ? s : s[..40] + "…";
}
