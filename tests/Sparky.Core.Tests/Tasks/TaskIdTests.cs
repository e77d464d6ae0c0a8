using Microsoft.Extensions.Time.Testing;
using Sparky.Core.Tasks;

namespace Sparky.Core.Tests.Tasks;

public sealed class TaskIdTests
{
    [Theory]
    [InlineData("a")]
    [InlineData("train-run_01.v2")]
    [InlineData("0")]
    public void Accepts_url_safe_ids(string text) => Assert.True(TaskId.TryParse(text, out _));

    [Theory]
    [InlineData("../../etc/passwd")]
    [InlineData("a/b")]
    [InlineData("a\0b")]
    [InlineData("")]
    [InlineData(".hidden")]
    [InlineData("-flag")]
    [InlineData("a b")]
    [InlineData("a\nb")]
    [InlineData("ü")]
    public void Refuses_ids_that_could_escape_a_directory_or_break_a_url(string text) => Assert.False(TaskId.TryParse(text, out _));

    [Fact]
    public void Refuses_an_id_of_ten_thousand_characters_but_takes_one_of_128()
    {
        Assert.False(TaskId.TryParse(new string('a', 10_000), out _));
        Assert.False(TaskId.TryParse(new string('a', 129), out _));
        Assert.True(TaskId.TryParse(new string('a', 128), out _));
    }

    [Fact]
    public void Generated_ids_are_valid_unique_and_ordered_even_when_the_clock_stands_still()
    {
        var clock = new FakeTimeProvider(DateTimeOffset.Parse("2026-11-24T12:00:00Z"));
        var gen = new TaskIdGenerator(clock);
        var ids = Enumerable.Range(0, 10_000).Select(_ => gen.Next().Value).ToList();
        Assert.Equal(ids.Count, ids.Distinct().Count());
        Assert.Equal(ids.Order(StringComparer.Ordinal), ids);
        Assert.All(ids, id => Assert.True(TaskId.TryParse(id, out _)));
    }
}
