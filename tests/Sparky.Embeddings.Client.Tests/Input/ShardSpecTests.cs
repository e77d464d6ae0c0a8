using Sparky.Embeddings.Client.Input;

namespace Sparky.Embeddings.Client.Tests.Input;

public class ShardSpecTests
{
    [Theory]
    [InlineData(0L, 1)]
    [InlineData(1L, 4)]
    [InlineData(3L, 4)]
    [InlineData(10L, 3)]
    [InlineData(1001L, 7)]
    [InlineData(5L, 8)]
    public void Shards_cover_every_line_once_in_order(long lines, int count)
    {
        long next = 1;
        for (int i = 0; i < count; i++)
        {
            var (first, end) = new ShardSpec(i, count).Lines(lines);
            Assert.Equal(next, first); // contiguous: no gap, no overlap
            Assert.True(end >= first);
            // As even as whole lines allow.
            Assert.InRange(end - first, lines / count, lines / count + 1);
            next = end;
        }
        Assert.Equal(lines + 1, next);
    }

    [Fact]
    public void The_split_depends_only_on_the_line_count()
    {
        Assert.Equal(new ShardSpec(2, 5).Lines(12345), new ShardSpec(2, 5).Lines(12345));
        Assert.Equal((1L, 12346L), ShardSpec.Whole.Lines(12345));
    }

    [Theory]
    [InlineData("0/1", 0, 1)]
    [InlineData("3/4", 3, 4)]
    [InlineData("99999/100000", 99999, 100000)]
    public void Parses_i_of_n(string text, int index, int count)
    {
        Assert.True(ShardSpec.TryParse(text, out var s, out var error), error);
        Assert.Equal(new ShardSpec(index, count), s);
        Assert.Equal(count == 1 ? "embeddings" : $"part-{index}-of-{count}", s.Stem);
    }

    [Theory]
    [InlineData("4/4")]
    [InlineData("-1/4")]
    [InlineData("1/0")]
    [InlineData("1")]
    [InlineData("a/b")]
    [InlineData("1/2/3")]
    [InlineData("0/100001")]
    [InlineData(" 1/2")]
    public void Refuses_what_is_not_a_shard(string text)
    {
        Assert.False(ShardSpec.TryParse(text, out _, out var error));
        Assert.Contains("--shard", error);
    }
}
