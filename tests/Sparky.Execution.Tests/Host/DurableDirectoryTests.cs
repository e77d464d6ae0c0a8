using Sparky.Execution.Host;

namespace Sparky.Execution.Tests.Host;

public sealed class DurableDirectoryTests
{
    [Fact]
    public void A_directory_is_synced_and_what_is_not_one_is_an_error_that_says_why()
    {
        var dir = Directory.CreateTempSubdirectory("sparky-sync-").FullName;
        try
        {
            DurableDirectory.Sync(dir); // a real fsync(2) of a real directory: no exception
            var missing = Assert.Throws<IOException>(() => DurableDirectory.Sync(Path.Combine(dir, "gone")));
            Assert.Contains("cannot open directory", missing.Message);
            Assert.Contains("No such file", missing.Message);
            var file = Path.Combine(dir, "a file");
            File.WriteAllText(file, "x");
            Assert.Contains("Not a directory", Assert.Throws<IOException>(() => DurableDirectory.Sync(file)).Message);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }
}
