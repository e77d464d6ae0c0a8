using System.Text;
using Sparky.Core.Tasks;

namespace Sparky.Core.Tests.Tasks;

/// <summary>A progress line (SPEC §3): any of done, total and message; anything else, however broken, is not progress.</summary>
public sealed class TaskProgressTests
{
    private static TaskProgress? Parse(string line) => TaskProgress.ParseLine(line);

    [Fact]
    public void Any_of_the_three_fields_makes_progress()
    {
        Assert.Equal(new TaskProgress(5, 100, "epoch 5"), Parse("""__SPARKY_PROGRESS__:{"done": 5, "total": 100, "message": "epoch 5"}"""));
        Assert.Equal(new TaskProgress(null, null, "loading"), Parse("""__SPARKY_PROGRESS__:{"message":"loading"}"""));
        Assert.Equal(new TaskProgress(0.5, null, null), Parse("""__SPARKY_PROGRESS__:{"done":0.5}"""));
        Assert.Equal(new TaskProgress(null, 10, null), Parse("""__SPARKY_PROGRESS__:{"total":10}"""));
        // A \r before the newline, white space around the object, other fields and nulls are fine.
        Assert.Equal(new TaskProgress(1, 2, null), Parse("__SPARKY_PROGRESS__: {\"done\":1,\"total\":2,\"eta\":{\"s\":[1]},\"message\":null} \r"));
    }

    [Theory]
    [InlineData("__SPARKY_PROGRESS__:")]
    [InlineData("__SPARKY_PROGRESS__:not json")]
    [InlineData("__SPARKY_PROGRESS__:[1,2]")]
    [InlineData("__SPARKY_PROGRESS__:5")]
    [InlineData("__SPARKY_PROGRESS__:{}")]
    [InlineData("""__SPARKY_PROGRESS__:{"other":1}""")]
    [InlineData("""__SPARKY_PROGRESS__:{"done":5""")]
    [InlineData("""__SPARKY_PROGRESS__:{"done":5} trailing""")]
    [InlineData("""__SPARKY_PROGRESS__:{"done":5}{"done":6}""")]
    [InlineData("""__SPARKY_PROGRESS__:{"done":-1}""")]
    [InlineData("""__SPARKY_PROGRESS__:{"done":NaN}""")]
    [InlineData("""__SPARKY_PROGRESS__:{"done":Infinity}""")]
    [InlineData("""__SPARKY_PROGRESS__:{"done":1e400}""")]
    [InlineData("""__SPARKY_PROGRESS__:{"done":1e16}""")]
    [InlineData("""__SPARKY_PROGRESS__:{"done":"5"}""")]
    [InlineData("""__SPARKY_PROGRESS__:{"total":0}""")]
    [InlineData("""__SPARKY_PROGRESS__:{"total":-3}""")]
    [InlineData("""__SPARKY_PROGRESS__:{"message":5}""")]
    [InlineData("""__SPARKY_PROGRESS__:{"message":"ok","done":true}""")]
    [InlineData("""__SPARKY_PROGRESS__:{"message":"\ud800"}""")]
    [InlineData("""__SPARKY_PROGRESS__:{"message":"   "}""")]
    [InlineData(""" __SPARKY_PROGRESS__:{"done":1}""")]
    [InlineData("""echo __SPARKY_PROGRESS__:{"done":1}""")]
    [InlineData("""__SPARKY_PROGRESS__{"done":1}""")]
    public void Broken_or_hostile_lines_are_not_progress(string line) => Assert.Null(Parse(line));

    [Fact]
    public void Invalid_utf8_and_deep_nesting_are_not_progress_and_do_not_throw()
    {
        byte[] bad = [.. Encoding.UTF8.GetBytes("__SPARKY_PROGRESS__:{\"message\":\"a"), 0xff, .. Encoding.UTF8.GetBytes("\"}")];
        Assert.Null(TaskProgress.ParseLine(bad));
        Assert.Null(Parse("__SPARKY_PROGRESS__:{\"x\":" + new string('[', 100) + new string(']', 100) + ",\"done\":1}"));
    }

    [Fact]
    public void A_line_over_4_KiB_is_ignored_whatever_it_holds()
    {
        var line = """__SPARKY_PROGRESS__:{"done":1,"message":"x"}""";
        Assert.NotNull(Parse(line + new string(' ', TaskProgress.MaxLineBytes - line.Length)));
        Assert.Null(Parse(line + new string(' ', TaskProgress.MaxLineBytes - line.Length + 1)));
    }

    [Fact]
    public void A_message_loses_its_control_characters_and_is_cut_to_200_chars()
    {
        Assert.Equal("[31mred text and a new line", Parse("""__SPARKY_PROGRESS__:{"message":"\u001b[31mred\u0007 text\nand a\tnew\u202e line\u0000"}""")!.Message);
        var markup = Parse("""__SPARKY_PROGRESS__:{"message":"<script>alert(1)</script> [red]x[/]"}""")!.Message;
        Assert.Equal("<script>alert(1)</script> [red]x[/]", markup); // plain text: whoever shows it escapes it
        var longMessage = Parse("__SPARKY_PROGRESS__:{\"message\":\"" + new string('a', 3000) + "\"}")!.Message!;
        Assert.Equal(TaskProgress.MaxMessageChars, longMessage.Length);
        Assert.EndsWith("…", longMessage);
        // Never cut within a surrogate pair.
        var emoji = TaskProgress.Clean(string.Concat(Enumerable.Repeat("😀", 150)));
        Assert.Equal(2 * 99 + 1, emoji.Length);
        Assert.EndsWith("😀…", emoji);
    }

    [Fact]
    public void Its_json_has_the_fields_given_and_when_it_was_seen()
    {
        var at = DateTimeOffset.FromUnixTimeMilliseconds(1_700_000_000_123);
        var full = new TaskProgress(5, 100, "epoch 5").ToJson(at);
        Assert.Equal(["done", "total", "message", "updated_at"], full.Select(kv => kv.Key));
        Assert.Equal("5", full["done"]!.ToJsonString()); // a whole count is written as one
        Assert.Equal(100, (long)full["total"]!);
        Assert.Equal("epoch 5", (string?)full["message"]);
        Assert.Equal(at, DateTimeOffset.Parse((string)full["updated_at"]!, System.Globalization.CultureInfo.InvariantCulture));
        var some = new TaskProgress(0.25, null, "<b>").ToJson(at);
        Assert.Equal(["done", "message", "updated_at"], some.Select(kv => kv.Key));
        Assert.Equal(0.25, (double)some["done"]!);
        Assert.DoesNotContain("<b>", some.ToJsonString()); // escaped on the wire
    }

    [Fact]
    public void Its_fraction_is_within_0_and_1()
    {
        Assert.Equal(0.05, new TaskProgress(5, 100, null).Fraction);
        Assert.Equal(1, new TaskProgress(150, 100, null).Fraction);
        Assert.Null(new TaskProgress(5, null, null).Fraction);
    }
}
