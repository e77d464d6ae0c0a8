using NetMQ;

namespace Sparky.Server.Zmq.Transport;

/// <summary>
/// A bound XPUB socket and the one thread that owns it: what the event socket needs from ZeroMQ. An XPUB is a PUB that
/// also tells its owner which topic prefixes are subscribed, so the daemon can leave unencoded the events nobody would
/// receive. Two kinds, as for the command socket: <see cref="NativePublisher"/> (libzmq) and <see cref="NetMqPublisher"/>.
/// </summary>
internal interface IPublisher : IOwnedSocket
{
    /// <summary>Starts the socket thread, which calls <paramref name="handler"/> for every change of the subscriptions
    /// and after every <see cref="IOwnedSocket.Wake"/>.</summary>
    void Start(IPublisherHandler handler);

    /// <summary>Sends <c>[topic][body]</c> without blocking: to every subscriber of a prefix of the topic that is under
    /// its high-water mark (the others miss it). The socket thread only.</summary>
    void Send(ReadOnlySpan<byte> topic, ReadOnlySpan<byte> body);
}

/// <summary>What the publisher's thread calls. An exception out of it is logged by the caller, and the thread goes on.</summary>
internal interface IPublisherHandler
{
    /// <summary>A prefix is now subscribed by some subscriber (<paramref name="subscribed"/>), or by none any more (also
    /// when its last subscriber disconnects). Told once per change, not per subscriber. Valid only during the call.</summary>
    void OnSubscription(bool subscribed, ReadOnlySpan<byte> prefix);

    /// <summary>After <see cref="IOwnedSocket.Wake"/>: events queued by other threads can be sent.</summary>
    void OnWake();

    void OnError(Exception e);
}

internal sealed record PublisherOptions(int SendHighWatermark, NetMQCertificate? Curve);

/// <summary>Picks the event socket's transport as <see cref="Routers"/> does the command socket's.</summary>
internal static class Publishers
{
    /// <param name="netMq">NetMQ whatever is installed (tests of the fallback).</param>
    public static IPublisher Bind(string endpoint, PublisherOptions options, bool netMq, out string? why)
    {
        why = netMq ? "asked for" : Transports.WhyNotLibZmq(options.Curve is not null);
        if (why is null)
        {
            var native = NativePublisher.TryBind(endpoint, options, out why);
            if (native is not null) return native;
        }
        return NetMqPublisher.Bind(endpoint, options);
    }

    /// <summary>Reads a subscription message (<c>1</c> or <c>0</c>, then the prefix) and tells the handler; anything
    /// else (a message a subscriber sent on its own) is ignored.</summary>
    public static void Tell(IPublisherHandler handler, ReadOnlySpan<byte> message)
    {
        if (message.Length > 0 && message[0] <= 1) handler.OnSubscription(message[0] == 1, message[1..]);
    }
}
