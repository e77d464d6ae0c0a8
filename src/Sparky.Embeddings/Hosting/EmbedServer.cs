using Sparky.Core.Config;
using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Prometheus;
using Sparky.Embeddings.Http;

namespace Sparky.Embeddings.Hosting;

/// <summary>
/// <c>sparky embed serve</c>: the embedding service on an HTTP server of its own, without the daemon (no store, no
/// queue): <c>/v1/embeddings</c>, <c>/v1/models</c>, <c>/metrics</c>, <c>/healthz</c>. Off loopback every request needs
/// the bearer token, as the daemon's do.
/// </summary>
public sealed class EmbedServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    public EmbeddingService Service { get; }
    /// <summary>The address it listens on, with the real port where 0 was asked for.</summary>
    public string Url { get; }

    private EmbedServer(WebApplication app, EmbeddingService service, string url) => (_app, Service, Url) = (app, service, url);

    /// <summary>Refuses an address off loopback without a token (an open port anyone may load).</summary>
    public static string? CheckBinding(string listen, string? token)
    {
        int colon = listen.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(listen[(colon + 1)..], out int port) || port is < 0 or > 65535) return $"--listen: expected HOST:PORT, got '{listen}'";
        var host = listen[..colon];
        return Loopback.IsHost(host) || token is not null ? null : $"refusing to listen on {listen} without a token: set SPARKY_TOKEN (or --token), or listen on 127.0.0.1";
    }

    public static async Task<EmbedServer> StartAsync(EmbeddingOptions options, string listen, string? token, ILoggerFactory logs)
    {
        if (CheckBinding(listen, token) is { } refusal) throw new InvalidOperationException(refusal);
        var registry = Metrics.NewCustomRegistry();
        var service = EmbeddingService.Load(options, registry, logs.CreateLogger<EmbeddingService>());
        try
        {
            var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
            builder.WebHost.UseKestrelCore();
            builder.Services.AddRoutingCore();
            builder.Services.AddSingleton(logs);
            int colon = listen.LastIndexOf(':');
            var host = listen[..colon];
            int port = int.Parse(listen[(colon + 1)..]);
            builder.WebHost.ConfigureKestrel(k =>
            {
                k.Limits.MaxRequestBodySize = options.MaxBodyBytes;
                k.AddServerHeader = false;
                if (Loopback.IsLocalhostName(host)) k.ListenLocalhost(port);
                else if (IPAddress.TryParse(host.Trim('[', ']'), out var ip)) k.Listen(ip, port);
                else k.ListenAnyIP(port);
            });
            var app = builder.Build();
            if (token is null)
            {
                // Without a token it listens on loopback only (CheckBinding), and answers only requests addressed there:
                // a page whose name now resolves to 127.0.0.1 (DNS rebinding) is same-origin with itself and could
                // otherwise load the model and read what it gives. A client that sends no Host (HTTP/1.0) is no browser.
                app.Use(async (ctx, next) =>
                {
                    if (!ctx.Request.Host.HasValue || Loopback.IsRequestHost(ctx.Request.Host.Host)) await next(ctx);
                    else await RefuseAsync(ctx, 403, ForeignHostMessage, "forbidden_host");
                });
            }
            else
            {
                var expected = "Bearer " + token;
                app.Use(async (ctx, next) =>
                {
                    if (ctx.Request.Path == "/healthz" || System.Security.Cryptography.CryptographicOperations.FixedTimeEquals(
                            System.Text.Encoding.UTF8.GetBytes(ctx.Request.Headers.Authorization.ToString()), System.Text.Encoding.UTF8.GetBytes(expected)))
                        await next(ctx);
                    else await RefuseAsync(ctx, 401, "missing or wrong bearer token", "invalid_api_key");
                });
            }
            app.MapEmbeddings(service);
            app.MapMetrics("/metrics", registry);
            app.MapGet("/healthz", () => Results.Text("""{"ok":true,"status":"ok"}""", "application/json"));
            await app.StartAsync();
            var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
            return new EmbedServer(app, service, address.Replace("[::]", "127.0.0.1").Replace("0.0.0.0", "127.0.0.1").Replace("localhost", "127.0.0.1"));
        }
        catch
        {
            service.Dispose();
            throw;
        }
    }

    public const string ForeignHostMessage = "this service has no token and answers only requests addressed to loopback (localhost, 127.0.0.1, [::1]): " +
        "a page elsewhere could otherwise reach it by pointing its own name at 127.0.0.1";

    private static Task RefuseAsync(HttpContext ctx, int status, string message, string code)
    {
        ctx.Response.StatusCode = status;
        ctx.Response.ContentType = "application/problem+json";
        using (var w = new System.Text.Json.Utf8JsonWriter(ctx.Response.BodyWriter))
            EmbeddingJson.WriteError(w, new ApiError(status, message, Code: code));
        return ctx.Response.BodyWriter.FlushAsync().AsTask();
    }

    public async ValueTask DisposeAsync()
    {
        using (var cts = new CancellationTokenSource(TimeSpan.FromSeconds(2))) await _app.StopAsync(cts.Token);
        await _app.DisposeAsync();
        Service.Dispose();
    }
}
