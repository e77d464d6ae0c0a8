using System.Buffers;
using static Sparky.Server.Zmq.Transport.LibZmq;

namespace Sparky.Server.Zmq.Transport;

/// <summary>
/// A ROUTER on libzmq (see <see cref="NativeSocket"/>): a request is read, answered and sent by the thread that polled
/// it, and a reply computed elsewhere costs one eventfd write (NetMQ's path crosses four threads each way; see
/// bench/README.md, IPC).
/// </summary>
internal sealed unsafe class NativeRouter : NativeSocket, IRouter
{
    /// <summary>How many messages one wake-up reads before queued replies get their turn.</summary>
    private const int Batch = 64;

    private IRouterHandler? _handler;
    /// <summary>The body frame of the message being handled, lent to the handler in place (the socket thread's).</summary>
    private readonly FrameMemory _body = new();

    private NativeRouter(Bound bound) : base(bound) { }

    /// <summary>Binds, or returns null with why where libzmq cannot bind this endpoint (NetMQ is then tried).
    /// Throws InvalidOperationException (one line) when the port is in use: NetMQ would not do better.</summary>
    public static NativeRouter? TryBind(string endpoint, RouterOptions options, out string? why)
    {
        var bound = TryBind(ROUTER, endpoint, "command", options.Curve, socket =>
        {
            SetInt(socket, RCVHWM, options.ReceiveHighWatermark);
            SetInt(socket, SNDHWM, options.SendHighWatermark);
            SetInt(socket, ROUTER_MANDATORY, 1);
            SetLong(socket, MAXMSGSIZE, options.MaxMessageSize);
        }, out why);
        return bound is { } b ? new NativeRouter(b) : null;
    }

    public void Start(IRouterHandler handler)
    {
        _handler = handler;
        StartThread("sparky-zmq-commands");
    }

    protected override void OnReadable()
    {
        Msg msg, body;
        zmq_msg_init(&msg);
        zmq_msg_init(&body);
        try
        {
            for (int i = 0; i < Batch && !Stopping; i++)
                if (!ReceiveOne(&msg, &body)) break;
        }
        finally
        {
            zmq_msg_close(&msg);
            zmq_msg_close(&body);
        }
    }

    protected override void OnWoken() => _handler?.OnWake();

    protected override void OnError(Exception e) => _handler?.OnError(e);

    /// <summary>Reads one whole message (libzmq delivers all its frames at once) and hands it to the handler: the
    /// body in place, in libzmq's buffer (nothing copied), which stays <paramref name="body"/>'s until the next message.</summary>
    private bool ReceiveOne(Msg* msg, Msg* body)
    {
        if (zmq_msg_recv(msg, Socket, DONTWAIT) < 0) return false; // EAGAIN: nothing waiting
        // A routing id is at most 255 bytes.
        Span<byte> identity = stackalloc byte[256];
        int identityLength = Copy(msg, identity);
        int frames = 1, delimiterSize = 0;
        _body.Set(null, 0);
        bool more = zmq_msg_more(msg) != 0;
        while (more)
        {
            var into = frames == 2 ? body : msg; // the third frame is the body
            if (zmq_msg_recv(into, Socket, DONTWAIT) < 0) break;
            more = zmq_msg_more(into) != 0;
            frames++;
            if (frames == 2) delimiterSize = (int)zmq_msg_size(msg);
            else if (frames == 3) _body.Set((byte*)zmq_msg_data(body), (int)zmq_msg_size(body));
        }
        try { _handler!.OnMessage(identity[..identityLength], frames, delimiterSize, _body.Memory); }
        catch (Exception e) { _handler!.OnError(e); }
        _body.Set(null, 0);
        return true;
    }

    /// <summary>A frame's bytes in libzmq's memory as a <see cref="Memory{T}"/>, lent for one handler call.</summary>
    private sealed class FrameMemory : MemoryManager<byte>
    {
        private byte* _data;
        private int _length;

        public void Set(byte* data, int length)
        {
            _data = data;
            _length = length;
        }

        public override Span<byte> GetSpan() => new(_data, _length);

        public override MemoryHandle Pin(int elementIndex = 0) => new(_data + elementIndex); // not moved: native memory

        public override void Unpin() { }

        protected override void Dispose(bool disposing) { }
    }

    private static int Copy(Msg* msg, Span<byte> to)
    {
        int n = Math.Min((int)zmq_msg_size(msg), to.Length);
        new ReadOnlySpan<byte>(zmq_msg_data(msg), n).CopyTo(to);
        return n;
    }

    public SendResult Send(ReadOnlySpan<byte> identity, ReadOnlySpan<byte> body)
    {
        fixed (byte* id = identity)
        {
            if (zmq_send(Socket, id, (nuint)identity.Length, DONTWAIT | SNDMORE) < 0)
                return zmq_errno() == EHOSTUNREACH ? SendResult.Gone : SendResult.Full;
        }
        zmq_send(Socket, null, 0, DONTWAIT | SNDMORE);
        fixed (byte* b = body) zmq_send(Socket, b, (nuint)body.Length, DONTWAIT);
        return SendResult.Sent;
    }
}
