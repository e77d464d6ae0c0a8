using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Routing;
using Sparky.Embeddings.Model;

namespace Sparky.Embeddings.Http;

/// <summary>
/// OpenAI's embeddings API: <c>POST /v1/embeddings</c>, <c>GET /v1/models</c> and <c>GET /v1/models/{id}</c>, as a route
/// group that the daemon and <c>sparky embed serve</c> both map.
/// </summary>
public static class EmbeddingRoutes
{
    /// <summary>Seconds a client told 429 should wait: a batch takes milliseconds, so the queue moves on quickly.</summary>
    public const int RetryAfterSeconds = 1;

    public static RouteGroupBuilder MapEmbeddings(this IEndpointRouteBuilder routes, EmbeddingService service)
    {
        var v1 = routes.MapGroup("/v1");
        v1.MapPost("/embeddings", (HttpContext ctx) => EmbedAsync(ctx, service));
        v1.MapGet("/models", (HttpContext ctx) => WriteAsync(ctx, 200, w => EmbeddingJson.WriteModels(w, service.Model.Id, service.LoadedAt.ToUnixTimeSeconds())));
        v1.MapGet("/models/{**id}", (HttpContext ctx, string id) => service.Names.Contains(id)
            ? WriteAsync(ctx, 200, w => EmbeddingJson.WriteModel(w, service.Model.Id, service.LoadedAt.ToUnixTimeSeconds()))
            : WriteErrorAsync(ctx, new ApiError(404, $"The model '{id}' does not exist here (GET /v1/models)", "model", "model_not_found")));
        return v1;
    }

    private static async Task EmbedAsync(HttpContext ctx, EmbeddingService service)
    {
        var metrics = service.Metrics;
        if (!service.Batcher.TryAdmit())
        {
            metrics.Rejected("overloaded");
            metrics.Answered("overloaded");
            ctx.Response.Headers.RetryAfter = RetryAfterSeconds.ToString();
            await WriteErrorAsync(ctx, new ApiError(429,
                $"the embedding service has {service.Options.MaxConcurrentRequests} requests in already (max_concurrent_requests): retry after {RetryAfterSeconds} s",
                Code: "rate_limit_exceeded"));
            return;
        }
        try
        {
            var (body, bad) = await ReadBodyAsync(ctx, service.Options.MaxBodyBytes);
            var (request, error) = bad is null
                ? EmbeddingRequestParser.Parse(body, service.Names, service.Embedder.Dimensions, service.Model.Matryoshka)
                : (null, bad);
            int[][]? ids = null;
            long tokens = 0;
            if (request is not null) (ids, tokens, error) = service.Tokenize(request.Inputs);
            if (error is not null)
            {
                metrics.Rejected(error.Code == "context_length_exceeded" ? "too_long" : "invalid");
                metrics.Answered("invalid");
                await WriteErrorAsync(ctx, error);
                return;
            }
            float[][] vectors;
            try { vectors = await service.Batcher.EmbedAsync(ids!); }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                metrics.Answered("error");
                await WriteErrorAsync(ctx, new ApiError(e is ObjectDisposedException ? 503 : 500, $"the model failed: {e.Message.Split('\n')[0]}"));
                return;
            }
            if (request!.Dimensions is { } dims) vectors = [.. vectors.Select(v => Vectors.Shorten(v, dims))];
            metrics.Embedded(vectors.Length, tokens);
            metrics.Answered("ok");
            await WriteAsync(ctx, 200, w => EmbeddingJson.WriteList(w, vectors, service.Model.Id, tokens, request.Base64));
        }
        finally
        {
            service.Batcher.Leave();
        }
    }

    /// <summary>The JSON body within the size bound; too large is 413, not JSON is 400.</summary>
    private static async Task<(JsonNode? Body, ApiError? Error)> ReadBodyAsync(HttpContext ctx, long maxBytes)
    {
        if (ctx.Request.ContentLength is { } length && length > maxBytes)
            return (null, new ApiError(413, $"the body is {length} bytes; at most {maxBytes} are accepted"));
        if (ctx.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } limit) limit.MaxRequestBodySize = maxBytes;
        try
        {
            var node = await JsonNode.ParseAsync(ctx.Request.Body, documentOptions: new JsonDocumentOptions { MaxDepth = 64 }, cancellationToken: ctx.RequestAborted);
            return (node, null);
        }
        catch (BadHttpRequestException e) when (e.StatusCode == 413)
        {
            return (null, new ApiError(413, $"the body is over {maxBytes} bytes"));
        }
        catch (JsonException e)
        {
            return (null, new ApiError(400, $"the body is not valid JSON: {e.Message.Split('\n')[0]}"));
        }
    }

    private static async Task WriteAsync(HttpContext ctx, int status, Action<Utf8JsonWriter> write, string type = "application/json")
    {
        ctx.Response.StatusCode = status;
        ctx.Response.ContentType = type;
        using (var w = new Utf8JsonWriter(ctx.Response.BodyWriter)) write(w);
        await ctx.Response.BodyWriter.FlushAsync(ctx.RequestAborted);
    }

    private static Task WriteErrorAsync(HttpContext ctx, ApiError e) =>
        WriteAsync(ctx, e.Status, w => EmbeddingJson.WriteError(w, e), "application/problem+json");
}
