using Sparky.Core.Limiting;

namespace Sparky.Core.Tests.Limiting;

public sealed class LimitersTests
{
    [Theory]
    [InlineData("aimd", typeof(AimdLimiter))]
    [InlineData("AIMD", typeof(AimdLimiter))]
    [InlineData(" Vegas ", typeof(VegasLimiter))]
    [InlineData("Gradient2", typeof(Gradient2Limiter))]
    [InlineData("fixed", typeof(FixedLimiter))]
    public void Create_takes_each_name_in_any_case(string name, Type type)
    {
        var l = Limiters.Create(name, 2, 10, 5);
        Assert.IsType(type, l);
        Assert.Equal(name.Trim().ToLowerInvariant(), l.Algorithm);
        Assert.Equal((2, 10, 5), (l.Min, l.Max, l.Limit));
    }

    [Fact]
    public void Names_lists_every_algorithm_and_the_default_is_among_them()
    {
        Assert.Equal(["aimd", "vegas", "gradient2", "fixed"], Limiters.Names);
        Assert.Contains(Limiters.Default, Limiters.Names);
        Assert.All(Limiters.Names, n => Assert.Equal(n, Limiters.Create(n, 1, 4, 2).Algorithm));
        Assert.True(Limiters.IsKnown("Gradient2"));
        Assert.False(Limiters.IsKnown("gradient"));
        Assert.False(Limiters.IsKnown(null));
    }

    [Theory]
    [InlineData("")]
    [InlineData("gradient")]
    [InlineData("aimd2")]
    public void Create_refuses_an_unknown_name_listing_the_allowed_ones(string name)
    {
        var e = Assert.Throws<ArgumentException>(() => Limiters.Create(name, 1, 4, 2));
        Assert.Equal("algorithm", e.ParamName);
        Assert.Contains($"'{name}'", e.Message);
        Assert.Contains("aimd, vegas, gradient2, fixed", e.Message);
    }

    [Theory]
    [InlineData(0, 4)]
    [InlineData(-1, 4)]
    [InlineData(5, 4)]
    public void Create_refuses_bad_bounds(int min, int max)
    {
        foreach (var name in Limiters.Names)
            Assert.Throws<ArgumentOutOfRangeException>(() => Limiters.Create(name, min, max, 2));
    }

    [Theory]
    [InlineData(-3, 2)]
    [InlineData(50, 8)]
    public void The_initial_limit_is_clamped_into_the_bounds(int initial, int expected)
    {
        foreach (var name in Limiters.Names)
            Assert.Equal(expected, Limiters.Create(name, 2, 8, initial).Limit);
    }

    [Fact]
    public void A_fixed_limiter_never_moves()
    {
        var l = Limiters.Create("fixed", 1, 64, 12);
        var f = new Feed(l).Samples(1000, runSeconds: 1).Failures(50, 2).Pressure(0.99, 90).Wait(20).Pressure(0.1, 90);
        f.Samples(100, runSeconds: 30);
        Assert.Equal(12, l.Limit);
    }
}
