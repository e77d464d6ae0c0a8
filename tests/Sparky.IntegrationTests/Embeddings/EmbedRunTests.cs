using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Nodes;
using Sparky.Embeddings.Client.Jobs;
using Sparky.Embeddings.StandIn;
using Sparky.IntegrationTests.Support;
using Xunit.Abstractions;

namespace Sparky.IntegrationTests.Embeddings;

/// <summary>
/// <c>sparky embed run</c> as users run it: the real executable, killed with SIGKILL and run again; as an array of
/// shard tasks of a real daemon; its output read by numpy. The endpoint is the stand-in server (hash vectors), or, with
/// SPARKY_TEST_EMBED_ENDPOINT set, a real one behind it (the stand-in then only adds the slowness and faults).
/// </summary>
public sealed class EmbedRunTests(ITestOutputHelper output) : IAsyncLifetime
{
    private readonly string _dir = Directory.CreateTempSubdirectory("sparky-embedrun-").FullName;
    private StandInEmbeddingServer _server = null!;

    public async Task InitializeAsync() => _server = await StandInEmbeddingServer.StartAsync();

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    private string Input => Path.Combine(_dir, "corpus.jsonl");
    private string Out => Path.Combine(_dir, "out");

    private List<(string Id, string Text)> Corpus(int n)
    {
        var rows = Enumerable.Range(0, n).Select(i => ($"doc-{i:D5}", $"sentence {i}: " + string.Join(' ', Enumerable.Repeat("word", i % 23)))).ToList();
        File.WriteAllLines(Input, rows.Select(r => JsonSerializer.Serialize(new Dictionary<string, string> { ["id"] = r.Item1, ["text"] = r.Item2 })));
        return rows;
    }

    private string[] Args(params string[] more) =>
        ["embed", "run", "--input", Input, "--output", Out, "--endpoint", _server.BaseUrl, "--id-field", "id", .. more];

    private static long CheckpointRows(string path)
    {
        try { return Checkpoint.Parse(File.ReadAllBytes(path)).Checkpoint?.Rows ?? 0; }
        catch (IOException) { return 0; } // not written yet (nor its directory)
    }

    /// <summary>Rows in the output being written (a row cut short by a kill not counted).</summary>
    private long WrittenRows()
    {
        try { return (new FileInfo(Path.Combine(Out, "embeddings.npy.partial")).Length - Sparky.Embeddings.Client.Output.Npy.HeaderBytes) / 4 / _server.Dimensions; }
        catch (FileNotFoundException) { return 0; }
    }

    /// <summary>A slow model: a run takes seconds.</summary>
    private static readonly TimeSpan SlowModel = TimeSpan.FromMilliseconds(60);

    /// <summary>From now on the server answers no request (each waits minutes, or until its client goes): a run stopped
    /// after this cannot have reached its end first, however late a loaded machine delivers the stop. The answers already
    /// on their way still come.</summary>
    private void HoldAnswers() => _server.Delay = TimeSpan.FromMinutes(5);

    /// <summary>Starts a run and kills it with SIGKILL once its checkpoint counts <paramref name="rows"/> rows (it has
    /// then written more that the checkpoint does not count yet).</summary>
    private async Task<long> KillWhenPastAsync(long rows)
    {
        _server.Delay = SlowModel;
        using var p = Process.Start(SparkyCli.StartInfo(Args("--batch", "8", "--concurrency", "2", "--checkpoint-every", "0.1")))!;
        var stderr = p.StandardError.ReadToEndAsync();
        var checkpoint = Path.Combine(Out, "embeddings.checkpoint.json");
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (CheckpointRows(checkpoint) < rows)
        {
            if (p.HasExited) Assert.Fail($"sparky embed run ended before it was killed: {await stderr}");
            Assert.True(DateTime.UtcNow < deadline, "no checkpoint past " + rows);
            await Task.Delay(20);
        }
        HoldAnswers();
        await Task.Delay(150); // rows written after that checkpoint, and requests in flight
        p.Kill(); // SIGKILL: no clean-up of any kind
        await p.WaitForExitAsync();
        // What the next run must drop: rows written after the last checkpoint (often some; none when the kill fell
        // right after one).
        var written = WrittenRows();
        output.WriteLine($"killed at checkpoint {CheckpointRows(checkpoint)} with {written} rows written: {await stderr}");
        return CheckpointRows(checkpoint);
    }

    [Fact]
    public async Task A_run_killed_with_sigkill_and_run_again_has_every_row_once_in_order()
    {
        var rows = Corpus(600);
        var first = await KillWhenPastAsync(80);
        var second = await KillWhenPastAsync(first + 160);
        Assert.True(second > first && second < 600, $"{first}, then {second}");
        Assert.True(File.Exists(Path.Combine(Out, "embeddings.npy.partial")));
        Assert.False(File.Exists(Path.Combine(Out, "embeddings.npy")));

        _server.Delay = TimeSpan.Zero;
        var last = await SparkyCli.RunAsync([.. Args("--json")]);
        Assert.True(last.ExitCode == 0, last.Stderr);
        var result = JsonNode.Parse(last.Stdout)!;
        Assert.Equal(600, (long)result["rows"]!);
        Assert.Equal(second, (long)result["resumed_at_row"]!);
        Assert.Contains($"resuming at row {second}", last.Stderr);
        Assert.Null(await _server.CheckOutputAsync(Path.Combine(Out, "embeddings.npy"), Path.Combine(Out, "embeddings.ids.txt"), rows));
        Assert.Empty(Directory.GetFiles(Out, "*.partial"));

        // Run once more: complete, nothing sent.
        long requests = _server.Requests;
        var again = await SparkyCli.RunAsync(Args());
        Assert.Equal(0, again.ExitCode);
        Assert.StartsWith("already complete:", again.Stdout);
        Assert.Equal(requests, _server.Requests);
    }

    [Fact]
    public async Task A_run_stopped_with_sigterm_records_its_place_exits_130_and_resumes()
    {
        var rows = Corpus(300);
        _server.Delay = SlowModel;
        using var p = Process.Start(SparkyCli.StartInfo(Args("--batch", "8", "--concurrency", "2", "--checkpoint-every", "1h")))!;
        var stderr = p.StandardError.ReadToEndAsync();
        for (var deadline = DateTime.UtcNow.AddSeconds(60); _server.Texts < 80; await Task.Delay(20))
            Assert.True(DateTime.UtcNow < deadline && !p.HasExited, "no progress");
        HoldAnswers(); // the kill below is a process of its own, which a loaded machine can be slow to start
        // SIGTERM, as `sparky cancel` sends: with no checkpoint due for an hour, the one it writes on the way out is
        // the only record of the rows done.
        Assert.Equal(0, (await ExternalTool.RunAsync("kill", ["-TERM", p.Id.ToString()])).Code);
        await p.WaitForExitAsync();
        Assert.Equal(130, p.ExitCode);
        Assert.Contains("stopped; the rows written are kept", await stderr);
        var kept = CheckpointRows(Path.Combine(Out, "embeddings.checkpoint.json"));
        Assert.InRange(kept, 64, 299);

        _server.Delay = TimeSpan.Zero;
        long before = _server.Texts;
        var r = await SparkyCli.RunAsync(Args());
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Equal(300 - kept, _server.Texts - before);
        Assert.Null(await _server.CheckOutputAsync(Path.Combine(Out, "embeddings.npy"), Path.Combine(Out, "embeddings.ids.txt"), rows));
    }

    [Fact]
    public async Task An_array_of_shard_tasks_covers_the_input_exactly_once_and_reports_progress()
    {
        var rows = Corpus(250);
        await using var d = await TestDaemon.StartAsync();
        // One shell command per task: $SPARKY_ARRAY_INDEX picks the shard.
        var command = $"{SparkyCli.CommandLine} embed run --input '{Input}' --output '{Out}' --endpoint {_server.BaseUrl} --id-field id --batch 10 --shard \"$SPARKY_ARRAY_INDEX/3\"";
        var ids = await d.SubmitAsync(new JsonObject { ["payload"] = new JsonObject { ["command"] = command, ["cwd"] = d.WorkDir }, ["array"] = "0-2" });
        Assert.Equal(3, ids.Count);
        var parts = new List<(string Id, string Text)>();
        int at = 0;
        for (int i = 0; i < 3; i++)
        {
            var t = await d.WaitAsync(ids[i], 120);
            Assert.True((string?)t["state"] == "succeeded", t.ToJsonString());
            // Its progress as the daemon read it from the task's __SPARKY_PROGRESS__ lines: all its lines done.
            var progress = await ProgressAsync(d, ids[i], p => p["done"] is not null && (long)p["done"]! == (long?)p["total"]);
            Assert.StartsWith($"embedding shard {i}/3:", (string?)progress["message"]);
            var (shardRows, _, _) = Sparky.Embeddings.Client.Output.Npy.Read(Path.Combine(Out, $"part-{i}-of-3.npy"));
            var expected = rows.Skip(at).Take((int)shardRows).ToList();
            Assert.Null(await _server.CheckOutputAsync(Path.Combine(Out, $"part-{i}-of-3.npy"), Path.Combine(Out, $"part-{i}-of-3.ids.txt"), expected));
            parts.AddRange(expected);
            at += (int)shardRows;
        }
        Assert.Equal(rows, parts); // every row, once, in order
    }

    private static async Task<JsonNode> ProgressAsync(TestDaemon d, string id, Func<JsonNode, bool> until)
    {
        for (var deadline = DateTime.UtcNow.AddSeconds(20); ; await Task.Delay(50))
        {
            var p = (await d.GetTaskAsync(id))["progress"];
            if (p is not null && until(p)) return p;
            Assert.True(DateTime.UtcNow < deadline, $"progress of {id}: {p?.ToJsonString() ?? "none"}");
        }
    }

    [Fact]
    public async Task The_npy_loads_in_numpy_as_float32_rows_in_order()
    {
        var python = await NumpyPythonAsync();
        var rows = Corpus(97);
        var run = await SparkyCli.RunAsync(Args("--batch", "16"));
        Assert.True(run.ExitCode == 0, run.Stderr);
        // The vectors it must hold, as raw little-endian float32, for numpy to compare against.
        var raw = Path.Combine(_dir, "expected.f32");
        await using (var f = File.Create(raw))
            foreach (var (_, text) in rows) f.Write(MemoryMarshal.AsBytes((await _server.ExpectedAsync(text)).AsSpan()));
        var script = """
            import sys, numpy as np
            a = np.load(sys.argv[1])
            want = np.fromfile(sys.argv[2], dtype='<f4').reshape(a.shape[0], -1)
            ids = open(sys.argv[3], encoding='utf-8').read().splitlines()
            print(a.dtype, a.shape[0], a.shape[1], a.flags['C_CONTIGUOUS'], len(ids), bool(np.allclose(a, want, rtol=0, atol=float(sys.argv[4]))))
            """;
        var r = await ExternalTool.RunAsync(python, ["-c", script, Path.Combine(Out, "embeddings.npy"), raw, Path.Combine(Out, "embeddings.ids.txt"),
            _server.Upstream is null ? "0" : "1e-3"]);
        Assert.True(r.Code == 0, r.Output);
        var dims = (await _server.ExpectedAsync(rows[0].Text)).Length;
        Assert.Equal($"float32 97 {dims} True 97 True", r.Stdout.Trim());
    }

    /// <summary>A python3 with numpy (the one on PATH, else Debian's), or a failure saying how to get it: never a skip.</summary>
    private static async Task<string> NumpyPythonAsync()
    {
        var tried = new List<string>();
        foreach (var python in new[] { "python3", "/usr/bin/python3" })
        {
            try
            {
                var r = await ExternalTool.RunAsync(python, ["-c", "import numpy"]);
                if (r.Code == 0) return python;
                tried.Add($"{python}: {r.Stderr.Trim().Split('\n')[^1]}");
            }
            catch (System.ComponentModel.Win32Exception e) { tried.Add($"{python}: {e.Message}"); }
        }
        Assert.Fail((Environment.GetEnvironmentVariable("CI") == "true"
            ? "CI: python3 with numpy is required (test.sh installs python3-numpy): "
            : "python3 with numpy is missing: run ./test.sh as root, or apt-get install python3-numpy: ") + string.Join("; ", tried));
        return "";
    }

    [Fact]
    public async Task A_text_refused_as_too_large_even_alone_stops_the_run_and_with_skip_bad_is_passed_over_with_no_row()
    {
        var rows = Corpus(60);
        var lines = File.ReadAllLines(Input);
        lines[30] = JsonSerializer.Serialize(new Dictionary<string, string> { ["id"] = "doc-huge", ["text"] = new string('h', 4000) });
        File.WriteAllLines(Input, lines);
        _server.MaxBodyBytes = 3000; // a batch of 8 of the others is about 1,100 bytes; the huge text alone is over
        var stopped = await SparkyCli.RunAsync(Args("--batch", "8", "--concurrency", "1"));
        Assert.Equal(1, stopped.ExitCode);
        Assert.Contains($"the text of id doc-huge ({Input}:31, 4000 characters) is too large for the endpoint even alone: HTTP 413", stopped.Stderr);
        Assert.Contains("--skip-bad passes over such texts", stopped.Stderr);

        // Run again with --skip-bad: it resumes, passes over that text (named on stderr, counted) and writes every
        // other row once, in order, and no row or id for it.
        var r = await SparkyCli.RunAsync(Args("--batch", "8", "--concurrency", "1", "--skip-bad", "--json"));
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Contains($"{Input}:31: skipped: the text of id doc-huge (4000 characters) is too large for the endpoint even alone: HTTP 413", r.Stderr);
        var result = JsonNode.Parse(r.Stdout)!;
        Assert.Equal(1, (long)result["skipped"]!);
        Assert.Equal(59, (long)result["rows"]!);
        rows.RemoveAt(30);
        Assert.Null(await _server.CheckOutputAsync(Path.Combine(Out, "embeddings.npy"), Path.Combine(Out, "embeddings.ids.txt"), rows));
        Assert.DoesNotContain("doc-huge", File.ReadAllText(Path.Combine(Out, "embeddings.ids.txt")));
    }

    [Fact]
    public async Task Bad_input_gets_one_clear_line_with_the_line_number()
    {
        Corpus(5);
        File.AppendAllText(Input, "{\"id\": \"x\", \"text\": [1]}\n");
        var r = await SparkyCli.RunAsync(Args());
        Assert.Equal(1, r.ExitCode);
        Assert.Equal($"sparky: {Input}:6: field 'text' is a array, not a string (nothing was sent; --skip-bad passes over such lines)", r.Stderr.Trim());
        Assert.Equal(0, _server.Requests);

        var shard = await SparkyCli.RunAsync(Args("--shard", "3/3"));
        Assert.Equal(2, shard.ExitCode);
        Assert.Contains("--shard 3/3: i must be below n", shard.Stderr);
        var endpoint = await SparkyCli.RunAsync(["embed", "run", "--input", Input, "--output", Out, "--endpoint", "localhost:8080"]);
        Assert.Equal(2, endpoint.ExitCode);
        Assert.Contains("--endpoint wants an http:// or https:// URL", endpoint.Stderr);
    }
}
