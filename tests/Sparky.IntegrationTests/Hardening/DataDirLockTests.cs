using Sparky.IntegrationTests.Support;
using Xunit.Abstractions;

namespace Sparky.IntegrationTests.Hardening;

/// <summary>One daemon per data directory, whatever happens to the files in it: the lock is on the directory itself,
/// which cannot be deleted from under the daemon that holds it.</summary>
public sealed class DataDirLockTests(ITestOutputHelper output)
{
    /// <summary>Deleting <c>sparky.lock</c> let a second daemon start on the same data directory, whose recovery would
    /// have ended the first one's tasks as lost and run its queue twice. It must refuse, say who holds the directory,
    /// and exit non-zero; the first one goes on serving.</summary>
    [Fact]
    public async Task Deleting_sparky_lock_does_not_let_a_second_daemon_in()
    {
        var root = TestDaemon.NewRoot();
        var data = Path.Combine(root, "data");
        var first = await DaemonProcess.StartAsync(data, SparkyCli.FreePort());
        try
        {
            File.Delete(Path.Combine(data, "sparky.lock"));
            var second = await SparkyCli.RunAsync(
                ["serve", "--data", data, "--http", $"127.0.0.1:{SparkyCli.FreePort()}", "--zmq", "tcp://127.0.0.1:0", "--zmq-events", "tcp://127.0.0.1:0"],
                timeoutSeconds: 30);
            output.WriteLine($"second daemon: exit {second.ExitCode}: {second.Stderr.Trim()}");
            Assert.NotEqual(0, second.ExitCode);
            Assert.Contains("another daemon", second.Stderr);
            Assert.Contains($"pid {first.Pid}", second.Stderr);
            using var health = await first.Http.GetAsync("readyz");
            Assert.True(health.IsSuccessStatusCode, "the first daemon stopped serving");
        }
        finally
        {
            await first.DisposeAsync();
            try { Directory.Delete(root, true); } catch (IOException) { }
        }
    }

    /// <summary>The store holds every task's environment, secrets included, and SQLite creates it 0644: a data directory
    /// the daemon creates is its owner's alone (0700, whatever the umask), so no other local user reads the store, the
    /// logs or the done files.</summary>
    [Fact]
    public async Task A_data_directory_the_daemon_creates_is_its_owners_alone()
    {
        await using var d = await TestDaemon.StartAsync();
        var mode = File.GetUnixFileMode(d.DataDir);
        output.WriteLine($"{d.DataDir}: {mode}");
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, mode);
    }
}
