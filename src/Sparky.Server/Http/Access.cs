using Microsoft.AspNetCore.Builder;
using Sparky.Core.Config;
using Sparky.Server.Daemon;
using Sparky.Server.Dashboard;

namespace Sparky.Server.Http;

/// <summary>What is known of a request when deciding whether it may go on. <see cref="Session"/> and
/// <see cref="CsrfOk"/> are asked only where the answer depends on them.</summary>
internal readonly record struct AccessRequest(
    string Method,
    string Path,
    bool BearerOk,
    Func<bool> Session,
    Func<bool> CsrfOk,
    bool FromDashboard,
    bool CrossOrigin,
    bool ForeignHost = false);

internal enum AccessVerdict { Allow, Unauthorized, Forbidden }

/// <summary>
/// Who may do what over HTTP. Pure: the middleware below reads the request into an <see cref="AccessRequest"/>.
/// <list type="bullet">
/// <item>The dashboard's own files and its sign-in are open to all (they hold nothing secret; the page must load to
/// ask for the token).</item>
/// <item>Where a token is set, every other request needs it as a bearer header, or (while the dashboard is not off) a
/// signed-in session cookie; a state-changing request made with the cookie also needs the CSRF header.</item>
/// <item>A state-changing request a browser makes from another origin is refused: it is a page elsewhere driving
/// this daemon (a task queue runs commands), token or not. Clients that are not browsers send no Origin.</item>
/// <item>Without a token (the daemon is then on loopback) a request addressed to a name that is not loopback's is
/// refused, reads too: that is DNS rebinding, a page on another site whose name now resolves to 127.0.0.1, same-origin
/// with itself, so neither Origin nor the cookie's SameSite stops it.</item>
/// <item>With <c>dashboard = read-only</c> the dashboard changes nothing: a state-changing request that says it is
/// the dashboard's (<c>X-Sparky-Dashboard</c>, which the page sends on every request) or that a session cookie
/// carries is refused. The bearer token, from a script or the CLI, still may.</item>
/// </list>
/// </summary>
internal static class AccessRules
{
    public const string DashboardHeader = "X-Sparky-Dashboard";
    public const string SignInPath = "/dashboard/signin", SignOutPath = "/dashboard/signout";

    public static (AccessVerdict Verdict, string? Why) Decide(AccessRequest r, bool tokenSet, DashboardMode dashboard)
    {
        if (!tokenSet && r.ForeignHost)
            return (AccessVerdict.Forbidden, "this daemon has no token and answers only requests addressed to loopback (localhost, 127.0.0.1, [::1]): " +
                "a page elsewhere could otherwise reach it by pointing its own name at 127.0.0.1");
        bool safe = r.Method is "GET" or "HEAD" or "OPTIONS";
        if (!safe && r.CrossOrigin) return (AccessVerdict.Forbidden, "a state-changing request from another origin is refused");
        if (IsOpen(r.Method, r.Path)) return (AccessVerdict.Allow, null);
        bool bySession = false;
        if (tokenSet && !r.BearerOk)
        {
            if (dashboard == DashboardMode.Off || !r.Session()) return (AccessVerdict.Unauthorized, null);
            bySession = true;
        }
        if (safe) return (AccessVerdict.Allow, null);
        if (bySession && !r.CsrfOk()) return (AccessVerdict.Forbidden, $"missing or wrong {Sessions.CsrfHeader} header: sign in to the dashboard again");
        if (dashboard == DashboardMode.ReadOnly && (r.FromDashboard || bySession))
            return (AccessVerdict.Forbidden, "the dashboard is read-only (dashboard = read-only): it cannot change anything");
        return (AccessVerdict.Allow, null);
    }

    /// <summary>The page, its files, and signing in and out.</summary>
    private static bool IsOpen(string method, string path) =>
        method is "GET" or "HEAD" ? path == "/" || path.StartsWith("/assets/", StringComparison.Ordinal)
        : method == "POST" && path is SignInPath or SignOutPath;

    /// <summary>Checks every request against <see cref="Decide"/>: 401 or 403 as a problem, else on.</summary>
    public static void Use(WebApplication app, SparkyConfig config, Sessions? sessions)
    {
        byte[]? expected = config.Token is { } t ? System.Text.Encoding.UTF8.GetBytes(t) : null;
        app.Use(async (ctx, next) =>
        {
            var req = ctx.Request;
            string? Cookie() => req.Cookies[Sessions.SessionCookie];
            var access = new AccessRequest(
                req.Method,
                req.Path.Value ?? "/",
                expected is not null && SparkyDaemon.BearerMatches(req.Headers.Authorization.ToString(), expected),
                () => sessions?.IsValid(Cookie()) == true,
                () => Cookie() is { } s && sessions?.CsrfMatches(s, req.Headers[Sessions.CsrfHeader].ToString()) == true,
                req.Headers.ContainsKey(DashboardHeader),
                IsCrossOrigin(req),
                IsForeignHost(req));
            var (verdict, why) = Decide(access, expected is not null, config.Dashboard);
            if (verdict == AccessVerdict.Allow) await next(ctx);
            else if (verdict == AccessVerdict.Unauthorized) await Problems.Unauthorized().ExecuteAsync(ctx);
            else await Results.Problem(why, statusCode: 403, title: "Forbidden").ExecuteAsync(ctx);
        });
    }

    /// <summary>The Host a request was addressed to names something other than loopback. A client that sends no Host
    /// (HTTP/1.0) is not a browser.</summary>
    private static bool IsForeignHost(HttpRequest req) =>
        req.Host.HasValue && !Loopback.IsRequestHost(req.Host.Host);

    /// <summary>A browser names the page a request comes from in <c>Origin</c> (<c>null</c> from a sandbox or a file);
    /// it is cross-origin where that is not the host this request was sent to.</summary>
    private static bool IsCrossOrigin(HttpRequest req)
    {
        var origin = req.Headers.Origin.ToString();
        if (origin.Length == 0) return false;
        return !Uri.TryCreate(origin, UriKind.Absolute, out var uri) || !string.Equals(uri.Authority, req.Host.Value, StringComparison.OrdinalIgnoreCase);
    }
}
