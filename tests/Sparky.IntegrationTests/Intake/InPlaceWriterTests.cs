using System.Diagnostics;
using System.Text;
using System.Text.Json.Nodes;
using Sparky.IntegrationTests.Support;
using Xunit.Abstractions;
using static Sparky.IntegrationTests.BadInput.BadInputSupport;

namespace Sparky.IntegrationTests.Intake;

/// <summary>
/// Every writer of the replaced system puts a file straight into pending/: <c>open(path, "w")</c>, <c>json.dump</c>,
/// close; no temporary name, no rename. The daemon sees such a file before it is whole. It must take each one once,
/// whole, and reject none for being half-written; a file that never becomes JSON is rejected only once its writer has
/// closed it and it has stayed unchanged for <c>drop_settle</c>.
/// </summary>
[Collection(SerialCollection.Name)]
public sealed class InPlaceWriterTests(ITestOutputHelper output)
{
    private static string Queue(TestDaemon d, string dir) => Path.Combine(d.DataDir, "queue", dir);

    /// <summary>
    /// 1,000 files from about 100 bytes (the envelope alone) to 1 MB, most of them small, written by 8 writers at once,
    /// each in 2 to 6 chunks cut anywhere (inside a UTF-8 character too) with a flush and a short pause between chunks;
    /// one in ten is written under a dot name and renamed in. Each task appends its id to runs.txt: each id must be
    /// there exactly once, and rejected/ must stay empty.
    /// </summary>
    [Fact]
    public async Task A_thousand_files_written_in_place_in_chunks_by_8_writers_each_run_once_and_none_is_rejected()
    {
        await using var d = await TestDaemon.StartAsync();
        var pending = Queue(d, "pending");
        var sizes = new Random(20_261_203);
        var files = Enumerable.Range(0, 1000).Select(i => (Id: $"w{i:D4}", Size: i % 50 == 0 ? sizes.Next(100_000, 1_000_001)
            : i % 10 == 1 ? sizes.Next(4_000, 100_001) : sizes.Next(10, 4_001), RenamedIn: i % 10 == 9)).ToList();
        long total = 0;
        var clock = Stopwatch.StartNew();
        var writers = Enumerable.Range(0, 8).Select(w => new Thread(() =>
        {
            var rng = new Random(w);
            for (int i = w; i < files.Count; i += 8)
            {
                var (id, size, renamed) = files[i];
                var body = Envelope(d, id, size);
                Interlocked.Add(ref total, body.Length);
                var final = Path.Combine(pending, id + ".json");
                WriteInChunks(renamed ? Path.Combine(pending, "." + id + ".part") : final, body, rng);
                if (renamed) File.Move(Path.Combine(pending, "." + id + ".part"), final);
            }
        })).ToList();
        writers.ForEach(t => t.Start());
        writers.ForEach(t => t.Join());
        output.WriteLine($"1000 files, {total / 1024 / 1024} MiB, written in {clock.ElapsedMilliseconds} ms");

        var runs = Path.Combine(d.WorkDir, "runs.txt");
        string? rejected = null;
        Assert.True(await EventuallyAsync(() =>
        {
            rejected = Directory.EnumerateFiles(Queue(d, "rejected"), "*.reason").FirstOrDefault();
            return Task.FromResult(rejected is not null || Lines(runs).Count >= 1000);
        }, seconds: 120), $"the tasks did not all run: {Lines(runs).Count} in runs.txt, {Directory.EnumerateFiles(pending).Count()} in pending/");
        Assert.True(rejected is null, $"{Path.GetFileName(rejected)}: {(rejected is null ? "" : File.ReadAllText(rejected))}");
        output.WriteLine($"all 1000 ran {clock.ElapsedMilliseconds} ms after the first write");

        // Nothing more comes: every task has ended, and each id ran once.
        Assert.True(await EventuallyAsync(async () => (long)(await QueueStatusAsync(d.Http))["completed"]! >= 1000, seconds: 60));
        var lines = Lines(runs);
        var twice = lines.GroupBy(l => l).Where(g => g.Count() > 1).Select(g => g.Key).ToList();
        Assert.True(twice.Count == 0, $"ran more than once: {string.Join(", ", twice.Take(20))}");
        Assert.Equal(files.Select(f => f.Id).Order(StringComparer.Ordinal), lines.Order(StringComparer.Ordinal));
        Assert.Equal(1000, await SubmittedAsync(d.Http));
        Assert.Empty(Directory.EnumerateFileSystemEntries(Queue(d, "rejected")));
        Assert.Empty(Directory.EnumerateFileSystemEntries(pending));
        Assert.Equal(1000, Directory.EnumerateFiles(Queue(d, "accepted")).Count());
        var tasks = await AllTasksAsync(d.Http);
        Assert.All(tasks, t => Assert.Equal(("succeeded", 1), ((string?)t["state"], (int?)t["attempts"])));
    }

    /// <summary>
    /// A writer opens a file in pending/, writes the start of an envelope, holds it open without writing for longer
    /// than the bound, then writes something that is not JSON and closes it. While it is open, it is not rejected
    /// (nor does it keep a good file dropped meanwhile waiting); once closed, it is rejected after the bound, with the
    /// parser's reason and the bound named.
    /// </summary>
    [Fact]
    public async Task A_file_written_in_place_that_never_becomes_json_is_rejected_only_once_closed_and_unchanged_for_the_bound()
    {
        await using var d = await TestDaemon.StartAsync(new() { ["drop_settle"] = "1" });
        var pending = Queue(d, "pending");
        var path = Path.Combine(pending, "never.json");
        var rejected = Path.Combine(Queue(d, "rejected"), "never.json");
        var closed = Stopwatch.StartNew();
        using (var f = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.ReadWrite, bufferSize: 1))
        {
            f.Write("{\"payload\": {\"command\": "u8);
            f.Flush();
            // A good file, renamed in meanwhile, is taken at once.
            File.WriteAllText(Path.Combine(pending, ".good.part"), """{"id":"good","payload":{"command":["true"]}}""");
            File.Move(Path.Combine(pending, ".good.part"), Path.Combine(pending, "good.json"));
            Assert.True(await EventuallyAsync(() => Task.FromResult(File.Exists(Path.Combine(Queue(d, "accepted"), "good.json"))), seconds: 20),
                "a good file waited behind one being written");
            // Idle, but open: well past the bound, it is still left alone. Being idle past the bound is what is tested,
            // so that much time must pass; then a file renamed in after it (not JSON: rejected at once) shows the drop
            // directory has dealt with every look at pending/ queued before it.
            await Task.Delay(2000);
            File.WriteAllText(Path.Combine(pending, ".probe.part"), "not JSON");
            File.Move(Path.Combine(pending, ".probe.part"), Path.Combine(pending, "probe.json"));
            Assert.True(await EventuallyAsync(() => Task.FromResult(File.Exists(Path.Combine(Queue(d, "rejected"), "probe.json"))), seconds: 20),
                "a malformed file renamed in was not rejected");
            Assert.True(File.Exists(path), "the file being written left pending/");
            Assert.False(File.Exists(rejected), "the file was rejected while its writer still had it open");
            // Timed from before the last write: a stall of the test between the write and the clock's start cannot
            // shorten what it measures.
            closed.Restart();
            f.Write("oops, not JSON"u8);
            f.Flush();
        }
        Assert.True(await EventuallyAsync(() => Task.FromResult(File.Exists(rejected + ".reason") && File.ReadAllText(rejected + ".reason").EndsWith('\n')), seconds: 20),
            "the file was not rejected after its writer closed it");
        var after = closed.Elapsed;
        var reason = File.ReadAllText(rejected + ".reason");
        output.WriteLine($"rejected {after.TotalMilliseconds:0} ms after the close: {reason.TrimEnd()}");
        Assert.True(after >= TimeSpan.FromMilliseconds(900), $"rejected {after.TotalMilliseconds:0} ms after the close, before the 1 s bound");
        Assert.Contains("malformed JSON", reason);
        Assert.Contains("1 s", reason);
        Assert.Equal("{\"payload\": {\"command\": oops, not JSON", File.ReadAllText(rejected));
        Assert.Equal(1, await SubmittedAsync(d.Http));
    }

    /// <summary>The replaced system's own writer, as it is: <c>with open(path, "w") as f: json.dump(obj, f)</c> of a large
    /// object (about 2 MB each, written by Python's buffered text stream 8 KiB at a time), several files one after another.
    /// Each is taken whole (its done file holds every item) and runs once.</summary>
    [Fact]
    public async Task The_replaced_systems_json_dump_into_pending_is_taken_whole_and_runs_once()
    {
        await using var d = await TestDaemon.StartAsync();
        const int Files = 6, Items = 40_000;
        const string Script = """
            import json, os, sys
            pending, work, files, items = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
            for i in range(files):
                tid = "py%d" % i
                obj = {"id": tid, "class": "cpu_short",
                       "payload": {"command": "echo %s >> runs.txt" % tid, "cwd": work},
                       "data": [{"n": n, "text": "étude %d ünïcode €" % n} for n in range(items)]}
                with open(os.path.join(pending, tid + ".json"), "w") as f:
                    json.dump(obj, f)
            """;
        var psi = new ProcessStartInfo("python3") { RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { "-c", Script, Queue(d, "pending"), d.WorkDir, Files.ToString(), Items.ToString() }) psi.ArgumentList.Add(a);
        using (var py = Process.Start(psi)!)
        {
            var err = await py.StandardError.ReadToEndAsync();
            await py.WaitForExitAsync();
            Assert.True(py.ExitCode == 0, "python3: " + err);
        }
        var done = Enumerable.Range(0, Files).Select(i => Path.Combine(Queue(d, "done"), $"py{i}.json")).ToList();
        Assert.True(await EventuallyAsync(() => Task.FromResult(done.All(File.Exists) || Directory.EnumerateFiles(Queue(d, "rejected")).Any()), seconds: 60),
            $"not every file ran: done/ holds {Directory.EnumerateFiles(Queue(d, "done")).Count()}");
        Assert.Empty(Directory.EnumerateFileSystemEntries(Queue(d, "rejected")));
        foreach (var file in done)
        {
            var node = JsonNode.Parse(File.ReadAllText(file))!;
            Assert.Equal("succeeded", (string?)node["state"]);
            Assert.Equal(Items, ((JsonArray)node["data"]!).Count);
        }
        output.WriteLine($"each file {new FileInfo(Directory.EnumerateFiles(Queue(d, "accepted")).First()).Length / 1024} KiB");
        Assert.Equal(Enumerable.Range(0, Files).Select(i => $"py{i}"), Lines(Path.Combine(d.WorkDir, "runs.txt")).Order(StringComparer.Ordinal));
        Assert.Equal(Files, await SubmittedAsync(d.Http));
    }

    // ---------- helpers ----------

    private static List<string> Lines(string path) =>
        File.Exists(path) ? File.ReadAllLines(path).Where(l => l.Length > 0).ToList() : [];

    /// <summary>An envelope that appends its id to runs.txt, padded to about <paramref name="size"/> bytes with text that
    /// holds two- and three-byte UTF-8 characters.</summary>
    private static byte[] Envelope(TestDaemon d, string id, int size)
    {
        var envelope = new JsonObject { ["id"] = id, ["payload"] = new JsonObject { ["command"] = $"echo {id} >> runs.txt", ["cwd"] = d.WorkDir } };
        // "abcé€ " is 9 bytes; raw in the file (not \u-escaped), so a chunk may end inside a character.
        int room = Math.Max(0, size - envelope.ToJsonString().Length - 10);
        envelope["pad"] = string.Concat(Enumerable.Repeat("abcé€ ", room / 9));
        return Encoding.UTF8.GetBytes(envelope.ToJsonString(new System.Text.Json.JsonSerializerOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }));
    }

    /// <summary>Open, then 2 to 6 chunks cut at random bytes, each written, flushed and followed by a pause of 0 to 3 ms; then close.</summary>
    private static void WriteInChunks(string path, byte[] body, Random rng)
    {
        int chunks = rng.Next(2, 7);
        var cuts = Enumerable.Range(0, chunks - 1).Select(_ => rng.Next(0, body.Length + 1)).Append(0).Append(body.Length).Distinct().Order().ToList();
        using var f = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.ReadWrite, bufferSize: 1);
        for (int k = 0; k + 1 < cuts.Count; k++)
        {
            f.Write(body, cuts[k], cuts[k + 1] - cuts[k]);
            f.Flush();
            Thread.Sleep(rng.Next(0, 4));
        }
    }
}
