using Sparky.Embeddings.Client.Input;

namespace Sparky.Embeddings.Client.Tests.Input;

public sealed class LineReaderTests : IDisposable
{
    private readonly string _path = Path.GetTempFileName();

    public void Dispose() => File.Delete(_path);

    private List<(long N, string Line, long Next)> ReadAll(long offset = 0, long line = 1)
    {
        using var r = new LineReader(_path, offset, line);
        var all = new List<(long, string, long)>();
        while (r.TryRead(out var n, out var l)) all.Add((n, System.Text.Encoding.UTF8.GetString(l), r.NextOffset));
        return all;
    }

    [Fact]
    public void Lines_come_with_their_numbers_and_where_the_next_starts()
    {
        File.WriteAllText(_path, "a\nbb\n\nccc");
        Assert.Equal([(1, "a", 2), (2, "bb", 5), (3, "", 6), (4, "ccc", 9)], ReadAll());
        Assert.Equal(4, LineReader.CountLines(_path));
        // From a recorded place, reading goes on as if it had never stopped.
        Assert.Equal([(3, "", 6), (4, "ccc", 9)], ReadAll(5, 3));
    }

    [Fact]
    public void A_final_newline_ends_the_last_line_and_adds_none()
    {
        File.WriteAllText(_path, "a\nb\n");
        Assert.Equal(2, ReadAll().Count);
        Assert.Equal(2, LineReader.CountLines(_path));
        File.WriteAllText(_path, "");
        Assert.Empty(ReadAll());
        Assert.Equal(0, LineReader.CountLines(_path));
    }

    [Fact]
    public void A_line_longer_than_the_buffer_is_read_whole()
    {
        var big = new string('x', 300_000);
        File.WriteAllText(_path, "a\n" + big + "\nb\n");
        var all = ReadAll();
        Assert.Equal(["a", big, "b"], all.Select(x => x.Line));
        Assert.Equal(3, LineReader.CountLines(_path));
    }
}
