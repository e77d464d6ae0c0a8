namespace Sparky.Cli.Tests;

public sealed class TermTextTests
{
    [Fact]
    public void Control_characters_become_visible_symbols()
    {
        Assert.Equal("␛[2J␊␀␡x", TermText.Visible("\u001b[2J\n\0\u007fx"));
        Assert.Equal("�", TermText.Visible("\u009b"));
        Assert.Equal("plain", TermText.Visible("plain"));
    }

    [Fact]
    public void Text_is_cut_by_columns_with_an_ellipsis_and_wide_characters_count_twice()
    {
        Assert.Equal("abc…", TermText.Clip("abcdefgh", 4));
        Assert.Equal("abcd", TermText.Clip("abcd", 4));
        Assert.Equal("漢…", TermText.Clip("漢字漢字", 4));
        Assert.Equal(4, TermText.Width(TermText.Fit("漢字漢字", 4)));
        Assert.Equal("  ab", TermText.Fit("ab", 4, right: true));
        Assert.Equal("[[x]] ", TermText.Cell("[x]", 4));
    }

    [Fact]
    public void A_bar_fills_in_proportion_and_stays_in_its_width()
    {
        Assert.Equal("█████░░░░░", TermText.Bar(0.5, 10));
        Assert.Equal("░░░░", TermText.Bar(double.NaN, 4));
        Assert.Equal("████", TermText.Bar(7, 4));
    }
}
