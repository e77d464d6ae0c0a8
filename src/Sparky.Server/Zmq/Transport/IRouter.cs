using NetMQ;

namespace Sparky.Server.Zmq.Transport;

/// <summary>
/// A bound ROUTER socket and the one thread that owns it: what the command socket needs from ZeroMQ. Two kinds:
/// <see cref="NativeRouter"/> (libzmq, the fast one) and <see cref="NetMqRouter"/> (managed, where libzmq is missing).
/// </summary>
internal interface IRouter : IOwnedSocket
{
    /// <summary>Starts the socket thread, which calls <paramref name="handler"/> for every message and after every <see cref="IOwnedSocket.Wake"/>.</summary>
    void Start(IRouterHandler handler);

    /// <summary>Sends <c>[identity][empty][body]</c> without blocking. The socket thread only.</summary>
    SendResult Send(ReadOnlySpan<byte> identity, ReadOnlySpan<byte> body);
}

/// <summary>A send over the peer's high-water mark is <see cref="Full"/>; one to a peer that is gone is <see cref="Gone"/>.</summary>
internal enum SendResult { Sent, Full, Gone }

/// <summary>What the socket thread calls. An exception out of it is logged by the caller, and the thread goes on.</summary>
internal interface IRouterHandler
{
    /// <summary>One whole message: its first frame (the peer's routing id), how many frames in all, the size of the
    /// second, and the third (empty where there is none). The spans are valid only during the call.</summary>
    void OnMessage(ReadOnlySpan<byte> identity, int frames, int delimiterSize, ReadOnlyMemory<byte> body);

    /// <summary>After <see cref="IOwnedSocket.Wake"/>: replies queued by other threads can be sent.</summary>
    void OnWake();

    void OnError(Exception e);
}

/// <summary>How the ROUTER is set up (see <see cref="CommandSocket"/> for why each).</summary>
internal sealed record RouterOptions(int ReceiveHighWatermark, int SendHighWatermark, long MaxMessageSize, NetMQCertificate? Curve);

/// <summary>Picks the transport: libzmq where it loads (and has CURVE where CURVE is asked for) and can bind the
/// endpoint, else NetMQ. <paramref name="why"/> says why NetMQ was used; null when it was not.</summary>
internal static class Routers
{
    public static IRouter Bind(string endpoint, RouterOptions options, out string? why)
    {
        why = Transports.WhyNotLibZmq(options.Curve is not null);
        if (why is null)
        {
            var native = NativeRouter.TryBind(endpoint, options, out why);
            if (native is not null) return native;
        }
        return NetMqRouter.Bind(endpoint, options);
    }
}

/// <summary>Which ZeroMQ the sockets use.</summary>
internal static class Transports
{
    /// <summary><c>SPARKY_ZMQ_LIBRARY=netmq</c> forces the managed one (to compare, or where a libzmq misbehaves).</summary>
    public const string LibraryVariable = "SPARKY_ZMQ_LIBRARY";

    /// <summary>Null where libzmq is to be tried (with CURVE if <paramref name="curve"/>); else why not, in a few words.</summary>
    public static string? WhyNotLibZmq(bool curve) =>
        Environment.GetEnvironmentVariable(LibraryVariable) is { } forced && forced.Equals("netmq", StringComparison.OrdinalIgnoreCase)
            ? $"{LibraryVariable}=netmq"
            : LibZmq.IsUsable(curve);
}
