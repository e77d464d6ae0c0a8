using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging.Abstractions;
using Sparky.Embeddings.Batching;
using Sparky.Embeddings.Hosting;

namespace Sparky.Embeddings.Tests;

/// <summary>A real <see cref="EmbedServer"/> (Kestrel on a free loopback port) with the real model.</summary>
public sealed class EmbedServerFixture : IAsyncLifetime
{
    public EmbedServer Server { get; private set; } = null!;
    public HttpClient Http { get; } = new() { Timeout = TimeSpan.FromSeconds(60) };

    public static EmbeddingOptions Options(BatchLimits? batch = null, int maxRequests = 512) => new()
    {
        Model = MiniLmModel.Directory,
        Device = "cpu",
        Batch = batch ?? new BatchLimits(8192, 128, TimeSpan.FromMilliseconds(5)),
        MaxConcurrentRequests = maxRequests,
    };

    public static Task<EmbedServer> StartAsync(EmbeddingOptions options) => EmbedServer.StartAsync(options, "127.0.0.1:0", null, NullLoggerFactory.Instance);

    public async Task InitializeAsync() => Server = await StartAsync(Options());

    public async Task DisposeAsync()
    {
        Http.Dispose();
        await Server.DisposeAsync();
    }

    public static async Task<(int Status, JsonObject Body)> PostAsync(HttpClient http, string url, object body)
    {
        using var r = await http.PostAsync(url + "/v1/embeddings", JsonContent.Create(body as JsonNode ?? JsonValue.Create(body.ToString())));
        var text = await r.Content.ReadAsStringAsync();
        return ((int)r.StatusCode, JsonNode.Parse(text)!.AsObject());
    }

    public static float[] Vector(JsonNode item) => item["embedding"]!.AsArray().Select(x => x!.GetValue<float>()).ToArray();
}
