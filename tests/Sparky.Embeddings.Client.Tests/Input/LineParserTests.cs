using System.Text;
using Sparky.Embeddings.Client.Input;

namespace Sparky.Embeddings.Client.Tests.Input;

public class LineParserTests
{
    private static readonly InputSpec Jsonl = new(InputFormat.Jsonl), JsonlWithId = new(InputFormat.Jsonl, "body", "id"), Text = new(InputFormat.Text);

    private static ParsedLine Parse(string line, InputSpec spec, long n = 7) => LineParser.Parse(Encoding.UTF8.GetBytes(line), n, spec);

    [Fact]
    public void A_json_line_gives_its_text_and_the_line_number_as_id()
    {
        var r = Parse("""{"text": "héllo \"world\"", "other": [1, 2]}""", Jsonl).Record!.Value;
        Assert.Equal(new InputRecord(7, "7", "héllo \"world\""), r);
    }

    [Theory]
    [InlineData("""{"id": "doc-1", "body": "x"}""", "doc-1")]
    [InlineData("""{"id": 42, "body": "x"}""", "42")]
    [InlineData("""{"id": 1e3, "body": "x"}""", "1e3")]
    public void The_id_field_may_be_a_string_or_a_number(string line, string id) => Assert.Equal(id, Parse(line, JsonlWithId).Record!.Value.Id);

    [Theory]
    [InlineData("not json", "not valid JSON")]
    [InlineData("""{"text": "a"} trailing""", "not valid JSON")]
    [InlineData("""["text"]""", "not a JSON object (a array)")]
    [InlineData("""{"txt": "a"}""", "no field 'text'")]
    [InlineData("""{"text": 5}""", "field 'text' is a number, not a string")]
    [InlineData("""{"text": null}""", "field 'text' is a null, not a string")]
    [InlineData("""{"text": "  "}""", "field 'text' is empty")]
    public void A_bad_json_line_says_why(string line, string reason)
    {
        var p = Parse(line, Jsonl);
        Assert.Null(p.Record);
        Assert.StartsWith(reason, p.Error);
    }

    [Theory]
    [InlineData("""{"body": "x"}""", "no field 'id'")]
    [InlineData("""{"id": "a\nb", "body": "x"}""", "field 'id' holds a line break")]
    [InlineData("""{"id": "", "body": "x"}""", "field 'id' is empty")]
    [InlineData("""{"id": {"k": 1}, "body": "x"}""", "field 'id' is a object, not a string or a number")]
    public void A_bad_id_says_why(string line, string reason) => Assert.Equal(reason, Parse(line, JsonlWithId).Error);

    [Fact]
    public void Plain_text_is_the_line_as_it_is()
    {
        Assert.Equal(new InputRecord(3, "3", "  {not json} \"quoted\""), Parse("  {not json} \"quoted\"\r", Text, 3).Record);
    }

    [Theory]
    [InlineData("")]
    [InlineData("   \t")]
    [InlineData("\r")]
    public void Blank_lines_hold_nothing_in_both_formats(string line)
    {
        Assert.True(Parse(line, Text).IsBlank);
        Assert.True(Parse(line, Jsonl).IsBlank);
    }

    [Fact]
    public void Broken_utf8_is_refused_with_the_reason()
    {
        byte[] line = [(byte)'a', 0xC3, 0x28];
        Assert.Equal("not valid UTF-8", LineParser.Parse(line, 1, Text).Error);
        byte[] json = [.. """{"text": "a"""u8, 0xC3, 0x28, .. "\"}"u8];
        Assert.Equal("a string in it is not valid UTF-8 or Unicode", LineParser.Parse(json, 1, Jsonl).Error);
        Assert.Equal("a string in it is not valid UTF-8 or Unicode", Parse("""{"text": "\ud800"}""", Jsonl).Error);
    }

    [Fact]
    public void A_byte_order_mark_on_the_first_line_is_not_text()
    {
        byte[] line = [0xEF, 0xBB, 0xBF, .. "hello"u8];
        Assert.Equal("hello", LineParser.Parse(line, 1, Text).Record!.Value.Text);
        Assert.Equal("\uFEFFhello", LineParser.Parse(line, 2, Text).Record!.Value.Text);
    }

    [Theory]
    [InlineData("a.jsonl", InputFormat.Jsonl)]
    [InlineData("a.NDJSON", InputFormat.Jsonl)]
    [InlineData("a.txt", InputFormat.Text)]
    [InlineData("corpus", InputFormat.Text)]
    public void The_format_follows_the_extension(string path, InputFormat format) => Assert.Equal(format, InputSpec.FormatOf(path));
}
