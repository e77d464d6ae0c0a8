using System.Text.Json;
using Sparky.Embeddings.Client.Http;
using Sparky.Embeddings.Client.Input;
using Sparky.Embeddings.Client.Jobs;
using Sparky.Embeddings.StandIn;

namespace Sparky.Embeddings.Client.Tests.Jobs;

/// <summary>The job end to end in this process, over real HTTP on loopback, against the stand-in server (or, through
/// it, the endpoint SPARKY_TEST_EMBED_ENDPOINT names): order, ids, retries, resume, shards, bad input.</summary>
public sealed class EmbedJobTests : IAsyncLifetime
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("sparky-embedjob-");
    private StandInEmbeddingServer _server = null!;
    private readonly List<string> _log = [];

    public async Task InitializeAsync() => _server = await StandInEmbeddingServer.StartAsync();

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        _dir.Delete(recursive: true);
    }

    private string Out => Path.Combine(_dir.FullName, "out");

    /// <summary>A JSONL corpus of <paramref name="n"/> texts of mixed length, ids "doc-i"; returns its records.</summary>
    private List<(string Id, string Text)> Corpus(int n, string name = "corpus.jsonl")
    {
        var rows = Enumerable.Range(0, n).Select(i => ($"doc-{i}", $"text {i} " + new string('w', i % 37) + (i % 5 == 0 ? " ünïcödé \"q\"" : ""))).ToList();
        File.WriteAllLines(Path.Combine(_dir.FullName, name), rows.Select(r => JsonSerializer.Serialize(new Dictionary<string, string> { ["id"] = r.Item1, ["text"] = r.Item2 })));
        return rows;
    }

    private EmbedJobOptions Options(string input = "corpus.jsonl") =>
        new(Path.Combine(_dir.FullName, input), Out, Endpoint(), new InputSpec(InputFormat.Jsonl, "text", "id"))
        {
            BatchSize = 7, Concurrency = 4, CheckpointEvery = TimeSpan.Zero, Retry = new RetryPolicy(20),
        };

    private Endpoint Endpoint()
    {
        Assert.True(Sparky.Embeddings.Client.Http.Endpoint.TryParse(_server.BaseUrl, out var e, out _));
        return e!;
    }

    private Task<EmbedJobResult> Run(EmbedJobOptions o, CancellationToken ct = default, Action<JobProgress>? progress = null) =>
        new EmbedJob(o, progress ?? (_ => { }), line => { lock (_log) _log.Add(line); }).RunAsync(ct);

    [Fact]
    public async Task Vectors_are_written_in_input_order_with_their_ids()
    {
        var rows = Corpus(300);
        _server.DelayJitter = TimeSpan.FromMilliseconds(15); // answers come back out of order
        var r = await Run(Options());
        Assert.True(r.Ok, r.Error);
        Assert.Equal(300, r.Rows);
        Assert.Null(await _server.CheckOutputAsync(r.NpyPath, r.IdsPath, rows));
        Assert.Equal(43, _server.Requests); // 300 texts in batches of 7: one request each, none sent twice
        Assert.False(File.Exists(r.NpyPath + ".partial"));
        if (_server.Upstream is null) Assert.Equal("base64", _server.LastEncoding);
    }

    [Fact]
    public async Task Where_the_endpoint_refuses_base64_vectors_are_asked_for_as_floats()
    {
        var rows = Corpus(50);
        _server.RefuseBase64 = true;
        var r = await Run(Options());
        Assert.True(r.Ok, r.Error);
        Assert.Contains(_log, l => l.Contains("asking for floats instead of base64"));
        Assert.Equal(0, r.Retries);
        Assert.Null(await _server.CheckOutputAsync(r.NpyPath, r.IdsPath, rows));
        if (_server.Upstream is null) Assert.Equal("float", _server.LastEncoding);
        // A 400 after the endpoint has answered is the request's own fault: the job stops with it.
        _server.RefuseBase64 = false;
        Corpus(60, "more.jsonl");
        var o = Options("more.jsonl") with { OutputDir = Path.Combine(_dir.FullName, "more"), Concurrency = 1 };
        var stopped = await Run(o, progress: p => { if (p.Rows == 14) _server.FailNext(1, 400); });
        Assert.Contains("refused the request: HTTP 400", stopped.Error);
    }

    [Fact]
    public async Task Overload_and_server_errors_are_retried_and_nothing_is_lost()
    {
        var rows = Corpus(200);
        _server.FailNext(2, 500);
        _server.FailEvery = 3; // 429 (Retry-After: 0) and 503 in turn
        var r = await Run(Options());
        Assert.True(r.Ok, r.Error);
        Assert.True(_server.Refused >= 10, $"{_server.Refused} refused");
        Assert.Equal(_server.Refused, r.Retries);
        Assert.Contains(_log, l => l.Contains("HTTP 429") && l.Contains("retrying a batch of 7"));
        Assert.Contains(_log, l => l.Contains("HTTP 503"));
        Assert.Null(await _server.CheckOutputAsync(r.NpyPath, r.IdsPath, rows));
    }

    [Fact]
    public async Task Batches_end_at_the_character_budget_and_a_longer_text_goes_alone()
    {
        var rows = Corpus(120);
        rows[50] = ("doc-50", "long " + new string('l', 500));
        File.WriteAllLines(Path.Combine(_dir.FullName, "corpus.jsonl"), rows.Select(r => JsonSerializer.Serialize(new Dictionary<string, string> { ["id"] = r.Id, ["text"] = r.Text })));
        var r = await Run(Options() with { BatchSize = 50, BatchChars = 200 });
        Assert.True(r.Ok, r.Error);
        Assert.Null(await _server.CheckOutputAsync(r.NpyPath, r.IdsPath, rows));
        if (_server.Upstream is not null) return;
        var batches = _server.Answered.ToList();
        Assert.All(batches, b => Assert.True(b.Chars <= 200 || b.Texts == 1, $"{b.Texts} texts of {b.Chars} characters"));
        Assert.Contains(batches, b => b is { Texts: 1, Chars: 505 });
        Assert.True(batches.Count >= rows.Sum(x => x.Text.Length) / 200, $"{batches.Count} requests");
        Assert.Equal(120, batches.Sum(b => b.Texts)); // none sent twice
    }

    [Fact]
    public async Task A_batch_refused_as_too_large_is_sent_in_halves_and_one_text_too_large_alone_stops_the_job_naming_it()
    {
        if (_server.Upstream is not null) return; // the 413 is the stand-in's own
        var rows = Corpus(200);
        _server.MaxBodyBytes = 700; // about 12 of these texts
        var o = Options() with { BatchSize = 40, Concurrency = 2 };
        var r = await Run(o);
        Assert.True(r.Ok, r.Error);
        Assert.Null(await _server.CheckOutputAsync(r.NpyPath, r.IdsPath, rows));
        Assert.Contains(_log, l => l.Contains("as too large (HTTP 413): sending them in halves"));
        Assert.Equal(200, _server.Texts); // every text embedded once
        Assert.All(_server.Answered, b => Assert.True(b.Texts <= 20, $"a batch of {b.Texts}"));
        // Once lowered, the budget keeps later batches under the limit: a few refusals at the start, not one a batch.
        Assert.InRange(_server.Refused, 1, 8);

        // A single text over the limit cannot be split: the job stops naming it, keeping the rows before it.
        var more = Corpus(60, "more.jsonl");
        var lines = File.ReadAllLines(Path.Combine(_dir.FullName, "more.jsonl"));
        lines[45] = JsonSerializer.Serialize(new Dictionary<string, string> { ["id"] = "doc-huge", ["text"] = new string('h', 2000) });
        File.WriteAllLines(Path.Combine(_dir.FullName, "more.jsonl"), lines);
        var stopped = await Run(Options("more.jsonl") with { OutputDir = Path.Combine(_dir.FullName, "more"), Concurrency = 1 });
        Assert.False(stopped.Ok);
        Assert.Contains("the text of id doc-huge", stopped.Error);
        Assert.Contains("more.jsonl:46", stopped.Error);
        Assert.Contains("HTTP 413", stopped.Error);
        Assert.InRange(stopped.Rows, 40, 45);
    }

    [Fact]
    public async Task With_skip_bad_texts_too_large_even_alone_are_passed_over_counted_and_get_no_row()
    {
        if (_server.Upstream is not null) return; // the 413 is the stand-in's own
        var rows = Corpus(50);
        // The very first text (no vector seen yet: the dimension is not known) and two more, one a batch's last.
        foreach (int i in new[] { 0, 20, 27 }) rows[i] = ($"doc-{i}", "huge " + new string('h', 2000));
        File.WriteAllLines(Path.Combine(_dir.FullName, "corpus.jsonl"), rows.Select(r => JsonSerializer.Serialize(new Dictionary<string, string> { ["id"] = r.Id, ["text"] = r.Text })));
        _server.MaxBodyBytes = 1500;
        var r = await Run(Options() with { SkipBad = true });
        Assert.True(r.Ok, r.Error);
        Assert.Equal(3, r.Skipped);
        Assert.Equal(47, r.Rows);
        foreach (int i in new[] { 0, 20, 27 })
            Assert.Contains(_log, l => l.StartsWith($"{Path.Combine(_dir.FullName, "corpus.jsonl")}:{i + 1}: skipped: the text of id doc-{i} (2005 characters) is too large"));
        Assert.Null(await _server.CheckOutputAsync(r.NpyPath, r.IdsPath, rows.Where((_, i) => i is not (0 or 20 or 27)).ToList()));
    }

    [Fact]
    public async Task A_refused_request_stops_the_job_and_a_new_run_finishes_it()
    {
        var rows = Corpus(100);
        var o = Options() with { Concurrency = 1 };
        // 5 batches through, then a 400: the job stops with the server's words, keeping those 5 batches.
        var first = await Run(o, progress: p => { if (p.Rows == 35) _server.FailNext(1, 400); });
        Assert.False(first.Ok);
        Assert.Contains("HTTP 400: {\"error\":{\"message\":\"refused on purpose (400)\"", first.Error);
        Assert.InRange(first.Rows, 35, 42);
        var second = await Run(o);
        Assert.True(second.Ok, second.Error);
        Assert.Equal(first.Rows, second.ResumedAtRow);
        Assert.Null(await _server.CheckOutputAsync(second.NpyPath, second.IdsPath, rows));
    }

    [Fact]
    public async Task A_stopped_job_resumes_with_no_row_twice_and_none_missing()
    {
        var rows = Corpus(400);
        _server.Delay = TimeSpan.FromMilliseconds(5);
        using var stop = new CancellationTokenSource();
        var o = Options();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => Run(o, stop.Token, p => { if (p.Rows >= 100) stop.Cancel(); }));
        var checkpoint = Checkpoint.Parse(File.ReadAllBytes(Path.Combine(Out, "embeddings.checkpoint.json"))).Checkpoint!;
        Assert.InRange(checkpoint.Rows, 100, 399);
        // As if it had been killed after writing rows it had not yet recorded: they must be dropped, not kept twice.
        using (var f = File.Open(Path.Combine(Out, "embeddings.npy.partial"), FileMode.Append)) f.Write(new byte[16 * 4 * 3]);
        File.AppendAllText(Path.Combine(Out, "embeddings.ids.txt.partial"), "doc-x\ndoc-y\ndoc-z\n");

        long before = _server.Texts;
        var r = await Run(o);
        Assert.True(r.Ok, r.Error);
        Assert.Equal(checkpoint.Rows, r.ResumedAtRow);
        Assert.Equal(400 - checkpoint.Rows, _server.Texts - before); // only what was not committed is sent again
        Assert.Null(await _server.CheckOutputAsync(r.NpyPath, r.IdsPath, rows));
        Assert.Contains(_log, l => l.StartsWith($"resuming at row {checkpoint.Rows}"));
    }

    [Fact]
    public async Task A_completed_job_run_again_sends_nothing_and_another_input_is_refused()
    {
        var rows = Corpus(20);
        Assert.True((await Run(Options())).Ok);
        long requests = _server.Requests;
        var again = await Run(Options());
        Assert.True(again.AlreadyComplete);
        Assert.Equal(requests, _server.Requests);
        Corpus(21);
        var other = await Run(Options());
        Assert.Contains("another job (the input file changed since)", other.Error);
        Assert.Null(await _server.CheckOutputAsync(again.NpyPath, again.IdsPath, rows)); // untouched
    }

    [Fact]
    public async Task A_run_killed_while_renaming_its_files_into_place_finishes_the_renames()
    {
        var rows = Corpus(30);
        var r = await Run(Options());
        Assert.True(r.Ok, r.Error);
        // As if killed between the ids' rename and the .npy's: the checkpoint says complete, the .npy is still partial.
        File.Move(r.NpyPath, r.NpyPath + ".partial");
        long requests = _server.Requests;
        var again = await Run(Options());
        Assert.True(again.Ok, again.Error);
        Assert.False(again.AlreadyComplete);
        Assert.Equal(requests, _server.Requests);
        Assert.Null(await _server.CheckOutputAsync(r.NpyPath, r.IdsPath, rows));
        Assert.False(File.Exists(r.NpyPath + ".partial"));
    }

    [Fact]
    public async Task Two_runs_of_one_shard_at_once_are_refused()
    {
        Corpus(200);
        _server.Delay = TimeSpan.FromMilliseconds(20);
        var first = Run(Options() with { Concurrency = 1 });
        var checkpoint = Path.Combine(Out, "embeddings.checkpoint.json");
        for (var deadline = DateTime.UtcNow.AddSeconds(20); !File.Exists(checkpoint); await Task.Delay(10))
            Assert.True(DateTime.UtcNow < deadline);
        var second = await Run(Options());
        Assert.Contains("another `sparky embed run` is writing", second.Error);
        Assert.True((await first).Ok);
    }

    [Fact]
    public async Task Shards_cover_the_input_exactly_once()
    {
        var rows = Corpus(101);
        var parts = await Task.WhenAll(Enumerable.Range(0, 4).Select(i => Run(Options() with { Shard = new ShardSpec(i, 4) })));
        Assert.All(parts, p => Assert.True(p.Ok, p.Error));
        Assert.Equal(Enumerable.Range(0, 4).Select(i => Path.Combine(Out, $"part-{i}-of-4.npy")), parts.Select(p => p.NpyPath));
        long at = 0;
        foreach (var p in parts)
        {
            Assert.Null(await _server.CheckOutputAsync(p.NpyPath, p.IdsPath, rows.Skip((int)at).Take((int)p.Rows).ToList()));
            at += p.Rows;
        }
        Assert.Equal(101, at);
    }

    [Fact]
    public async Task A_bad_line_stops_the_job_before_anything_is_sent_unless_skipped()
    {
        var rows = Corpus(30);
        var path = Path.Combine(_dir.FullName, "corpus.jsonl");
        var lines = File.ReadAllLines(path).ToList();
        lines[11] = """{"text": 12}""";
        lines.Insert(20, "{broken");
        File.WriteAllLines(path, lines);
        var r = await Run(Options());
        Assert.Equal($"{path}:12: field 'text' is a number, not a string (nothing was sent; --skip-bad passes over such lines)", r.Error);
        Assert.Equal(0, _server.Requests);
        Assert.False(File.Exists(Path.Combine(Out, "embeddings.npy.partial")));

        r = await Run(Options() with { SkipBad = true });
        Assert.True(r.Ok, r.Error);
        Assert.Equal(2, r.Skipped);
        Assert.Contains(_log, l => l.StartsWith($"{path}:21: skipped: not valid JSON"));
        Assert.Null(await _server.CheckOutputAsync(r.NpyPath, r.IdsPath, rows.Where((_, i) => i != 11).ToList()));
    }

    [Fact]
    public async Task Plain_text_lines_get_their_line_numbers_as_ids_and_the_key_goes_as_a_bearer_token()
    {
        File.WriteAllLines(Path.Combine(_dir.FullName, "corpus.txt"), ["first", "", "third line", "  fourth  "]);
        var r = await Run(Options("corpus.txt") with { Spec = new InputSpec(InputFormat.Text), ApiKey = "sk-test" });
        Assert.True(r.Ok, r.Error);
        Assert.Null(await _server.CheckOutputAsync(r.NpyPath, r.IdsPath, [("1", "first"), ("3", "third line"), ("4", "  fourth  ")]));
        Assert.Equal("Bearer sk-test", _server.LastAuthorization);
        Assert.DoesNotContain(_log, l => l.Contains("sk-test"));
    }
}
