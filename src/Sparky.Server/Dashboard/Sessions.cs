using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Threading.RateLimiting;

namespace Sparky.Server.Dashboard;

/// <summary>
/// The dashboard's sign-in where the daemon requires a bearer token: a browser cannot put a header on the page's own
/// loads or on an <c>EventSource</c>, so the token is given once and exchanged for a cookie.
/// <para>The session cookie is <c>EXPIRY.MAC</c>, an HMAC-SHA256 keyed by the token: nothing is stored, so a session
/// outlives a daemon restart (the page reconnects by itself) and every session ends when the token changes. It is
/// HttpOnly and SameSite=Strict. State-changing requests also need a CSRF header equal to the CSRF cookie, whose value
/// is a MAC of the session (a signed double submit): a page elsewhere can neither read it nor make one up, even where it
/// can plant cookies.</para>
/// </summary>
internal sealed class Sessions(string token, TimeProvider clock)
{
    public const string SessionCookie = "sparky_session", CsrfCookie = "sparky_csrf", CsrfHeader = "X-Sparky-CSRF";
    public static readonly TimeSpan Lifetime = TimeSpan.FromDays(7);

    /// <summary>Sign-ins a client address may try per minute: a person mistyping gets several tries; a guesser gets
    /// nowhere. Past it, 429 with Retry-After.</summary>
    public const int SignInsPerMinute = 10;

    private readonly byte[] _key = Encoding.UTF8.GetBytes(token);
    private readonly PartitionedRateLimiter<string> _signIns = PartitionedRateLimiter.Create<string, string>(client =>
        RateLimitPartition.GetFixedWindowLimiter(client, _ => new FixedWindowRateLimiterOptions
        {
            PermitLimit = SignInsPerMinute,
            Window = TimeSpan.FromMinutes(1),
            QueueLimit = 0,
        }));

    /// <summary>Whether <paramref name="client"/> may try to sign in now; if not, how long until it may.</summary>
    public (bool Allowed, TimeSpan RetryAfter) TrySignIn(string client)
    {
        using var lease = _signIns.AttemptAcquire(client);
        if (lease.IsAcquired) return (true, TimeSpan.Zero);
        return (false, lease.TryGetMetadata(MetadataName.RetryAfter, out var after) ? after : TimeSpan.FromMinutes(1));
    }

    /// <summary>Whether <paramref name="given"/> is the token, compared in constant time.</summary>
    public bool IsToken(string? given) =>
        given is not null && CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(given), _key);

    public string NewSession()
    {
        var expires = clock.GetUtcNow().Add(Lifetime).ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture);
        return expires + "." + Mac("session|" + expires);
    }

    /// <summary>A session this daemon's token signed, not yet expired.</summary>
    public bool IsValid(string? session)
    {
        if (session is null) return false;
        int dot = session.IndexOf('.');
        if (dot <= 0 || !long.TryParse(session.AsSpan(0, dot), NumberStyles.None, CultureInfo.InvariantCulture, out var expires)) return false;
        if (expires <= clock.GetUtcNow().ToUnixTimeSeconds()) return false;
        return SameText(session[(dot + 1)..], Mac("session|" + session[..dot]));
    }

    /// <summary>The CSRF value that goes with a session: in the CSRF cookie, and sent back by the page as a header.</summary>
    public string CsrfFor(string session) => Mac("csrf|" + session);

    public bool CsrfMatches(string session, string? header) => header is not null && SameText(header, CsrfFor(session));

    private string Mac(string what) =>
        Convert.ToBase64String(HMACSHA256.HashData(_key, Encoding.UTF8.GetBytes(what))).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    private static bool SameText(string a, string b) =>
        CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(a), Encoding.UTF8.GetBytes(b));
}
