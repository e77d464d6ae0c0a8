using NetMQ;
using NetMQ.Sockets;

namespace Sparky.Server.Zmq.Transport;

/// <summary>An XPUB on NetMQ, where libzmq is not installed (see <see cref="NetMqSocket{TSocket}"/>).</summary>
internal sealed class NetMqPublisher : NetMqSocket<XPublisherSocket>, IPublisher
{
    private IPublisherHandler? _handler;

    private NetMqPublisher(XPublisherSocket pub, string endpoint) : base(pub, endpoint) { }

    /// <summary>Binds (port 0: a free port). Throws InvalidOperationException with one line if it can't.</summary>
    public static NetMqPublisher Bind(string endpoint, PublisherOptions options)
    {
        var pub = new XPublisherSocket();
        return new NetMqPublisher(pub, Bind(pub, endpoint, "event", options.Curve, p => p.Options.SendHighWatermark = options.SendHighWatermark));
    }

    public void Start(IPublisherHandler handler)
    {
        _handler = handler;
        StartThread("sparky-zmq-events");
    }

    protected override void OnReadable()
    {
        while (Socket.TryReceiveFrameBytes(TimeSpan.Zero, out var message)) Publishers.Tell(_handler!, message);
    }

    protected override void OnWoken() => _handler?.OnWake();

    protected override void OnError(Exception e) => _handler?.OnError(e);

    public void Send(ReadOnlySpan<byte> topic, ReadOnlySpan<byte> body)
    {
        var t = new Msg();
        t.InitPool(topic.Length);
        topic.CopyTo(t.Slice());
        if (!Socket.TrySend(ref t, TimeSpan.Zero, more: true)) { t.Close(); return; }
        var msg = new Msg();
        msg.InitPool(body.Length);
        body.CopyTo(msg.Slice());
        if (!Socket.TrySend(ref msg, TimeSpan.Zero, more: false)) msg.Close();
    }
}
