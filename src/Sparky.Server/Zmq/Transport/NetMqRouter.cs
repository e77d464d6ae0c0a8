using NetMQ;
using NetMQ.Sockets;

namespace Sparky.Server.Zmq.Transport;

/// <summary>A ROUTER on NetMQ, where libzmq is not installed (see <see cref="NetMqSocket{TSocket}"/>).</summary>
internal sealed class NetMqRouter : NetMqSocket<RouterSocket>, IRouter
{
    private const int Batch = 64;

    private IRouterHandler? _handler;

    private NetMqRouter(RouterSocket router, string endpoint) : base(router, endpoint) { }

    /// <summary>Binds (port 0: a free port). Throws InvalidOperationException with one line if it can't.</summary>
    public static NetMqRouter Bind(string endpoint, RouterOptions options)
    {
        var router = new RouterSocket();
        return new NetMqRouter(router, Bind(router, endpoint, "command", options.Curve, r =>
        {
            r.Options.ReceiveHighWatermark = options.ReceiveHighWatermark;
            r.Options.SendHighWatermark = options.SendHighWatermark;
            r.Options.RouterMandatory = true;
            r.Options.MaxMsgSize = options.MaxMessageSize;
        }));
    }

    public void Start(IRouterHandler handler)
    {
        _handler = handler;
        StartThread("sparky-zmq-commands");
    }

    protected override void OnReadable()
    {
        for (int i = 0; i < Batch; i++)
            if (!ReceiveOne()) return;
    }

    protected override void OnWoken() => _handler?.OnWake();

    protected override void OnError(Exception e) => _handler?.OnError(e);

    /// <summary>Takes one whole message off the socket, or returns false if none is waiting.</summary>
    private bool ReceiveOne()
    {
        var identity = new Msg();
        identity.InitEmpty();
        if (!Socket.TryReceive(ref identity, TimeSpan.Zero)) { identity.Close(); return false; }
        Msg delimiter = default, body = default;
        int frames = 1;
        bool more = identity.HasMore;
        while (more)
        {
            var m = new Msg();
            m.InitEmpty();
            if (!Socket.TryReceive(ref m, TimeSpan.Zero)) { m.Close(); break; } // a message arrives whole; not expected
            more = m.HasMore;
            if (++frames == 2) delimiter = m;
            else if (frames == 3) body = m;
            else m.Close();
        }
        try { _handler!.OnMessage(identity.Slice(), frames, delimiter.IsInitialised ? delimiter.Size : 0, body.IsInitialised ? body.SliceAsMemory() : default); }
        catch (Exception e) { _handler!.OnError(e); }
        finally
        {
            identity.Close();
            if (delimiter.IsInitialised) delimiter.Close();
            if (body.IsInitialised) body.Close();
        }
        return true;
    }

    public SendResult Send(ReadOnlySpan<byte> identity, ReadOnlySpan<byte> body)
    {
        var id = new Msg();
        id.InitPool(identity.Length);
        identity.CopyTo(id.Slice());
        try
        {
            if (!Socket.TrySend(ref id, TimeSpan.Zero, more: true)) { id.Close(); return SendResult.Full; }
        }
        catch (HostUnreachableException) { id.Close(); return SendResult.Gone; }
        Socket.TrySendFrameEmpty(TimeSpan.Zero, more: true);
        var msg = new Msg();
        msg.InitPool(body.Length);
        body.CopyTo(msg.Slice());
        if (!Socket.TrySend(ref msg, TimeSpan.Zero, more: false)) msg.Close();
        return SendResult.Sent;
    }
}
