using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Routing;
using Sparky.Core.Config;
using Sparky.Server.Http;

namespace Sparky.Server.Dashboard;

/// <summary>
/// The web dashboard: <c>/</c> (the page), <c>/assets/…</c> (its styles, modules and chart library), and signing in
/// and out where a token is required. Every file is revalidated on each load (<c>no-cache</c> with an ETag, so a
/// daemon upgraded under an open tab never mixes old and new modules) and carries a Content-Security-Policy that allows
/// only this origin's own files: no inline script or style, nothing from elsewhere.
/// </summary>
internal static class DashboardRoutes
{
    private const string Csp = "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

    public static void Map(WebApplication app, SparkyConfig config, Sessions? sessions)
    {
        app.MapMethods("/", ["GET", "HEAD"], (HttpContext ctx) => Serve(ctx, config, "index.html"));
        app.MapMethods("/assets/{**path}", ["GET", "HEAD"], (HttpContext ctx, string path) => Serve(ctx, config, path));

        // {"token"} → 204 with the session and CSRF cookies; 401 for a wrong one; 429 past a few tries a minute. Without a token set there is nothing to sign in to.
        app.MapPost(AccessRules.SignInPath, async (HttpContext ctx) =>
        {
            if (config.Dashboard == DashboardMode.Off) return Problems.NotFound("the dashboard is off (dashboard = off)");
            var (node, error) = await BodyReader.ReadJsonAsync(ctx.Request, 64 * 1024);
            if (error is not null) return error;
            if (sessions is null) return Results.NoContent();
            var (allowed, retryAfter) = sessions.TrySignIn(ctx.Connection.RemoteIpAddress?.ToString() ?? "");
            if (!allowed)
            {
                ctx.Response.Headers.RetryAfter = Math.Max(1, (int)Math.Ceiling(retryAfter.TotalSeconds)).ToString(System.Globalization.CultureInfo.InvariantCulture);
                return Results.Problem($"too many sign-ins from this address: at most {Sessions.SignInsPerMinute} a minute", statusCode: 429, title: "Too Many Requests");
            }
            var given = node is JsonObject o && o["token"] is JsonValue v && v.GetValueKind() == JsonValueKind.String ? v.GetValue<string>() : null;
            if (!sessions.IsToken(given)) return Problems.Unauthorized();
            var session = sessions.NewSession();
            var cookie = new CookieOptions
            {
                Path = "/",
                SameSite = SameSiteMode.Strict,
                Secure = ctx.Request.IsHttps,
                MaxAge = Sessions.Lifetime,
            };
            ctx.Response.Cookies.Append(Sessions.SessionCookie, session, new CookieOptions(cookie) { HttpOnly = true });
            // Readable by the page, which sends it back as the CSRF header.
            ctx.Response.Cookies.Append(Sessions.CsrfCookie, sessions.CsrfFor(session), cookie);
            return Results.NoContent();
        });

        app.MapPost(AccessRules.SignOutPath, (HttpContext ctx) =>
        {
            ctx.Response.Cookies.Delete(Sessions.SessionCookie, new CookieOptions { Path = "/" });
            ctx.Response.Cookies.Delete(Sessions.CsrfCookie, new CookieOptions { Path = "/" });
            return Results.NoContent();
        });
    }

    private static IResult Serve(HttpContext ctx, SparkyConfig config, string path)
    {
        if (config.Dashboard == DashboardMode.Off) return Problems.NotFound("the dashboard is off (dashboard = off)");
        if (DashboardAssets.Get(path) is not { } asset) return Problems.NotFound($"no dashboard file '{path}'");
        var headers = ctx.Response.Headers;
        headers.ETag = asset.ETag;
        headers.CacheControl = "no-cache";
        headers.ContentSecurityPolicy = Csp;
        headers.XContentTypeOptions = "nosniff";
        headers["Referrer-Policy"] = "no-referrer";
        var known = ctx.Request.Headers.IfNoneMatch.SelectMany(v => (v ?? "").Split(',', StringSplitOptions.TrimEntries));
        if (known.Any(t => t == asset.ETag || t == "*")) return Results.StatusCode(304);
        return Results.Bytes(asset.Bytes, asset.ContentType);
    }
}
