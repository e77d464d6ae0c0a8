using System.Net;

namespace Sparky.Core.Config;

/// <summary>
/// Whether a host, as an address setting or a request's Host names it, is this machine's loopback: <c>localhost</c> (in
/// any case), 127.0.0.0/8 or ::1 (bracketed or not). Off loopback the HTTP doors need a token and ZeroMQ needs CURVE keys.
/// </summary>
public static class Loopback
{
    public static bool IsHost(string host) =>
        IsLocalhostName(host) || (IPAddress.TryParse(host.Trim('[', ']'), out var ip) && IPAddress.IsLoopback(ip));

    /// <summary>A request's Host (without its port) names this machine's loopback: a loopback host, or a name under
    /// <c>.localhost</c> (which resolves to loopback by RFC 6761). Anything else, on a server that has no token, is DNS
    /// rebinding: a page elsewhere whose name now points at 127.0.0.1.</summary>
    public static bool IsRequestHost(string host) =>
        IsHost(host) || host.EndsWith(".localhost", StringComparison.OrdinalIgnoreCase);

    /// <summary>The name <c>localhost</c>: a server binds it with Kestrel's <c>ListenLocalhost</c>, never on every address.</summary>
    public static bool IsLocalhostName(string host) => host.Equals("localhost", StringComparison.OrdinalIgnoreCase);
}
