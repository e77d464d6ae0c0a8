using NetMQ;
using NetMQ.Sockets;

namespace Sparky.Server.Zmq.Transport;

/// <summary>
/// A ROUTER on NetMQ (managed ZeroMQ), where libzmq is not installed: a NetMQPoller's thread owns the socket and a
/// <see cref="NetMQQueue{T}"/> wakes it. Each message crosses more threads than on libzmq (bench/README.md, IPC).
/// </summary>
internal sealed class NetMqRouter : IRouter
{
    private const int Batch = 64;

    private readonly RouterSocket _router;
    private readonly NetMQQueue<bool> _wake = new();
    private readonly NetMQPoller _poller;
    private IRouterHandler? _handler;
    private int _woken;

    public string Endpoint { get; }
    public string Library => "NetMQ";

    private NetMqRouter(RouterSocket router, string endpoint)
    {
        _router = router;
        Endpoint = endpoint;
        _router.ReceiveReady += (_, _) =>
        {
            for (int i = 0; i < Batch; i++)
                if (!ReceiveOne()) return;
        };
        _wake.ReceiveReady += (_, _) =>
        {
            while (_wake.TryDequeue(out _, TimeSpan.Zero)) { }
            Volatile.Write(ref _woken, 0);
            try { _handler!.OnWake(); }
            catch (Exception e) { _handler!.OnError(e); }
        };
        _poller = new NetMQPoller { _router, _wake };
    }

    /// <summary>Binds (port 0: a free port). Throws InvalidOperationException with one line if it can't.</summary>
    public static NetMqRouter Bind(string endpoint, RouterOptions options)
    {
        var router = new RouterSocket();
        try
        {
            router.Options.Linger = TimeSpan.Zero;
            router.Options.ReceiveHighWatermark = options.ReceiveHighWatermark;
            router.Options.SendHighWatermark = options.SendHighWatermark;
            router.Options.RouterMandatory = true;
            router.Options.MaxMsgSize = options.MaxMessageSize;
            CurveKeys.Serve(router, options.Curve);
            return new NetMqRouter(router, ZmqBind.Bind(router, endpoint, "command"));
        }
        catch
        {
            router.Dispose();
            throw;
        }
    }

    public void Start(IRouterHandler handler)
    {
        _handler = handler;
        _poller.RunAsync("sparky-zmq-commands", isBackgroundThread: true);
    }

    /// <summary>Takes one whole message off the socket, or returns false if none is waiting.</summary>
    private bool ReceiveOne()
    {
        var identity = new Msg();
        identity.InitEmpty();
        if (!_router.TryReceive(ref identity, TimeSpan.Zero)) { identity.Close(); return false; }
        Msg delimiter = default, body = default;
        int frames = 1;
        bool more = identity.HasMore;
        while (more)
        {
            var m = new Msg();
            m.InitEmpty();
            if (!_router.TryReceive(ref m, TimeSpan.Zero)) { m.Close(); break; } // a message arrives whole; not expected
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
            if (!_router.TrySend(ref id, TimeSpan.Zero, more: true)) { id.Close(); return SendResult.Full; }
        }
        catch (HostUnreachableException) { id.Close(); return SendResult.Gone; }
        _router.TrySendFrameEmpty(TimeSpan.Zero, more: true);
        var msg = new Msg();
        msg.InitPool(body.Length);
        body.CopyTo(msg.Slice());
        if (!_router.TrySend(ref msg, TimeSpan.Zero, more: false)) msg.Close();
        return SendResult.Sent;
    }

    public void Wake()
    {
        if (Interlocked.Exchange(ref _woken, 1) == 1) return;
        try
        {
            if (!_wake.IsDisposed) _wake.Enqueue(true);
        }
        catch (Exception e) when (e is ObjectDisposedException or TerminatingException or NetMQException) { } // stopped meanwhile
    }

    public void Dispose()
    {
        if (_poller.IsRunning) _poller.Stop(); // waits for the handler in progress
        _poller.Dispose();
        _router.Dispose();
        _wake.Dispose();
    }
}
