using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using Sparky.Embeddings.Batching;
using Sparky.Embeddings.Hosting;
using Sparky.Embeddings.Model;

namespace Sparky.Embeddings.Tests;

/// <summary>The service over HTTP, as clients see it: OpenAI's shapes, batching under concurrency, 429 past the bound,
/// clear refusals of bad input.</summary>
public class ServiceTests(EmbedServerFixture f) : IClassFixture<EmbedServerFixture>
{
    private string Url => f.Server.Url;

    private static JsonObject Req(JsonNode input, string? format = null)
    {
        var o = new JsonObject { ["input"] = input, ["model"] = MiniLm.Id };
        if (format is not null) o["encoding_format"] = format;
        return o;
    }

    [Fact]
    public async Task Answers_in_OpenAIs_shape_with_the_models_vectors_as_floats_or_base64()
    {
        var texts = new[] { "hello world", "The queue scheduled everything", "a" };
        var (status, body) = await EmbedServerFixture.PostAsync(f.Http, Url, Req(new JsonArray(texts.Select(t => (JsonNode?)t).ToArray())));
        Assert.Equal(200, status);
        Assert.Equal("list", (string?)body["object"]);
        Assert.Equal(MiniLm.Id, (string?)body["model"]);
        var data = body["data"]!.AsArray();
        Assert.Equal(3, data.Count);
        var expected = ModelTests.Embed(texts);
        for (int i = 0; i < 3; i++)
        {
            Assert.Equal("embedding", (string?)data[i]!["object"]);
            Assert.Equal(i, (int)data[i]!["index"]!);
            Assert.True(Vectors.Cosine(EmbedServerFixture.Vector(data[i]!), expected[i]) > 0.99999);
        }
        int tokens = texts.Sum(t => f.Server.Service.Tokenizer.Encode(t, false, out _)!.Length);
        Assert.Equal(tokens, (int)body["usage"]!["prompt_tokens"]!);
        Assert.Equal(tokens, (int)body["usage"]!["total_tokens"]!);

        var (_, b64) = await EmbedServerFixture.PostAsync(f.Http, Url, Req("hello world", "base64"));
        var bytes = Convert.FromBase64String((string)b64["data"]![0]!["embedding"]!);
        var floats = new float[bytes.Length / 4];
        Buffer.BlockCopy(bytes, 0, floats, 0, bytes.Length);
        Assert.Equal(expected[0], floats);
    }

    [Fact]
    public async Task Lists_the_model()
    {
        var models = JsonNode.Parse(await f.Http.GetStringAsync(Url + "/v1/models"))!;
        Assert.Equal("list", (string?)models["object"]);
        Assert.Equal(MiniLm.Id, (string?)models["data"]![0]!["id"]);
        Assert.Equal("model", (string?)models["data"]![0]!["object"]);
        Assert.Equal(HttpStatusCode.OK, (await f.Http.GetAsync(Url + "/v1/models/sentence-transformers/all-MiniLM-L6-v2")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await f.Http.GetAsync(Url + "/v1/models/gpt-4")).StatusCode);
    }

    [Fact]
    public async Task Concurrent_callers_each_get_their_own_vectors_in_their_own_order()
    {
        var sentences = Sentences.Make(64);
        var expected = ModelTests.Embed(sentences);
        // 64 clients at once; each sends two of the sentences, in an order of its own.
        var calls = Enumerable.Range(0, 64).Select(async c =>
        {
            int a = c, b = (c * 7 + 3) % 64;
            var (status, body) = await EmbedServerFixture.PostAsync(f.Http, Url, Req(new JsonArray(sentences[a], sentences[b])));
            Assert.Equal(200, status);
            var data = body["data"]!.AsArray();
            Assert.True(Vectors.Cosine(EmbedServerFixture.Vector(data[0]!), expected[a]) > 0.9999, $"client {c}, first");
            Assert.True(Vectors.Cosine(EmbedServerFixture.Vector(data[1]!), expected[b]) > 0.9999, $"client {c}, second");
        });
        await Task.WhenAll(calls);
        // They were batched: some call of the model took more than one input.
        var metrics = await f.Http.GetStringAsync(Url + "/metrics");
        var le1 = Metric(metrics, "sparky_embeddings_batch_size_bucket{le=\"1\"}");
        var count = Metric(metrics, "sparky_embeddings_batch_size_count");
        Assert.True(count > le1, $"every batch held one input ({count} batches)\n{metrics}");
        Assert.True(Metric(metrics, "sparky_embeddings_requests_total{outcome=\"ok\"}") >= 64);
        Assert.True(Metric(metrics, "sparky_embeddings_inputs_total") >= 128);
        Assert.True(Metric(metrics, "sparky_embeddings_tokens_total") > 128);
        Assert.Contains("sparky_embeddings_queue_seconds_bucket", metrics);
        Assert.Contains("sparky_embeddings_inference_seconds_bucket", metrics);
    }

    internal static double Metric(string text, string series) =>
        text.Split('\n').Where(l => l.StartsWith(series + " ", StringComparison.Ordinal))
            .Select(l => double.Parse(l[(series.Length + 1)..], System.Globalization.CultureInfo.InvariantCulture)).Sum();

    [Fact]
    public async Task Malformed_input_gets_a_clear_4xx_and_the_service_goes_on()
    {
        async Task Check(HttpContent content, int status, string words)
        {
            using var r = await f.Http.PostAsync(Url + "/v1/embeddings", content);
            var text = await r.Content.ReadAsStringAsync();
            Assert.Equal(status, (int)r.StatusCode);
            var body = JsonNode.Parse(text)!;
            Assert.Contains(words, (string)body["error"]!["message"]!);
            Assert.Equal((string?)body["detail"], (string?)body["error"]!["message"]);
        }
        StringContent Json(string s) => new(s, Encoding.UTF8, "application/json");
        await Check(Json("""{"input": [], "model": "all-MiniLM-L6-v2"}"""), 400, "empty array");
        await Check(Json("""{"input": ["fine", 42], "model": "all-MiniLM-L6-v2"}"""), 400, "input[1]");
        await Check(Json("""{"input": [null]}"""), 400, "must be a string");
        await Check(Json("""{"input": "hi", "model": "text-embedding-ada-002"}"""), 404, "does not exist");
        await Check(Json("""{"input": "hi" """), 400, "not valid JSON");
        await Check(Json("""{"input": "hi", "dimensions": 100}"""), 400, "shorter vectors");
        // 10 MB in one string: over the model's limit by far, refused before it is tokenised.
        var huge = new JsonObject { ["input"] = new string('x', 10 * 1024 * 1024), ["model"] = MiniLm.Id };
        await Check(Json(huge.ToJsonString()), 400, "at most 256");
        // An ordinary long input: over the limit, refused with its count (embeddings_truncate is off).
        await Check(Json(new JsonObject { ["input"] = string.Join(' ', Enumerable.Repeat("word", 300)) }.ToJsonString()), 400, "302 tokens");
        var (status, _) = await EmbedServerFixture.PostAsync(f.Http, Url, Req("still here"));
        Assert.Equal(200, status);
    }

    [Fact]
    public async Task A_body_over_the_bound_is_413()
    {
        await using var server = await EmbedServerFixture.StartAsync(EmbedServerFixture.Options() with { MaxBodyBytes = 1024 });
        var body = new JsonObject { ["input"] = new string('x', 4096) }.ToJsonString();
        using var r = await f.Http.PostAsync(server.Url + "/v1/embeddings", new StringContent(body, Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, r.StatusCode);
    }

    [Fact]
    public async Task Without_a_token_a_request_addressed_to_a_name_that_is_not_loopback_is_refused_dns_rebinding()
    {
        int port = new Uri(Url).Port;
        // A page on attacker.example whose name now resolves to 127.0.0.1 sends its own name as Host: refused, reads too.
        foreach (var (method, path) in new[] { ("POST", "/v1/embeddings"), ("GET", "/v1/models"), ("GET", "/metrics") })
        {
            using var req = new HttpRequestMessage(new HttpMethod(method), Url + path);
            req.Headers.Host = $"attacker.example:{port}";
            if (method == "POST") req.Content = JsonContent.Create(Req("hello"));
            using var r = await f.Http.SendAsync(req);
            Assert.Equal(HttpStatusCode.Forbidden, r.StatusCode);
            var body = JsonNode.Parse(await r.Content.ReadAsStringAsync())!;
            Assert.Contains("loopback", body["error"]!["message"]!.GetValue<string>());
            Assert.Equal("forbidden_host", body["error"]!["code"]!.GetValue<string>());
        }
        // Every name of loopback is the service's.
        foreach (var host in new[] { $"localhost:{port}", $"127.0.0.1:{port}", $"LOCALHOST:{port}", $"api.localhost:{port}", $"[::1]:{port}" })
        {
            using var req = new HttpRequestMessage(HttpMethod.Post, Url + "/v1/embeddings") { Content = JsonContent.Create(Req("hello")) };
            req.Headers.Host = host;
            using var r = await f.Http.SendAsync(req);
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        }
        // With a token the token decides, whatever the Host (a rebinding page does not have it).
        await using var keyed = await EmbedServer.StartAsync(EmbedServerFixture.Options(), "127.0.0.1:0", "tok-51e9", Microsoft.Extensions.Logging.Abstractions.NullLoggerFactory.Instance);
        foreach (var bearer in new[] { null, "tok-51e9" })
        {
            using var req = new HttpRequestMessage(HttpMethod.Get, keyed.Url + "/v1/models");
            req.Headers.Host = $"attacker.example:{new Uri(keyed.Url).Port}";
            if (bearer is not null) req.Headers.Authorization = new("Bearer", bearer);
            using var r = await f.Http.SendAsync(req);
            Assert.Equal(bearer is null ? HttpStatusCode.Unauthorized : HttpStatusCode.OK, r.StatusCode);
        }
    }

    [Fact]
    public async Task With_truncate_on_a_long_input_is_cut_to_the_limit_and_embedded()
    {
        await using var server = await EmbedServerFixture.StartAsync(EmbedServerFixture.Options() with { Truncate = true });
        var (status, body) = await EmbedServerFixture.PostAsync(f.Http, server.Url, Req(string.Join(' ', Enumerable.Repeat("word", 300))));
        Assert.Equal(200, status);
        Assert.Equal(256, (int)body["usage"]!["prompt_tokens"]!);
    }
}

/// <summary>Overload: past max_concurrent_requests a request gets 429 with Retry-After, and one retried after it gets
/// its vectors; none is lost.</summary>
/// <summary>The adaptive wait over HTTP with the real model: a long max_batch_wait costs nothing at a low rate, and
/// concurrent callers are still batched.</summary>
public class BatchWaitTests
{
    [Fact]
    public async Task At_a_low_rate_a_request_does_not_wait_for_the_window_and_a_burst_is_still_batched()
    {
        var wait = TimeSpan.FromMilliseconds(300);
        await using var server = await EmbedServerFixture.StartAsync(EmbedServerFixture.Options(new BatchLimits(8192, 32, wait)));
        using var http = new HttpClient();
        var body = new JsonObject { ["input"] = "a lone sentence", ["model"] = MiniLm.Id };
        Assert.Equal(200, (await EmbedServerFixture.PostAsync(http, server.Url, body)).Status); // warm-up
        var times = new List<double>();
        for (int i = 0; i < 5; i++)
        {
            await Task.Delay(100);
            var sw = System.Diagnostics.Stopwatch.StartNew();
            Assert.Equal(200, (await EmbedServerFixture.PostAsync(http, server.Url, body)).Status);
            times.Add(sw.Elapsed.TotalMilliseconds);
        }
        // With a fixed wait each would take 300 ms and more; one sentence on the model takes milliseconds.
        Assert.True(times.Order().ElementAt(2) < wait.TotalMilliseconds / 2, $"requests took {string.Join(", ", times.Select(t => $"{t:0} ms"))}");

        var burst = await Task.WhenAll(Enumerable.Range(0, 64).Select(i =>
            EmbedServerFixture.PostAsync(http, server.Url, new JsonObject { ["input"] = $"sentence number {i}", ["model"] = MiniLm.Id })));
        Assert.All(burst, r => Assert.Equal(200, r.Status));
        var metrics = await http.GetStringAsync(server.Url + "/metrics");
        double Metric(string name) => double.Parse(metrics.Split('\n').First(l => l.StartsWith(name + " ")).Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture);
        double batches = Metric("sparky_embeddings_batch_size_count"), inputs = Metric("sparky_embeddings_batch_size_sum");
        Assert.True(inputs / batches > 2, $"{inputs} inputs in {batches} batches");
    }
}

public class OverloadTests
{
    [Fact]
    public async Task Past_the_bound_429_with_Retry_After_and_every_request_is_answered_on_retry()
    {
        // Few places and a long batch wait, so requests pile up.
        var options = EmbedServerFixture.Options(new BatchLimits(8192, 512, TimeSpan.FromMilliseconds(300)), maxRequests: 4);
        await using var server = await EmbedServerFixture.StartAsync(options);
        using var http = new HttpClient();
        var sentences = Sentences.Make(32);
        var expected = ModelTests.Embed(sentences);
        int refused = 0;
        var calls = Enumerable.Range(0, 32).Select(async i =>
        {
            for (int attempt = 0; ; attempt++)
            {
                using var r = await http.PostAsync(server.Url + "/v1/embeddings", JsonContent.Create(new JsonObject { ["input"] = sentences[i] }));
                if (r.StatusCode == HttpStatusCode.TooManyRequests)
                {
                    Interlocked.Increment(ref refused);
                    Assert.Equal("1", r.Headers.GetValues("Retry-After").Single());
                    var problem = JsonNode.Parse(await r.Content.ReadAsStringAsync())!;
                    Assert.Contains("max_concurrent_requests", (string)problem["error"]!["message"]!);
                    Assert.True(attempt < 200, "never admitted");
                    await Task.Delay(20 + Random.Shared.Next(30));
                    continue;
                }
                Assert.Equal(HttpStatusCode.OK, r.StatusCode);
                var body = JsonNode.Parse(await r.Content.ReadAsStringAsync())!;
                Assert.True(Vectors.Cosine(EmbedServerFixture.Vector(body["data"]![0]!), expected[i]) > 0.9999);
                return;
            }
        });
        await Task.WhenAll(calls);
        Assert.True(refused > 0, "no request was refused: the bound was not reached");
        var metrics = await http.GetStringAsync(server.Url + "/metrics");
        Assert.Equal(refused, ServiceTests.Metric(metrics, "sparky_embeddings_rejections_total{reason=\"overloaded\"}"));
        Assert.Equal(32, ServiceTests.Metric(metrics, "sparky_embeddings_requests_total{outcome=\"ok\"}"));
    }
}
