using System.Diagnostics;
using System.Text;
using Sparky.IntegrationTests.Support;
using Xunit.Abstractions;
using static Sparky.IntegrationTests.BadInput.BadInputSupport;

namespace Sparky.IntegrationTests.Hardening;

/// <summary>
/// The drop directory, <c>&lt;data&gt;/queue/pending/</c>, under the faults and inputs its first tests did not try: a kill -9
/// between a file's commit and its move, entries that are not regular files (a FIFO, a directory), a symbolic link
/// (to <c>/dev/zero</c>, to a file outside), a file the daemon cannot read, a name too long for its <c>.reason</c>. Each
/// must end in <c>rejected/</c> with a reason, or in <c>accepted/</c> once, and never keep the next file waiting.
/// </summary>
public sealed class DropDirHardeningTests(ITestOutputHelper output)
{
    private const string Envelope = """{"payload":{"command":["true"]}}""";

    /// <summary>
    /// The gap between storing a file's task and moving the file out of pending/, held open: accepted/ is made a
    /// plain file, so the move fails and the file stays in pending/ after its task is committed; then kill -9, and
    /// accepted/ back. The next start finds the file again: it must be recognised as taken, not stored a second time
    /// under a new id (the envelope has no id to tell it by).
    /// </summary>
    [Fact]
    public async Task A_file_stored_but_not_moved_before_a_kill_9_is_taken_once()
    {
        var root = TestDaemon.NewRoot();
        var data = Path.Combine(root, "data");
        int port = SparkyCli.FreePort();
        var d = await DaemonProcess.StartAsync(data, port);
        try
        {
            var accepted = Path.Combine(data, "queue", "accepted");
            Directory.Move(accepted, accepted + ".away");
            File.WriteAllText(accepted, "not a directory\n");
            DropFile(data, "no-id.json", Encoding.UTF8.GetBytes(Envelope));
            Assert.True(await EventuallyAsync(async () => await SubmittedAsync(d.Http) == 1, seconds: 20), "the dropped file was not stored");
            d.KillHard();
            await d.DisposeAsync();
            Assert.True(File.Exists(Path.Combine(data, "queue", "pending", "no-id.json")), "the file left pending/ although accepted/ could not take it");

            File.Delete(accepted);
            Directory.Move(accepted + ".away", accepted);
            d = await DaemonProcess.StartAsync(data, port);
            Assert.True(await EventuallyAsync(() => Task.FromResult(Directory.EnumerateFiles(accepted).Count() == 1), seconds: 20),
                "the file was not moved to accepted/ after the restart");
            var tasks = await AllTasksAsync(d.Http);
            output.WriteLine($"after the restart: {tasks.Count} task(s): {string.Join(", ", tasks.Select(t => (string?)t["id"]))}; accepted/: {Path.GetFileName(Directory.EnumerateFiles(accepted).Single())}");
            Assert.Single(tasks);
            Assert.Equal(1, await SubmittedAsync(d.Http));
            Assert.Equal((string?)tasks[0]["id"] + ".json", Path.GetFileName(Directory.EnumerateFiles(accepted).Single()));
            Assert.Empty(Directory.EnumerateFileSystemEntries(Path.Combine(data, "queue", "pending")));
        }
        finally
        {
            await d.DisposeAsync();
            try { Directory.Delete(root, true); } catch (IOException) { }
        }
    }

    /// <summary>A FIFO hung the intake thread (open waits for a writer), again at every start; a directory named
    /// <c>*.json</c> stayed in pending/ unseen. Both are rejected with a reason, and a good file behind them is taken.</summary>
    [Fact]
    public async Task Entries_that_are_not_regular_files_are_rejected_and_block_nothing()
    {
        await using var d = await TestDaemon.StartAsync();
        var pending = Queue(d.DataDir, "pending");
        var fifo = Path.Combine(pending, "fifo.json");
        try
        {
            Assert.True(Tmpfs.Run("mkfifo", fifo), "mkfifo failed");
            Directory.CreateDirectory(Path.Combine(pending, "dir.json"));
            DropFile(d.DataDir, "behind.json", Encoding.UTF8.GetBytes("""{"id":"behind","payload":{"command":["true"]}}"""));

            Assert.True(await EventuallyAsync(() => Task.FromResult(File.Exists(Path.Combine(Queue(d.DataDir, "accepted"), "behind.json"))), seconds: 20),
                "a good file dropped after a FIFO and a directory was not accepted");
            foreach (var (name, keyword) in new[] { ("fifo.json", "FIFO"), ("dir.json", "directory") })
            {
                var reason = await WaitRejectedAsync(d.DataDir, name, seconds: 20);
                Assert.True(reason is not null, $"{name} was not rejected with a reason (pending/ holds: {string.Join(", ", Entries(pending))})");
                output.WriteLine($"{name}: {reason!.TrimEnd()}");
                Assert.Contains(keyword, reason, StringComparison.OrdinalIgnoreCase);
            }
            Assert.Empty(Entries(pending));
            Assert.Equal(1, await SubmittedAsync(d.Http));
        }
        finally
        {
            // On code that opened the FIFO for reading, its thread waits for a writer: give it one and let it go.
            if (File.Exists(fifo)) _ = Task.Run(() => { try { using var w = new FileStream(fifo, FileMode.Open, FileAccess.Write); } catch (IOException) { } });
        }
    }

    /// <summary>A link to <c>/dev/zero</c> passed the size check (its target's size is 0) and was read without end;
    /// a link to a file outside the drop directory was read and run. A link is never followed: it is rejected, as
    /// the link, and nothing is stored. The daemon is a process of its own here, so that a read without end would
    /// cost its memory, not the test's.</summary>
    [Fact]
    public async Task A_symbolic_link_is_rejected_without_being_followed()
    {
        var root = TestDaemon.NewRoot();
        var data = Path.Combine(root, "data");
        await using var d = await DaemonProcess.StartAsync(data, SparkyCli.FreePort(), "--max-body-mb", "1");
        var outside = Path.Combine(root, "outside.json");
        File.WriteAllText(outside, """{"id":"read-through-a-link","payload":{"command":["true"]}}""");
        var pending = Queue(data, "pending");
        File.CreateSymbolicLink(Path.Combine(pending, "zero.json"), "/dev/zero");
        File.CreateSymbolicLink(Path.Combine(pending, "outside.json"), outside);
        DropFile(data, "behind.json", Encoding.UTF8.GetBytes("""{"id":"behind","payload":{"command":["true"]}}"""));

        foreach (var name in new[] { "zero.json", "outside.json" })
        {
            var reason = await WaitRejectedAsync(data, name, seconds: 20);
            Assert.True(reason is not null, $"{name} was not rejected with a reason (pending/ holds: {string.Join(", ", Entries(pending))})");
            output.WriteLine($"{name}: {reason!.TrimEnd()}");
            Assert.Contains("link", reason, StringComparison.OrdinalIgnoreCase);
            // The link itself was moved, not a copy of what it points to.
            Assert.NotNull(new FileInfo(Path.Combine(Queue(data, "rejected"), name)).LinkTarget);
        }
        Assert.True(await EventuallyAsync(() => Task.FromResult(File.Exists(Path.Combine(Queue(data, "accepted"), "behind.json"))), seconds: 20),
            "a good file dropped after the links was not accepted");
        Assert.Equal(404, (await SendAsync(d.Http, HttpMethod.Get, "api/v1/tasks/read-through-a-link")).Status);
        Assert.Equal(1, await SubmittedAsync(d.Http));
        using var p = Process.GetProcessById(d.Pid);
        output.WriteLine($"daemon RSS: {p.WorkingSet64 / 1024 / 1024} MB");
        Assert.True(p.WorkingSet64 < 1L << 30, $"the daemon grew to {p.WorkingSet64 / 1024 / 1024} MB");
    }

    /// <summary>
    /// A file the daemon cannot open (mode 000, dropped by another user) stayed in pending/ forever. The tests run
    /// as root, for whom mode 000 means nothing; so the daemon runs here without CAP_DAC_OVERRIDE and
    /// CAP_DAC_READ_SEARCH, as an ordinary owner would. It must be rejected with a reason, and not block the next file.
    /// </summary>
    [Fact]
    public async Task A_file_the_daemon_cannot_read_is_rejected_with_a_reason()
    {
        if (Environment.UserName != "root" || !File.Exists("/usr/bin/setpriv"))
        {
            Assert.False(Environment.GetEnvironmentVariable("CI") == "true", "CI must run as root with setpriv");
            output.WriteLine("not root or no setpriv: this test runs in CI");
            return;
        }
        var root = TestDaemon.NewRoot();
        var data = Path.Combine(root, "data");
        string[] noDacOverride = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--inh-caps", "-dac_override,-dac_read_search", "--"];
        await using var d = await DaemonProcess.StartWrappedAsync(noDacOverride, data, SparkyCli.FreePort());
        var pending = Queue(data, "pending");
        var tmp = Path.Combine(pending, ".unreadable.json.part");
        File.WriteAllText(tmp, Envelope);
        File.SetUnixFileMode(tmp, UnixFileMode.None);
        File.Move(tmp, Path.Combine(pending, "unreadable.json"));
        DropFile(data, "behind.json", Encoding.UTF8.GetBytes("""{"id":"behind","payload":{"command":["true"]}}"""));

        var reason = await WaitRejectedAsync(data, "unreadable.json", seconds: 20);
        Assert.True(reason is not null, $"unreadable.json was not rejected with a reason (pending/ holds: {string.Join(", ", Entries(pending))})");
        output.WriteLine($"unreadable.json: {reason!.TrimEnd()}");
        Assert.Contains("read", reason, StringComparison.OrdinalIgnoreCase);
        Assert.True(await EventuallyAsync(() => Task.FromResult(File.Exists(Path.Combine(Queue(data, "accepted"), "behind.json"))), seconds: 20),
            "a good file dropped after the unreadable one was not accepted");
        Assert.Equal(1, await SubmittedAsync(d.Http));
    }

    /// <summary>A bad file whose name leaves no room for <c>.reason</c> (NAME_MAX is 255 bytes) was moved to rejected/
    /// with no reason beside it: the write of <c>name.reason</c> failed. It is rejected under a shorter name, with a
    /// reason that gives the name it came in under.</summary>
    [Fact]
    public async Task A_name_too_long_for_its_reason_file_is_rejected_with_a_reason()
    {
        await using var d = await TestDaemon.StartAsync();
        var name = new string('n', 250) + ".json"; // 255 bytes: a legal name, but name + ".reason" is not
        DropFile(d.DataDir, name, Encoding.UTF8.GetBytes("{not json"));
        DropFile(d.DataDir, "behind.json", Encoding.UTF8.GetBytes("""{"id":"behind","payload":{"command":["true"]}}"""));

        var rejected = Queue(d.DataDir, "rejected");
        Assert.True(await EventuallyAsync(() => Task.FromResult(File.Exists(Path.Combine(Queue(d.DataDir, "accepted"), "behind.json"))), seconds: 20),
            "a good file dropped after the long name was not accepted");
        string? reasonFile = null;
        Assert.True(await EventuallyAsync(() =>
        {
            reasonFile = Directory.EnumerateFiles(rejected, "*.reason").FirstOrDefault();
            return Task.FromResult(reasonFile is not null && File.ReadAllText(reasonFile).EndsWith('\n'));
        }, seconds: 20), $"no .reason in rejected/ (rejected/ holds: {string.Join(", ", Entries(rejected))}; pending/ holds {Entries(Queue(d.DataDir, "pending")).Count})");
        var reason = File.ReadAllText(reasonFile!);
        output.WriteLine($"{Path.GetFileName(reasonFile)}: {reason.TrimEnd()}");
        Assert.Contains(name, reason);
        // The file is beside its reason, as it was dropped.
        var file = reasonFile![..^".reason".Length];
        Assert.Equal("{not json", File.ReadAllText(file));
        Assert.Empty(Entries(Queue(d.DataDir, "pending")));
        Assert.Equal(1, await SubmittedAsync(d.Http));
    }

    // ---------- helpers ----------

    internal static string Queue(string dataDir, string dir) => Path.Combine(dataDir, "queue", dir);

    internal static List<string> Entries(string dir) =>
        Directory.EnumerateFileSystemEntries(dir).Select(p => Path.GetFileName(p)!).Order(StringComparer.Ordinal).ToList();

    /// <summary>Written the way a producer must: under a dot name, then renamed into pending/.</summary>
    internal static void DropFile(string dataDir, string name, byte[] body)
    {
        var pending = Queue(dataDir, "pending");
        var temp = Path.Combine(pending, ".drop.part");
        File.WriteAllBytes(temp, body);
        File.Move(temp, Path.Combine(pending, name));
    }

    /// <summary>The reason once <c>rejected/&lt;name&gt;</c> and its complete <c>.reason</c> are there; null at the deadline.</summary>
    private static async Task<string?> WaitRejectedAsync(string dataDir, string name, double seconds)
    {
        var entry = Path.Combine(Queue(dataDir, "rejected"), name);
        string? reason = null;
        await EventuallyAsync(() =>
        {
            if (!Path.Exists(entry) && new FileInfo(entry).LinkTarget is null) return Task.FromResult(false);
            if (!File.Exists(entry + ".reason")) return Task.FromResult(false);
            var text = File.ReadAllText(entry + ".reason");
            if (!text.EndsWith('\n')) return Task.FromResult(false);
            reason = text;
            return Task.FromResult(true);
        }, seconds);
        return reason;
    }

}
