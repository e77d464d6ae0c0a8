using Sparky.Core.Tasks;

namespace Sparky.Core.Tests.Tasks;

public sealed class ParsingTests
{
    [Theory]
    [InlineData("90", 90)]
    [InlineData("30s", 30)]
    [InlineData("5m", 300)]
    [InlineData("1h", 3600)]
    [InlineData("1h30m", 5400)]
    [InlineData("2d", 172800)]
    [InlineData("0.5", 0.5)]
    public void Durations_parse_as_users_write_them(string text, double seconds)
    {
        Assert.True(Durations.TryParseSeconds(text, out var s));
        Assert.Equal(seconds, s);
    }

    [Theory]
    [InlineData("")]
    [InlineData("0")]
    [InlineData("-5")]
    [InlineData("5x")]
    [InlineData("h")]
    [InlineData("NaN")]
    public void Bad_durations_are_refused(string text) => Assert.False(Durations.TryParseSeconds(text, out _));

    [Theory]
    [InlineData("512", 512)]
    [InlineData("512M", 512)]
    [InlineData("20G", 20480)]
    [InlineData("1T", 1048576)]
    [InlineData("1536K", 2)]
    public void Memory_sizes_parse_to_megabytes(string text, long mb)
    {
        Assert.True(MemorySizes.TryParseMb(text, out var v));
        Assert.Equal(mb, v);
    }

    [Theory]
    [InlineData("0-99", 100)]
    [InlineData("5", 1)]
    [InlineData("0-10:5", 3)]
    public void Array_ranges_count_their_elements(string text, int count)
    {
        Assert.True(ArrayRange.TryParse(text, out var r, out _));
        Assert.Equal(count, r.Count);
        Assert.Equal(count, r.Indices().Count());
    }

    [Theory]
    [InlineData("a-b")]
    [InlineData("-1-3")]
    [InlineData("3-1")]
    [InlineData("0-9:0")]
    [InlineData("0-9:1:2")]
    [InlineData("2147483647")]
    [InlineData("99999990-2147483647:100000")]
    public void Bad_array_ranges_are_refused(string text) => Assert.False(ArrayRange.TryParse(text, out _, out _));

    [Fact]
    public void An_array_at_the_top_of_the_index_range_ends()
    {
        Assert.True(ArrayRange.TryParse("99999000-99999999:7", out var r, out _));
        var indices = r.Indices().ToList();
        Assert.Equal(r.Count, indices.Count);
        Assert.Equal(99999000, indices[0]);
        Assert.True(indices[^1] <= 99999999);
    }
}
