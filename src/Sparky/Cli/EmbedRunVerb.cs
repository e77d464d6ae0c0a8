using System.CommandLine;
using System.Text.Json.Nodes;
using Sparky.Cli.Progress;
using Sparky.Core.Tasks;
using Sparky.Embeddings.Client.Http;
using Sparky.Embeddings.Client.Input;
using Sparky.Embeddings.Client.Jobs;

namespace Sparky.Cli;

/// <summary>
/// <c>sparky embed run</c>: embeds a corpus (JSON Lines or one text per line) against any OpenAI-compatible
/// <c>/v1/embeddings</c> endpoint into a float32 .npy and an ids file, resumably (<see cref="EmbedJob"/>). Runs alone,
/// as a Sparky task (it then reports progress as <c>__SPARKY_PROGRESS__</c> lines), or as one of an array of shard tasks.
/// </summary>
internal static class EmbedRunVerb
{
    /// <summary>Where the API key is looked for when --api-key-env names none: Sparky's own variable, then OpenAI's
    /// (as OpenAI's own clients send it to whatever base URL they are given).</summary>
    private static readonly string[] KeyVariables = ["SPARKY_EMBED_API_KEY", "OPENAI_API_KEY"];

    public static Command Build(Option<bool> json)
    {
        var input = new Option<string>("--input") { Description = "the corpus: JSON Lines (.jsonl, .ndjson, .json) or any other file as one text per line", Required = true };
        var output = new Option<string>("--output") { Description = "the directory for embeddings.npy and embeddings.ids.txt (part-i-of-n.* with --shard), and the checkpoint", Required = true };
        var endpoint = new Option<string?>("--endpoint") { Description = "an OpenAI-compatible server: http://HOST:PORT, …/v1 or …/v1/embeddings (default $SPARKY_EMBED_ENDPOINT)" };
        var field = new Option<string>("--field") { Description = "the JSON field that holds the text", DefaultValueFactory = _ => "text" };
        var idField = new Option<string?>("--id-field") { Description = "the JSON field that holds each text's id, a string or a number (default: the line number, from 1)" };
        var format = new Option<string>("--format") { Description = "jsonl, text (one text per line) or auto (by the file's extension)", DefaultValueFactory = _ => "auto" };
        format.AcceptOnlyFromAmong("auto", "jsonl", "text");
        var model = new Option<string?>("--model") { Description = "the model to ask for (default: the endpoint's only model, from GET /v1/models)" };
        var batch = new Option<int>("--batch") { Description = "texts per request", DefaultValueFactory = _ => 64 };
        var batchChars = new Option<int>("--batch-chars") { Description = "characters of text per request at most (a longer text goes alone); a request the endpoint refuses as too large (413) is sent again in halves", DefaultValueFactory = _ => EmbedJobOptions.DefaultBatchChars };
        var concurrency = new Option<int>("--concurrency") { Description = "requests in flight at once, each on a pooled keep-alive connection", DefaultValueFactory = _ => 4 };
        var shard = new Option<string?>("--shard") { Description = "i/n: only the i-th of n equal runs of lines (from 0), into part-i-of-n.npy; for an array of tasks, e.g. --shard \"$SPARKY_ARRAY_INDEX/8\" in a shell command" };
        var skipBad = new Option<bool>("--skip-bad") { Description = "pass over lines that cannot be read, and texts the endpoint refuses as too large even alone (HTTP 413), each named on stderr and counted, instead of stopping at the first" };
        var attempts = new Option<int>("--max-attempts") { Description = "tries per request: a 429, 408, 5xx or no answer is sent again with backoff (honouring Retry-After)", DefaultValueFactory = _ => 10 };
        var timeout = new Option<string>("--timeout") { Description = "how long one request may take: 90, 30s, 5m", DefaultValueFactory = _ => "2m" };
        var encoding = new Option<string>("--encoding") { Description = "how vectors are asked for: base64 (exact and compact; floats instead where the endpoint refuses it) or float", DefaultValueFactory = _ => "base64" };
        encoding.AcceptOnlyFromAmong("base64", "float");
        var checkpointEvery = new Option<string>("--checkpoint-every") { Description = "how often the rows written are made durable and recorded (an fsync): at most this much work is redone after a kill; 0.5, 10s, 1m", DefaultValueFactory = _ => "1s" };
        var keyEnv = new Option<string?>("--api-key-env") { Description = "the environment variable holding the API key, sent as a Bearer token (default: SPARKY_EMBED_API_KEY, then OPENAI_API_KEY); never a flag, so it is not in the task's command" };
        var c = new Command("run", "Embed a corpus against an OpenAI-compatible /v1/embeddings endpoint into a float32 .npy (rows in input order) and an ids " +
            "file, in batches with a few in flight, retrying 429 and 5xx. Checkpoints as it goes: run the same command again after a crash or a kill " +
            "and it resumes where it stopped, with no row twice and none missing; a completed job is not redone. Progress: a live line on a terminal, " +
            "__SPARKY_PROGRESS__ lines as a Sparky task.")
        {
            input, output, endpoint, field, idField, format, model, batch, batchChars, concurrency, shard, skipBad, attempts, timeout, encoding, checkpointEvery, keyEnv,
        };
        c.SetAction(async (p, ct) =>
        {
            var inputPath = p.GetValue(input)!;
            var fmt = p.GetValue(format) switch { "jsonl" => InputFormat.Jsonl, "text" => InputFormat.Text, _ => InputSpec.FormatOf(inputPath) };
            var endpointText = p.GetValue(endpoint) ?? Environment.GetEnvironmentVariable("SPARKY_EMBED_ENDPOINT")
                ?? throw new CliException("--endpoint is needed (or $SPARKY_EMBED_ENDPOINT): an OpenAI-compatible server such as http://127.0.0.1:8080", 2);
            if (!Endpoint.TryParse(endpointText, out var ep, out var epError)) throw new CliException(epError!, 2);
            var shardSpec = ShardSpec.Whole;
            if (p.GetValue(shard) is { } s && !ShardSpec.TryParse(s, out shardSpec, out var shardError)) throw new CliException(shardError!, 2);
            if (p.GetValue(batch) is < 1 or > 100_000) throw new CliException("--batch wants 1 to 100000 texts per request", 2);
            if (p.GetValue(batchChars) < 1) throw new CliException("--batch-chars wants at least 1 character per request", 2);
            if (p.GetValue(concurrency) is < 1 or > 256) throw new CliException("--concurrency wants 1 to 256 requests in flight", 2);
            if (p.GetValue(attempts) is < 1 or > 1000) throw new CliException("--max-attempts wants 1 to 1000", 2);
            if (!Durations.TryParseSeconds(p.GetValue(timeout), out var timeoutSeconds) || timeoutSeconds <= 0)
                throw new CliException($"--timeout wants a duration such as 90, 30s, 5m; got '{p.GetValue(timeout)}'", 2);
            if (!Durations.TryParseSeconds(p.GetValue(checkpointEvery), out var checkpointSeconds))
                throw new CliException($"--checkpoint-every wants a duration such as 0.5, 10s, 1m; got '{p.GetValue(checkpointEvery)}'", 2);
            if (p.GetValue(field) is not { Length: > 0 } fieldName) throw new CliException("--field wants a field name", 2);
            string? apiKey = null;
            if (p.GetValue(keyEnv) is { } variable)
            {
                apiKey = Environment.GetEnvironmentVariable(variable);
                if (string.IsNullOrEmpty(apiKey)) throw new CliException($"--api-key-env {variable}: that variable is not set", 2);
            }
            else apiKey = KeyVariables.Select(Environment.GetEnvironmentVariable).FirstOrDefault(k => !string.IsNullOrEmpty(k));

            var options = new EmbedJobOptions(inputPath, p.GetValue(output)!, ep!, new InputSpec(fmt, fieldName, p.GetValue(idField)))
            {
                Model = p.GetValue(model),
                BatchSize = p.GetValue(batch),
                BatchChars = p.GetValue(batchChars),
                Concurrency = p.GetValue(concurrency),
                Shard = shardSpec,
                SkipBad = p.GetValue(skipBad),
                Retry = new RetryPolicy(p.GetValue(attempts)),
                RequestTimeout = TimeSpan.FromSeconds(timeoutSeconds),
                CheckpointEvery = TimeSpan.FromSeconds(checkpointSeconds),
                ApiKey = apiKey,
                Floats = p.GetValue(encoding) == "float",
            };
            using var interruption = new Interruption(ct);
            var view = EmbedRunProgress.ForThisProcess(shardSpec);
            var job = new EmbedJob(options, view.Show, view.Log);
            EmbedJobResult result;
            try { result = await job.RunAsync(interruption.Token); }
            catch (OperationCanceledException)
            {
                view.End();
                Console.Error.WriteLine($"sparky: stopped; the rows written are kept (run the same command again to resume from {job.CheckpointPath})");
                return 130;
            }
            view.End();
            if (!result.Ok) throw new CliException(TermText.Visible(result.Error), 1);
            if (p.GetValue(json)) Console.WriteLine(ResultJson(result).ToJsonString());
            else Console.WriteLine(Summary(result));
            return 0;
        });
        return c;
    }

    private static string Summary(EmbedJobResult r)
    {
        var what = $"{r.NpyPath} ({r.Rows} × {r.Dimensions} float32) and {r.IdsPath}";
        if (r.AlreadyComplete) return $"already complete: {what}";
        var notes = new List<string>();
        if (r.ResumedAtRow > 0) notes.Add($"resumed at row {r.ResumedAtRow}");
        if (r.Skipped > 0) notes.Add($"{r.Skipped} lines skipped (bad, or too large for the endpoint)");
        if (r.Retries > 0) notes.Add($"{r.Retries} requests retried");
        return $"wrote {what} in {RateMeter.DurationText(r.Elapsed)}" + (notes.Count > 0 ? $" ({string.Join(", ", notes)})" : "");
    }

    private static JsonObject ResultJson(EmbedJobResult r) => new()
    {
        ["npy"] = Path.GetFullPath(r.NpyPath), ["ids"] = Path.GetFullPath(r.IdsPath), ["rows"] = r.Rows, ["dimensions"] = r.Dimensions,
        ["skipped"] = r.Skipped, ["resumed_at_row"] = r.ResumedAtRow, ["already_complete"] = r.AlreadyComplete, ["retries"] = r.Retries,
        ["seconds"] = Math.Round(r.Elapsed.TotalSeconds, 3),
    };
}
