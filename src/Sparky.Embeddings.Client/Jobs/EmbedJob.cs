using System.Diagnostics;
using System.Threading.Channels;
using Sparky.Embeddings.Client.Http;
using Sparky.Embeddings.Client.Input;
using Sparky.Embeddings.Client.Output;

namespace Sparky.Embeddings.Client.Jobs;

/// <summary>What <c>sparky embed run</c> was asked to do.</summary>
public sealed record EmbedJobOptions(string Input, string OutputDir, Endpoint Endpoint, InputSpec Spec)
{
    public string? Model { get; init; }
    public int BatchSize { get; init; } = 64;
    /// <summary>Characters of text per request at most (a batch ends before the text that would pass it; a longer text
    /// goes alone): requests stay within what servers take (TEI's 2 MB body, OpenAI's tokens per request) whatever the
    /// texts' length. About 4 characters a token in English.</summary>
    public int BatchChars { get; init; } = DefaultBatchChars;
    public const int DefaultBatchChars = 100_000;
    /// <summary>Batches in flight at once (each on its own pooled connection).</summary>
    public int Concurrency { get; init; } = 4;
    public ShardSpec Shard { get; init; } = ShardSpec.Whole;
    /// <summary>Pass over lines that cannot be read (and say so) instead of stopping at the first.</summary>
    public bool SkipBad { get; init; }
    public RetryPolicy Retry { get; init; } = new();
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromMinutes(2);
    public string? ApiKey { get; init; }
    /// <summary>Ask for vectors as decimal numbers rather than base64 from the start.</summary>
    public bool Floats { get; init; }
    /// <summary>How often the place is made durable: what a kill -9 can cost to redo, against an fsync per batch.</summary>
    public TimeSpan CheckpointEvery { get; init; } = TimeSpan.FromSeconds(1);
}

/// <summary>How far a job is: input lines of its shard gone through (embedded or passed over), rows written.</summary>
public readonly record struct JobProgress(long LinesDone, long LinesTotal, long Rows, long Skipped, int Retries);

/// <summary>How a job ended: its outputs, or the reason it stopped (<see cref="Error"/>; what it had committed stays
/// and a new run resumes from it).</summary>
public sealed record EmbedJobResult(string? Error, string NpyPath, string IdsPath, long Rows, int Dimensions, long Skipped,
    long ResumedAtRow, bool AlreadyComplete, int Retries, TimeSpan Elapsed)
{
    public bool Ok => Error is null;
}

/// <summary>
/// One embedding job: the lines of a shard of the input, in batches to the endpoint, a few batches in flight, the
/// vectors appended in input order as their batches come back, a checkpoint at most every
/// <see cref="EmbedJobOptions.CheckpointEvery"/>, and at the end the final .npy and ids files, renamed into place.
/// A run that finds a stopped run's files goes on from its checkpoint (<see cref="ResumePlan"/>).
/// </summary>
public sealed class EmbedJob(EmbedJobOptions options, Action<JobProgress> progress, Action<string> log, TimeProvider? time = null)
{
    private readonly TimeProvider _time = time ?? TimeProvider.System;

    /// <summary>A batch read from the input: its records, and where the input stands after it.</summary>
    private sealed record Batch(List<InputRecord> Records, long EndLine, long EndOffset, long Skipped);

    /// <summary>A batch's vectors, row after row, for its records less <see cref="Skipped"/> (indices into the batch's
    /// records, ascending: texts the endpoint refused as too large even alone, under --skip-bad); or why not.</summary>
    private sealed record BatchReply(float[]? Vectors, int Dimensions, string? Error, IReadOnlyList<int> Skipped)
    {
        public static readonly BatchReply Empty = new([], 0, null, []);
    }

    /// <summary>A failure that ends the job with a reason for the user (not a bug).</summary>
    private sealed class JobFailure(string message) : Exception(message);

    public string NpyPath => Path.Combine(options.OutputDir, options.Shard.Stem + ".npy");
    public string IdsPath => Path.Combine(options.OutputDir, options.Shard.Stem + ".ids.txt");
    private string DataPartial => NpyPath + ".partial";
    private string IdsPartial => IdsPath + ".partial";
    public string CheckpointPath => Path.Combine(options.OutputDir, options.Shard.Stem + ".checkpoint.json");
    private string LockPath => Path.Combine(options.OutputDir, options.Shard.Stem + ".lock");

    private Checkpoint _state = null!;
    /// <summary>A record read past the end of the last batch (it would have passed its character budget): the next
    /// batch starts with it.</summary>
    private InputRecord? _carry;
    /// <summary>The character budget now: <see cref="EmbedJobOptions.BatchChars"/>, lowered after a 413 so the next
    /// batches are not refused too.</summary>
    private int _batchChars;
    private long _firstLine, _endLine, _resumedAt;
    private int _retries;
    private readonly Stopwatch _clock = Stopwatch.StartNew();

    public async Task<EmbedJobResult> RunAsync(CancellationToken ct)
    {
        try { return await RunCoreAsync(ct); }
        catch (JobFailure e) { return Result(e.Message); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return Result(e.Message); }
    }

    private EmbedJobResult Result(string? error, bool alreadyComplete = false) =>
        new(error, NpyPath, IdsPath, _state?.Rows ?? 0, _state?.Dimensions ?? 0, _state?.Skipped ?? 0, _resumedAt, alreadyComplete, _retries, _clock.Elapsed);

    private async Task<EmbedJobResult> RunCoreAsync(CancellationToken ct)
    {
        var input = new FileInfo(options.Input);
        if (!input.Exists) throw new JobFailure($"{options.Input}: no such file");
        Directory.CreateDirectory(options.OutputDir);
        // Two runs of one shard at once would interleave their rows: the second is refused while the first holds this.
        using var held = TakeLock();
        var job = new JobIdentity(input.Length, input.LastWriteTimeUtc.Ticks, options.Spec.Format.ToString().ToLowerInvariant(),
            options.Spec.Field, options.Spec.IdField, options.Shard.ToString());
        (_firstLine, _endLine) = options.Shard.Lines(LineReader.CountLines(options.Input));

        var found = ReadCheckpoint();
        var plan = ResumePlan.Decide(found, job, options.Model, File.Exists(NpyPath), File.Exists(DataPartial), options.Shard.Stem);
        switch (plan)
        {
            case ResumePlan.Conflict c: throw new JobFailure($"{options.OutputDir}: {c.Reason}");
            case ResumePlan.Done d:
                _state = d.From;
                _resumedAt = d.From.Rows;
                return Result(null, alreadyComplete: true);
            case ResumePlan.Finish f:
                _state = f.From;
                _resumedAt = f.From.Rows;
                Finalise();
                return Result(null);
        }

        using var client = new EmbeddingsClient(options.Endpoint, options.ApiKey, options.Concurrency, options.Retry, options.RequestTimeout, log, _time, options.Floats);
        PartialOutput output;
        if (plan is ResumePlan.Resume r)
        {
            _state = r.From;
            _resumedAt = r.From.Rows;
            var (resumed, error) = PartialOutput.Resume(DataPartial, IdsPartial, r.From.Rows, r.From.Dimensions, r.From.IdsBytes);
            output = resumed ?? throw new JobFailure(error!);
            log($"resuming at row {r.From.Rows} (input line {r.From.NextLine}) from {CheckpointPath}");
        }
        else
        {
            // Every line is checked before the first request: a bad line stops the job before it has cost anything.
            if (!options.SkipBad) CheckAllLines();
            var model = options.Model ?? await DiscoverModelAsync(client, ct);
            _state = new Checkpoint(job, model, 0, 0, 0, _firstLine, OffsetOfLine(_firstLine), 0, false);
            output = PartialOutput.Create(DataPartial, IdsPartial);
            _state.Save(CheckpointPath);
        }
        using (output)
        {
            progress(Progress());
            await EmbedAsync(client, output, ct); // its last commit made every row durable
            _state = _state with { Complete = true };
            _state.Save(CheckpointPath);
        }
        Finalise();
        progress(Progress());
        return Result(null);
    }

    private FileStream TakeLock()
    {
        try { return new FileStream(LockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, 1, FileOptions.DeleteOnClose); }
        catch (IOException) { throw new JobFailure($"another `sparky embed run` is writing {Path.Combine(options.OutputDir, options.Shard.Stem)}.* ({LockPath} is held)"); }
    }

    private Checkpoint? ReadCheckpoint()
    {
        if (!File.Exists(CheckpointPath)) return null;
        var (found, error) = Checkpoint.Parse(File.ReadAllBytes(CheckpointPath));
        return found ?? throw new JobFailure($"{CheckpointPath}: {error} (remove it and the {options.Shard.Stem}.* files beside it to start over)");
    }

    private async Task<string?> DiscoverModelAsync(EmbeddingsClient client, CancellationToken ct)
    {
        var (model, error) = await client.OnlyModelAsync(ct);
        if (model is null) throw new JobFailure($"no model to ask for: {options.Endpoint.Models}: {error} (--model names one)");
        return model;
    }

    /// <summary>Reads the shard's lines once, stopping at the first that cannot be read.</summary>
    private void CheckAllLines()
    {
        using var reader = new LineReader(options.Input);
        while (reader.NextLine < _endLine && reader.TryRead(out long n, out var line))
        {
            if (n < _firstLine) continue;
            if (LineParser.Parse(line, n, options.Spec).Error is { } error)
                throw new JobFailure($"{options.Input}:{n}: {error} (nothing was sent; --skip-bad passes over such lines)");
        }
    }

    private long OffsetOfLine(long line)
    {
        if (line == 1) return 0;
        using var reader = new LineReader(options.Input);
        while (reader.NextLine < line && reader.TryRead(out _, out _)) { }
        return reader.NextOffset;
    }

    private JobProgress Progress() =>
        new(_state.NextLine - _firstLine, _endLine - _firstLine, _state.Rows, _state.Skipped, _retries);

    /// <summary>
    /// The pipeline: a reader that starts each batch's request as soon as one of <see cref="EmbedJobOptions.Concurrency"/>
    /// slots is free, and a writer that takes the replies in input order, appends them and frees the slot. A reply that
    /// came back early waits for those before it, so memory holds at most that many batches.
    /// </summary>
    private async Task EmbedAsync(EmbeddingsClient client, PartialOutput output, CancellationToken ct)
    {
        _batchChars = options.BatchChars;
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        using var slots = new SemaphoreSlim(options.Concurrency);
        var queue = Channel.CreateUnbounded<(Batch Batch, Task<BatchReply> Reply)>();
        int dims = _state.Dimensions;
        var reader = Task.Run(async () =>
        {
            try
            {
                using var lines = new LineReader(options.Input, _state.NextOffset, _state.NextLine);
                while (NextBatch(lines) is { } batch)
                {
                    await slots.WaitAsync(stop.Token);
                    var reply = batch.Records.Count == 0 ? Task.FromResult(BatchReply.Empty)
                        : EmbedSplittingAsync(client, batch.Records, 0, batch.Records.Count, Volatile.Read(ref dims), stop.Token);
                    queue.Writer.TryWrite((batch, reply));
                }
                queue.Writer.TryComplete();
            }
            catch (Exception e) { queue.Writer.TryComplete(e); }
        }, CancellationToken.None);

        var lastSave = _time.GetTimestamp();
        try
        {
            await foreach (var (batch, reply) in queue.Reader.ReadAllAsync(stop.Token))
            {
                var (vectors, d, error, refused) = await reply;
                if (error is not null) throw new JobFailure($"{options.Endpoint.Embeddings}: {error}");
                var kept = refused.Count == 0 ? batch.Records : batch.Records.Where((_, i) => !refused.Contains(i)).ToList();
                if (kept.Count > 0)
                {
                    if (dims == 0) Volatile.Write(ref dims, d);
                    else if (d != dims) throw new JobFailure($"{options.Endpoint.Embeddings}: {d}-dimensional vectors after {dims}-dimensional ones");
                    output.Append(vectors!, kept.Select(x => x.Id));
                }
                _state = _state with
                {
                    Rows = _state.Rows + kept.Count, Dimensions = dims, IdsBytes = output.IdsBytes,
                    NextLine = batch.EndLine, NextOffset = batch.EndOffset, Skipped = _state.Skipped + batch.Skipped + refused.Count,
                };
                _retries = client.Retries;
                slots.Release();
                if (_time.GetElapsedTime(lastSave) >= options.CheckpointEvery)
                {
                    Commit(output);
                    lastSave = _time.GetTimestamp();
                }
                progress(Progress());
            }
            await reader; // its failure (a bad line under no --skip-bad cannot happen here; an I/O error can) ends the job
        }
        finally
        {
            // Stopped or failed: what is written is kept, so a new run resumes after it.
            stop.Cancel();
            Commit(output);
            try { await reader; } catch (OperationCanceledException) { }
            _retries = client.Retries;
        }
    }

    /// <summary>
    /// The vectors of <paramref name="count"/> records from <paramref name="start"/>. Where the endpoint answers 413 the
    /// records are split in half and each half sent on its own, down to one text; one text still too large ends the job
    /// naming it, or under --skip-bad is passed over (named on stderr, counted, no row written for it). The budget for
    /// the batches still to be read is lowered to half the refused request's characters.
    /// </summary>
    private async Task<BatchReply> EmbedSplittingAsync(EmbeddingsClient client, List<InputRecord> records, int start, int count, int dims, CancellationToken ct)
    {
        var texts = new List<string>(count);
        for (int i = start; i < start + count; i++) texts.Add(records[i].Text);
        var reply = await client.EmbedAsync(texts, _state.Model, dims, ct);
        if (!reply.TooLarge) return new BatchReply(reply.Vectors, reply.Dimensions, reply.Error, []);
        if (count == 1)
        {
            var r = records[start];
            if (!options.SkipBad)
                return new BatchReply(null, 0, $"the text of id {r.Id} ({options.Input}:{r.Line}, {r.Text.Length} characters) is too large for the endpoint " +
                    $"even alone: {reply.Error} (--skip-bad passes over such texts)", []);
            log($"{options.Input}:{r.Line}: skipped: the text of id {r.Id} ({r.Text.Length} characters) is too large for the endpoint even alone: {reply.Error}");
            return new BatchReply([], dims, null, [start]);
        }
        int refusedChars = (int)Math.Min(int.MaxValue, texts.Sum(t => (long)t.Length));
        if (LowerBudget(Math.Max(1, refusedChars / 2)) is { } lowered)
            log($"the endpoint refused {count} texts of {refusedChars} characters as too large (HTTP 413): sending them in halves, and batches of at most {lowered} characters from now on");
        int half = count / 2;
        var first = await EmbedSplittingAsync(client, records, start, half, dims, ct);
        if (first.Error is not null) return first;
        var second = await EmbedSplittingAsync(client, records, start + half, count - half, first.Dimensions, ct);
        if (second.Error is not null) return second;
        return new BatchReply([.. first.Vectors!, .. second.Vectors!], Math.Max(first.Dimensions, second.Dimensions), null, [.. first.Skipped, .. second.Skipped]);
    }

    /// <summary>Lowers the character budget to <paramref name="chars"/>; the new budget, or null where it was already
    /// that low (another batch lowered it first).</summary>
    private int? LowerBudget(int chars)
    {
        int now;
        do
        {
            now = Volatile.Read(ref _batchChars);
            if (now <= chars) return null;
        } while (Interlocked.CompareExchange(ref _batchChars, chars, now) != now);
        return chars;
    }

    private void Commit(PartialOutput output)
    {
        output.Sync();
        _state.Save(CheckpointPath);
    }

    /// <summary>The next batch of records (up to the batch size and the character budget) and the lines passed over
    /// before it; null at the shard's end. A record that would pass the budget is kept for the next batch, and this
    /// batch ends at the line before it (its place, for the checkpoint). Runs on the reader's thread.</summary>
    private Batch? NextBatch(LineReader lines)
    {
        var records = new List<InputRecord>(options.BatchSize);
        long skipped = 0, chars = 0;
        bool read = false;
        long endLine = lines.NextLine, endOffset = lines.NextOffset;
        int budget = Volatile.Read(ref _batchChars);
        if (_carry is { } carried)
        {
            records.Add(carried);
            chars = carried.Text.Length;
            _carry = null;
        }
        while (records.Count < options.BatchSize && lines.NextLine < _endLine && lines.TryRead(out long n, out var line))
        {
            read = true;
            var parsed = LineParser.Parse(line, n, options.Spec);
            if (parsed.Record is { } record)
            {
                if (records.Count > 0 && chars + record.Text.Length > budget)
                {
                    _carry = record;
                    return new Batch(records, endLine, endOffset, skipped);
                }
                records.Add(record);
                chars += record.Text.Length;
            }
            else if (parsed.Error is { } error)
            {
                if (!options.SkipBad) throw new JobFailure($"{options.Input}:{n}: {error} (--skip-bad passes over such lines)");
                skipped++;
                log($"{options.Input}:{n}: skipped: {error}");
            }
            (endLine, endOffset) = (lines.NextLine, lines.NextOffset);
        }
        return records.Count == 0 && !read ? null : new Batch(records, endLine, endOffset, skipped);
    }

    /// <summary>The final files: the header with the shape is in; the partial files are renamed into place (ids first,
    /// so an .npy in place always has its ids beside it). Done again after a kill at any point in it.</summary>
    private void Finalise()
    {
        if (!File.Exists(DataPartial)) return;
        PartialOutput.Seal(DataPartial, File.Exists(IdsPartial) ? IdsPartial : null, _state.Rows, _state.Dimensions, _state.IdsBytes);
        if (File.Exists(IdsPartial)) File.Move(IdsPartial, IdsPath, overwrite: true);
        File.Move(DataPartial, NpyPath, overwrite: true);
    }
}
