using System.Text;
using Sparky.Embeddings.Client.Jobs;

namespace Sparky.Embeddings.Client.Tests.Jobs;

public sealed class CheckpointTests : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("sparky-checkpoint-");

    public void Dispose() => _dir.Delete(recursive: true);

    private static readonly Checkpoint Sample = new(new JobIdentity(123456789012, 638000000000000000, "jsonl", "text \"quoted\"", "id", "2/8"),
        "BAAI/bge-small", 5000, 384, 48890, 5001, 1234567, 3, false);

    [Fact]
    public void Round_trips_through_its_file()
    {
        var path = Path.Combine(_dir.FullName, "c.json");
        Sample.Save(path);
        Assert.Equal(Sample, Checkpoint.Parse(File.ReadAllBytes(path)).Checkpoint);
        var noIds = Sample with { Job = Sample.Job with { IdField = null }, Model = null, Complete = true };
        noIds.Save(path);
        Assert.Equal(noIds, Checkpoint.Parse(File.ReadAllBytes(path)).Checkpoint);
        Assert.False(File.Exists(path + ".tmp")); // replaced by a rename, nothing left beside it
    }

    [Theory]
    [InlineData("")]
    [InlineData("{}")]
    [InlineData("""{"version": 99}""")]
    [InlineData("[1]")]
    public void A_file_that_is_not_a_checkpoint_says_so(string text)
    {
        var (c, error) = Checkpoint.Parse(Encoding.UTF8.GetBytes(text));
        Assert.Null(c);
        Assert.NotNull(error);
    }

    [Fact]
    public void Counts_out_of_range_are_refused()
    {
        var json = Encoding.UTF8.GetString((Sample with { Rows = 10, Dimensions = 0 }).ToJson());
        Assert.Equal("its counts are out of range", Checkpoint.Parse(Encoding.UTF8.GetBytes(json)).Error);
    }
}
