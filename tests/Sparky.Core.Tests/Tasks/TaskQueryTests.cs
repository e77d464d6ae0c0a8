using Sparky.Core.Tasks;

namespace Sparky.Core.Tests.Tasks;

public sealed class TaskQueryTests
{
    private static readonly string[] Known = ["cpu_short", "cpu_long", "gpu"];

    private static TaskQuery Ok(string? state = null, string? cls = null, string? q = null, long? limit = null, long? cursor = null, string? order = null)
    {
        var (query, error) = TaskQueries.Parse(state, cls, q, limit, cursor, order, Known);
        Assert.Null(error);
        return query!;
    }

    private static string Refused(string? state = null, string? cls = null, string? q = null, long? limit = null, long? cursor = null, string? order = null)
    {
        var (query, error) = TaskQueries.Parse(state, cls, q, limit, cursor, order, Known);
        Assert.Null(query);
        return error!;
    }

    [Fact]
    public void Nothing_given_is_every_task_oldest_first_a_page_of_100()
    {
        var q = Ok();
        Assert.Empty(q.States);
        Assert.Empty(q.Classes);
        Assert.Null(q.Text);
        Assert.Null(q.Cursor);
        Assert.False(q.Descending);
        Assert.Equal(100, q.Limit);
        Assert.False(q.Filtered);
        // Empty parameters are absent ones: a form that sends "q=" means no search.
        var empty = Ok(state: "", cls: "", q: "", order: "");
        Assert.False(empty.Filtered);
        Assert.Null(empty.Text);
        Assert.False(empty.Descending);
    }

    [Fact]
    public void States_and_classes_are_comma_separated_lists_in_any_case_and_spacing_each_named_once()
    {
        var q = Ok(state: "queued, RUNNING,,queued", cls: "gpu,cpu_long,gpu");
        Assert.Equal([TaskState.Queued, TaskState.Running], q.States);
        Assert.Equal(["gpu", "cpu_long"], q.Classes);
        Assert.True(q.Filtered);
    }

    [Theory]
    [InlineData("queued,bogus", null, "state: unknown state 'bogus'")]
    [InlineData(null, "cpu_short,nope", "class: unknown class 'nope' (classes: cpu_long, cpu_short, gpu)")]
    [InlineData(null, "GPU", "class: unknown class 'GPU'")]
    public void An_unknown_state_or_class_is_refused_naming_the_parameter(string? state, string? cls, string expected) =>
        Assert.StartsWith(expected, Refused(state: state, cls: cls));

    [Fact]
    public void A_hostile_value_is_quoted_back_short()
    {
        var error = Refused(state: new string('x', 10_000));
        Assert.StartsWith("state: unknown state 'xxxx", error);
        Assert.True(error.Length < 200, error);
    }

    [Theory]
    [InlineData("ab", "q: must be at least 3 characters")]
    [InlineData("a\u0001b", "q: must not contain control characters")]
    [InlineData("abc\n", "q: must not contain control characters")]
    public void A_search_shorter_than_three_characters_or_with_control_characters_is_refused(string text, string expected) =>
        Assert.StartsWith(expected, Refused(q: text));

    [Fact]
    public void A_search_is_counted_in_characters_and_bounded()
    {
        Assert.Equal("😀😀😀", Ok(q: "😀😀😀").Text); // three characters, six UTF-16 units
        Assert.StartsWith("q: must be at least 3", Refused(q: "😀😀"));
        Assert.Equal(TaskQuery.MaxTextLength, Ok(q: new string('a', TaskQuery.MaxTextLength)).Text!.Length);
        Assert.StartsWith("q: must be at most 200 characters", Refused(q: new string('a', 10 * 1024)));
        // Syntax of SQL LIKE or of the index's query language is text like any other.
        Assert.Equal("%_\"*NEAR(", Ok(q: "%_\"*NEAR(").Text);
    }

    [Theory]
    [InlineData(null, false)]
    [InlineData("asc", false)]
    [InlineData("desc", true)]
    public void Order_is_asc_by_default_or_desc(string? order, bool descending) => Assert.Equal(descending, Ok(order: order).Descending);

    [Fact]
    public void Order_limit_and_cursor_are_checked()
    {
        Assert.Equal("order: must be asc or desc, not 'sideways'", Refused(order: "sideways"));
        Assert.StartsWith("cursor: not a cursor", Refused(cursor: -1));
        Assert.Equal(42, Ok(cursor: 42).Cursor);
        // As before: a limit out of range is brought into it.
        Assert.Equal(1, Ok(limit: 0).Limit);
        Assert.Equal(1, Ok(limit: -5).Limit);
        Assert.Equal(TaskQuery.MaxLimit, Ok(limit: long.MaxValue).Limit);
    }

    [Fact]
    public void Integers_given_as_text_say_which_parameter_is_wrong()
    {
        Assert.Null(TaskQueries.ParseInteger("limit", null, out var none));
        Assert.Null(none);
        Assert.Null(TaskQueries.ParseInteger("limit", "", out _));
        Assert.Null(TaskQueries.ParseInteger("limit", "25", out var limit));
        Assert.Equal(25, limit);
        Assert.Equal("limit: must be an integer, not 'ten'", TaskQueries.ParseInteger("limit", "ten", out _));
        Assert.StartsWith("cursor: not a cursor this API gave", TaskQueries.ParseInteger("cursor", "abc", out _));
        Assert.StartsWith("cursor: not a cursor", TaskQueries.ParseInteger("cursor", "1e3", out _));
        Assert.StartsWith("cursor: not a cursor", TaskQueries.ParseInteger("cursor", "99999999999999999999", out _));
    }

    [Fact]
    public void Matching_ignores_case_and_looks_in_the_name_and_the_command_line()
    {
        Assert.True(TaskQueries.Matches("Train-Big", null, "train"));
        Assert.True(TaskQueries.Matches(null, "python TRAIN.py --lr 3e-4", "train.py --LR"));
        Assert.True(TaskQueries.Matches("ÉTÉ-run", null, "été"));
        Assert.False(TaskQueries.Matches("alpha", "beta gamma", "a b")); // not across the name and the command
        Assert.False(TaskQueries.Matches(null, null, "abc"));
    }

    [Fact]
    public void Without_a_search_the_index_of_the_filter_answers()
    {
        Assert.Equal(TaskListPlan.Scan, TaskQueries.Plan(Ok(), 0, 1_000_000));
        Assert.Equal(TaskListPlan.Scan, TaskQueries.Plan(Ok(state: "failed"), 5, 1_000_000));
    }

    [Fact]
    public void A_search_reads_a_small_filter_and_walks_the_index_for_a_large_one()
    {
        // A page of 100 in a million: reading the filter's tasks wins up to 10,000 of them.
        var search = Ok(state: "running", q: "train");
        Assert.Equal(TaskListPlan.FilterThenMatch, TaskQueries.Plan(search, 0, 1_000_000));
        Assert.Equal(TaskListPlan.FilterThenMatch, TaskQueries.Plan(search, 10_000, 1_000_000));
        Assert.Equal(TaskListPlan.Search, TaskQueries.Plan(search, 10_001, 1_000_000));
        // A smaller page needs fewer matches from the index: the filter is read only while smaller still.
        Assert.Equal(TaskListPlan.Search, TaskQueries.Plan(search with { Limit = 10 }, 5_000, 1_000_000));
        // No filter: the index's matches are the page.
        Assert.Equal(TaskListPlan.Search, TaskQueries.Plan(Ok(q: "train"), 0, 1_000_000));
    }

    [Fact]
    public void The_walk_grows_its_windows_while_they_are_cheap_and_stops_when_the_budget_is_spent()
    {
        static TimeSpan Ms(double v) => TimeSpan.FromMilliseconds(v);
        Assert.Equal(4 * SearchWalk.FirstSpan, SearchWalk.NextSpan(SearchWalk.FirstSpan, Ms(0.1), Ms(0.1)));
        Assert.Equal(4 * SearchWalk.FirstSpan, SearchWalk.NextSpan(SearchWalk.FirstSpan, TimeSpan.Zero, TimeSpan.Zero));
        // 10 ms for 4,096 seqs with 15 ms left: 6,144 more fit.
        Assert.Equal(6_144, SearchWalk.NextSpan(4_096, Ms(10), Ms(10)));
        Assert.Equal(0, SearchWalk.NextSpan(4_096, Ms(5), SearchWalk.Budget));
        Assert.Equal(0, SearchWalk.NextSpan(4_096, Ms(24), Ms(24.9))); // what is left affords too little to be worth a query
        Assert.Equal(long.MaxValue, SearchWalk.NextSpan(long.MaxValue / 2, TimeSpan.Zero, TimeSpan.Zero));
    }
}
