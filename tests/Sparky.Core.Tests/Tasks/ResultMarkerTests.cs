using System.Text;
using Sparky.Core.Tasks;

namespace Sparky.Core.Tests.Tasks;

/// <summary>The replaced runner's result rule: the last stdout line that starts with the marker once trimmed.</summary>
public sealed class ResultMarkerTests
{
    private static ResultRead Find(string stdout) => ResultMarker.Find(Encoding.UTF8.GetBytes(stdout));

    [Fact]
    public void A_marker_followed_by_other_lines_is_the_result()
    {
        var r = Find("loading\n__DSPY_RESULT__:{\"score\": 0.9}\nbye\ncleanup done\n");
        Assert.Equal("""{"score":0.9}""", r.Json);
        Assert.Null(r.Error);
    }

    [Fact]
    public void Leading_and_trailing_white_space_and_crlf_are_trimmed()
    {
        Assert.Equal("""{"a":1}""", Find("x\r\n   \t__DSPY_RESULT__:  {\"a\":1}  \r\nmore\r\n").Json);
        Assert.Equal("""{"a":2}""", Find("\u00a0\u2003__DSPY_RESULT__:{\"a\":2}").Json); // Unicode white space, as Rust's trim
        Assert.Equal("[1,2]", Find("__DSPY_RESULT__:[1,2]").Json); // the file's first line, no newline at the end
    }

    [Fact]
    public void The_last_of_several_markers_wins()
    {
        Assert.Equal("3", Find("__DSPY_RESULT__:1\n__DSPY_RESULT__:2\nx\n__DSPY_RESULT__:3\ny\n").Json);
    }

    [Fact]
    public void A_marker_in_the_middle_of_a_line_is_not_a_marker_line()
    {
        Assert.Equal("1", Find("__DSPY_RESULT__:1\necho __DSPY_RESULT__:2\nprogress\r__DSPY_RESULT__:3\n").Json);
        Assert.Equal(ResultRead.None, Find("log: __DSPY_RESULT__:{}\n"));
    }

    [Fact]
    public void No_marker_is_no_result_and_no_error()
    {
        Assert.Equal(ResultRead.None, Find(""));
        Assert.Equal(ResultRead.None, Find("hello\nworld\n"));
        Assert.Equal(ResultRead.None, Find("__DSPY_RESULT_:{}\n")); // one underscore short
    }

    [Fact]
    public void Invalid_json_on_the_last_marker_line_gives_no_result_and_says_why_even_if_an_earlier_one_is_valid()
    {
        var r = Find("__DSPY_RESULT__:{\"ok\":1}\n__DSPY_RESULT__:{\"score\": 0.9,\nend\n");
        Assert.Null(r.Json);
        Assert.Contains("not valid JSON", r.Error);
        var empty = Find("__DSPY_RESULT__:   \n");
        Assert.Null(empty.Json);
        Assert.Contains("no JSON", empty.Error);
        Assert.Contains("duplicate key", Find("__DSPY_RESULT__:{\"a\":1,\"a\":2}\n").Error);
        Assert.Contains("not valid JSON", Find("__DSPY_RESULT__:{} trailing\n").Error);
    }

    [Fact]
    public void Any_json_value_is_a_result()
    {
        Assert.Equal("\"done\"", Find("__DSPY_RESULT__:\"done\"\n").Json);
        Assert.Equal("null", Find("__DSPY_RESULT__:null\n").Json);
    }

    [Fact]
    public void Markers_across_block_borders_and_long_marker_lines_are_found()
    {
        // A marker that straddles the 64 KiB block border, and a 3 MiB marker line followed by 2 MiB of other output.
        for (int pad = 65536 - 40; pad < 65536 + 40; pad += 7)
        {
            var text = new string('x', pad) + "\n__DSPY_RESULT__:{\"pad\":" + pad + "}\n" + new string('y', 65536 - 10) + "\n";
            Assert.Equal($"{{\"pad\":{pad}}}", Find(text).Json);
        }
        var big = "{\"blob\":\"" + new string('b', 3 << 20) + "\"}";
        var stdout = "start\n__DSPY_RESULT__:" + big + "\n" + string.Concat(Enumerable.Repeat(new string('z', 99) + "\n", 20_000));
        Assert.Equal(big, Find(stdout).Json);
    }

    [Fact]
    public void Indent_that_spans_a_block_border_still_starts_the_line()
    {
        var text = "a\n" + new string(' ', 3000) + "__DSPY_RESULT__:7\n" + new string('q', 65536 - 2000) + "\n";
        Assert.Equal("7", Find(text).Json);
    }

    [Fact]
    public void Only_the_last_16_MiB_are_searched()
    {
        var marker = "__DSPY_RESULT__:1\n";
        var inside = marker + new string('n', ResultMarker.ScanBytes - marker.Length - 1) + "\n";
        Assert.Equal("1", Find(inside).Json);
        var outside = marker + new string('n', ResultMarker.ScanBytes) + "\n";
        Assert.Equal(ResultRead.None, Find(outside));
    }

    [Fact]
    public void Reads_are_bounded_and_stop_at_the_last_marker()
    {
        // 64 MiB of output with the marker near the end: only the last block or so is read, not the whole file.
        long length = 64L << 20;
        var tail = Encoding.ASCII.GetBytes("\n__DSPY_RESULT__:{\"n\":1}\nbye\n");
        long read = 0;
        var r = ResultMarker.Find(length, (offset, buffer) =>
        {
            if (offset >= length) return 0;
            int n = (int)Math.Min(buffer.Length, length - offset);
            for (int i = 0; i < n; i++)
            {
                long at = offset + i - (length - tail.Length);
                buffer[i] = at >= 0 ? tail[at] : ((offset + i) % 80 == 79 ? (byte)'\n' : (byte)'.');
            }
            read += n;
            return n;
        });
        Assert.Equal("""{"n":1}""", r.Json);
        Assert.True(read < 256 * 1024, $"read {read} bytes");
    }
}
