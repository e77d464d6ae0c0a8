using System.Text;
using Sparky.Core.Tasks;

namespace Sparky.Core.Tests.Tasks;

/// <summary>Progress lines found in output fed in pieces of any size, with lines and markers cut anywhere.</summary>
public sealed class ProgressScannerTests
{
    private static string Line(int done, string message = "m") => $"__SPARKY_PROGRESS__:{{\"done\":{done},\"total\":10,\"message\":\"{message}\"}}\n";

    /// <summary>The last progress the scanner reports, fed <paramref name="output"/> in pieces of <paramref name="size"/> bytes.</summary>
    private static TaskProgress? Last(string output, int size, bool finish = false)
    {
        var s = new ProgressScanner();
        var bytes = Encoding.UTF8.GetBytes(output);
        TaskProgress? last = null;
        for (int i = 0; i < bytes.Length; i += size) last = s.Feed(bytes.AsSpan(i, Math.Min(size, bytes.Length - i))) ?? last;
        if (finish) last = s.Finish() ?? last;
        return last;
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(7)]
    [InlineData(19)]
    [InlineData(20)]
    [InlineData(21)]
    [InlineData(64)]
    [InlineData(100_000)]
    public void The_last_progress_line_is_found_however_the_output_is_cut(int size)
    {
        var output = "starting\n" + Line(1) + "log line with __SPARKY_PROGRESS__:{\"done\":9} inside\n" + Line(2, "two") + "x\r\n__SPARKY_PRO\n"
            + Line(3, "three") + "tail without newline";
        Assert.Equal(new TaskProgress(3, 10, "three"), Last(output, size));
    }

    [Fact]
    public void Output_without_the_marker_gives_nothing()
    {
        Assert.Null(Last(string.Concat(Enumerable.Repeat("epoch 5 loss 0.3\n", 1000)), 4096));
        Assert.Null(Last("__SPARKY_PROGRESS_:{\"done\":1}\n__SPARKY_PROGRESS__\n", 3));
    }

    [Fact]
    public void A_broken_line_does_not_hide_the_one_before_it()
    {
        Assert.Equal(new TaskProgress(1, 10, "m"), Last(Line(1) + "__SPARKY_PROGRESS__:{broken\n", 5));
    }

    [Fact]
    public void A_last_line_without_its_newline_counts_only_when_the_attempt_ends()
    {
        var output = Line(1) + Line(2).TrimEnd('\n');
        Assert.Equal(new TaskProgress(1, 10, "m"), Last(output, 8));
        Assert.Equal(new TaskProgress(2, 10, "m"), Last(output, 8, finish: true));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(4096)]
    [InlineData(1 << 20)]
    public void A_line_over_4_KiB_is_skipped_and_the_next_one_read(int size)
    {
        var huge = "__SPARKY_PROGRESS__:{\"done\":7,\"message\":\"" + new string('a', 1 << 20) + "\"}\n";
        Assert.Equal(new TaskProgress(2, 10, "m"), Last(Line(1) + huge + Line(2), size));
        Assert.Equal(new TaskProgress(1, 10, "m"), Last(Line(1) + huge, size, finish: true));
        Assert.Equal(new TaskProgress(1, 10, "m"), Last(Line(1) + huge.TrimEnd('\n'), size, finish: true)); // unterminated too
    }

    [Fact]
    public void After_a_jump_the_cut_line_is_not_read_and_after_a_reset_everything_is()
    {
        var s = new ProgressScanner();
        s.Skip();
        Assert.Null(s.Feed(Encoding.UTF8.GetBytes("ESS__:{\"done\":1}\n")));
        Assert.Equal(new TaskProgress(2, 10, "m"), s.Feed(Encoding.UTF8.GetBytes(Line(2))));
        s.Feed(Encoding.UTF8.GetBytes("__SPARKY_PROG"));
        s.Reset();
        Assert.Equal(new TaskProgress(3, 10, "m"), s.Feed(Encoding.UTF8.GetBytes(Line(3))));
    }
}
