using static Sparky.Server.Zmq.Transport.LibZmq;

namespace Sparky.Server.Zmq.Transport;

/// <summary>An XPUB on libzmq (see <see cref="NativeSocket"/>): subscriptions are read, and events sent, by its thread.</summary>
internal sealed unsafe class NativePublisher : NativeSocket, IPublisher
{
    private IPublisherHandler? _handler;

    private NativePublisher(Bound bound) : base(bound) { }

    public static NativePublisher? TryBind(string endpoint, PublisherOptions options, out string? why)
    {
        var bound = TryBind(XPUB, endpoint, "event", options.Curve, socket => SetInt(socket, SNDHWM, options.SendHighWatermark), out why);
        return bound is { } b ? new NativePublisher(b) : null;
    }

    public void Start(IPublisherHandler handler)
    {
        _handler = handler;
        StartThread("sparky-zmq-events");
    }

    /// <summary>Subscription messages: each one frame.</summary>
    protected override void OnReadable()
    {
        Msg msg;
        zmq_msg_init(&msg);
        try
        {
            while (zmq_msg_recv(&msg, Socket, DONTWAIT) >= 0)
                Publishers.Tell(_handler!, new ReadOnlySpan<byte>(zmq_msg_data(&msg), (int)zmq_msg_size(&msg)));
        }
        finally { zmq_msg_close(&msg); }
    }

    protected override void OnWoken() => _handler?.OnWake();

    protected override void OnError(Exception e) => _handler?.OnError(e);

    public void Send(ReadOnlySpan<byte> topic, ReadOnlySpan<byte> body)
    {
        // A PUB never blocks: past a subscriber's high-water mark libzmq drops the message for that subscriber.
        fixed (byte* t = topic) zmq_send(Socket, t, (nuint)topic.Length, DONTWAIT | SNDMORE);
        fixed (byte* b = body) zmq_send(Socket, b, (nuint)body.Length, DONTWAIT);
    }
}
