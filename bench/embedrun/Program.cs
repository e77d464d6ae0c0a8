// bench/embedrun: `sparky embed run` (batches, a few in flight, one pooled client) against a client that sends one text
// per request, over the same endpoint and corpus. Target (issue 17): embed run >= 10x the one-text client's texts/s.
// See bench/README.md.
using System.Diagnostics;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Sparky.Embeddings.StandIn;

string? sparky = null, resultsDir = null, endpoint = null;
int texts = 20_000, batch = 64, concurrency = 4;
bool serveOnly = false;
for (int i = 0; i < args.Length; i++)
{
    switch (args[i])
    {
        case "--sparky" when i + 1 < args.Length: sparky = args[++i]; break;
        case "--results" when i + 1 < args.Length: resultsDir = args[++i]; break;
        case "--endpoint" when i + 1 < args.Length: endpoint = args[++i]; break;
        case "--texts" when i + 1 < args.Length: texts = int.Parse(args[++i]); break;
        case "--batch" when i + 1 < args.Length: batch = int.Parse(args[++i]); break;
        case "--concurrency" when i + 1 < args.Length: concurrency = int.Parse(args[++i]); break;
        case "--small": texts = 2_000; break;
        case "--serve": serveOnly = true; break;
        default: Console.Error.WriteLine($"unknown argument {args[i]}"); return 64;
    }
}

// --endpoint: a real server (the bench's numbers are then that server's); otherwise the stand-in, in this process.
await using var standIn = endpoint is null ? await StandInEmbeddingServer.StartAsync(dimensions: 384, upstream: "") : null;
endpoint ??= standIn!.BaseUrl;
if (serveOnly)
{
    Console.WriteLine(endpoint);
    await Task.Delay(Timeout.Infinite);
}
if (sparky is null) { Console.Error.WriteLine("--sparky PATH (a native sparky or sparky.dll) is needed"); return 64; }

var work = Directory.CreateTempSubdirectory("sparky-bench-embedrun-");
try
{
    var results = new JsonObject
    {
        ["bench"] = "embedrun",
        ["at"] = DateTime.UtcNow.ToString("O"),
        ["endpoint"] = standIn is null ? endpoint : "stand-in (hash vectors, in the bench's process)",
        ["texts"] = texts, ["batch"] = batch, ["concurrency"] = concurrency,
        ["machine"] = new JsonObject { ["cpus"] = Environment.ProcessorCount, ["loadavg_at_start"] = Machine.LoadAvg() },
    };
    var corpus = Path.Combine(work.FullName, "corpus.jsonl");
    var lines = Corpus(texts);
    File.WriteAllLines(corpus, lines.Select(t => JsonSerializer.Serialize(new Dictionary<string, string> { ["text"] = t })));
    Console.WriteLine($"embedrun: {texts} texts of 3 to 60 words, against {results["endpoint"]}");

    // The one-text client: one request per text, one at a time, over one kept-alive connection (what a loop around
    // an embedding call does). Warm-up first, for both clients alike: 50 requests of each shape (one text; a batch
    // of --batch texts as base64), so that neither pays for the first connection or for the stand-in's code being
    // compiled on its first calls (in the small run that was most of embed run's time, and none of its own).
    var base1 = endpoint.TrimEnd('/');
    var url = base1.EndsWith("/v1", StringComparison.Ordinal) ? base1 + "/embeddings" : base1 + "/v1/embeddings";
    using var http = new HttpClient();
    var model = await ModelAsync(http, url.Replace("/embeddings", "/models"));
    for (int w = 0; w < 50; w++)
    {
        await OneAsync(http, url, model, lines[w % lines.Count]);
        await OneAsync(http, url, model, lines.Skip(w).Take(batch).ToList());
    }
    var sw = Stopwatch.StartNew();
    foreach (var t in lines) await OneAsync(http, url, model, t);
    double single = texts / sw.Elapsed.TotalSeconds;
    Console.WriteLine($"  one text per request:   {single,10:0} texts/s  ({sw.Elapsed.TotalSeconds:0.00} s)");

    // sparky embed run, as a user runs it: a process (its start-up included), JSONL in, .npy out.
    var outDir = Path.Combine(work.FullName, "out");
    var psi = new ProcessStartInfo(sparky.EndsWith(".dll", StringComparison.Ordinal) ? "dotnet" : sparky) { RedirectStandardOutput = true, RedirectStandardError = true };
    if (sparky.EndsWith(".dll", StringComparison.Ordinal)) psi.ArgumentList.Add(sparky);
    foreach (var a in new[] { "embed", "run", "--input", corpus, "--output", outDir, "--endpoint", endpoint, "--batch", batch.ToString(), "--concurrency", concurrency.ToString(), "--json" })
        psi.ArgumentList.Add(a);
    sw.Restart();
    using (var p = Process.Start(psi)!)
    {
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync();
        sw.Stop();
        if (p.ExitCode != 0) { Console.Error.WriteLine($"sparky embed run failed ({p.ExitCode}): {await stderr}"); return 1; }
        var r = JsonNode.Parse(await stdout)!;
        if ((long)r["rows"]! != texts) { Console.Error.WriteLine($"sparky embed run wrote {r["rows"]} rows, not {texts}"); return 1; }
    }
    double batched = texts / sw.Elapsed.TotalSeconds;
    Console.WriteLine($"  sparky embed run:       {batched,10:0} texts/s  ({sw.Elapsed.TotalSeconds:0.00} s, process start-up included; --batch {batch} --concurrency {concurrency})");
    double ratio = batched / single;
    bool met = ratio >= 10;
    Console.WriteLine($"target: sparky embed run >= 10x one text per request: {(met ? "met" : "MISSED")} ({ratio:0.0}x)");
    results["rows"] = new JsonArray(
        new JsonObject { ["client"] = "one text per request", ["texts_per_s"] = Math.Round(single, 1) },
        new JsonObject { ["client"] = "sparky embed run", ["texts_per_s"] = Math.Round(batched, 1), ["seconds"] = Math.Round(sw.Elapsed.TotalSeconds, 3) });
    results["targets"] = new JsonObject { ["embed_run_vs_single_10x"] = new JsonObject { ["ratio"] = Math.Round(ratio, 2), ["met"] = met } };
    ((JsonObject)results["machine"]!)["loadavg_at_end"] = Machine.LoadAvg();
    if (resultsDir is not null)
    {
        Directory.CreateDirectory(resultsDir);
        var path = Path.Combine(resultsDir, $"embedrun-{DateTime.UtcNow:yyyyMMdd-HHmmss}.json");
        File.WriteAllText(path, results.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        Console.WriteLine($"results: {path}");
    }
    return 0;
}
finally
{
    work.Delete(recursive: true);
}

static async Task OneAsync(HttpClient http, string url, string model, object input)
{
    var request = new Dictionary<string, object> { ["input"] = input, ["model"] = model };
    if (input is List<string>) request["encoding_format"] = "base64";
    var body = JsonSerializer.SerializeToUtf8Bytes(request);
    using var reply = await http.PostAsync(url, new ByteArrayContent(body) { Headers = { { "Content-Type", "application/json" } } });
    reply.EnsureSuccessStatusCode();
    using var doc = JsonDocument.Parse(await reply.Content.ReadAsByteArrayAsync());
    int want = input is List<string> list ? list.Count : 1;
    if (doc.RootElement.GetProperty("data").GetArrayLength() != want) throw new InvalidOperationException($"not {want} embeddings");
}

static async Task<string> ModelAsync(HttpClient http, string url)
{
    using var doc = JsonDocument.Parse(await http.GetByteArrayAsync(url));
    return doc.RootElement.GetProperty("data")[0].GetProperty("id").GetString()!;
}

// Sentences of 3 to 60 words (mixed length, as a corpus has), the same every run.
static List<string> Corpus(int n)
{
    string[] words = ["the", "model", "queue", "task", "vector", "runs", "on", "a", "GPU", "with", "batches", "of", "text", "and", "every",
        "shard", "writes", "its", "rows", "to", "disk", "before", "checkpoint", "records", "them", "server", "answers", "quickly", "slowly", "data"];
    var random = new Random(17);
    var list = new List<string>(n);
    var sb = new StringBuilder();
    for (int i = 0; i < n; i++)
    {
        sb.Clear().Append("sentence ").Append(i);
        int count = random.Next(3, 61);
        for (int w = 0; w < count; w++) sb.Append(' ').Append(words[random.Next(words.Length)]);
        list.Add(sb.Append('.').ToString());
    }
    return list;
}

