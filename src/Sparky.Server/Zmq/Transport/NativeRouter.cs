using System.Buffers;
using System.Text;
using Sparky.Core.Config;
using static Sparky.Server.Zmq.Transport.LibZmq;

namespace Sparky.Server.Zmq.Transport;

/// <summary>
/// A ROUTER on libzmq. Its thread sleeps in <c>zmq_poll</c> on the socket and on an eventfd that other threads write
/// to wake it, so a request is read, answered and sent by the thread that polled it, and a reply computed elsewhere
/// costs one eventfd write. libzmq's own I/O thread is native: no managed thread pool between the kernel and the
/// socket (NetMQ's path crosses four threads each way; see bench/README.md, IPC).
/// </summary>
internal sealed unsafe class NativeRouter : IRouter
{
    /// <summary>How many messages one wake-up reads before queued replies get their turn.</summary>
    private const int Batch = 64;

    private readonly nint _context, _socket;
    private readonly int _wakeFd;
    private IRouterHandler? _handler;
    private Thread? _thread;
    private volatile bool _stopping;
    private int _woken; // 1 while a wake-up is written and not yet read: more Wake calls write nothing
    /// <summary>Taken to write to the eventfd and to close it: a late Wake never writes to a descriptor reused since.</summary>
    private readonly Lock _wakeLock = new();
    private bool _closed;
    /// <summary>The body frame of the message being handled, lent to the handler in place (the socket thread's).</summary>
    private readonly FrameMemory _body = new();

    public string Endpoint { get; }
    public string Library => "libzmq " + LibZmq.Version;

    private NativeRouter(nint context, nint socket, int wakeFd, string endpoint) =>
        (_context, _socket, _wakeFd, Endpoint) = (context, socket, wakeFd, endpoint);

    /// <summary>Binds, or returns null with why where libzmq cannot bind this endpoint (NetMQ is then tried).
    /// Throws InvalidOperationException (one line) when the port is in use: NetMQ would not do better.</summary>
    public static NativeRouter? TryBind(string endpoint, RouterOptions options, out string? why)
    {
        var context = zmq_ctx_new();
        var socket = zmq_socket(context, ROUTER);
        int wakeFd = -1;
        try
        {
            SetInt(socket, LINGER, 0);
            SetInt(socket, RCVHWM, options.ReceiveHighWatermark);
            SetInt(socket, SNDHWM, options.SendHighWatermark);
            SetInt(socket, ROUTER_MANDATORY, 1);
            SetLong(socket, MAXMSGSIZE, options.MaxMessageSize);
            if (options.Curve is { } cert)
            {
                SetInt(socket, CURVE_SERVER, 1);
                SetBytes(socket, CURVE_SECRETKEY, cert.SecretKey);
            }
            var (host, port) = ZmqBind.Split(endpoint);
            if (host.StartsWith('[')) SetInt(socket, IPV6, 1);
            // libzmq binds addresses and interface names, not host names: localhost is its loopback address.
            string address = Loopback.IsLocalhostName(host) ? "127.0.0.1" : host;
            var target = Encoding.UTF8.GetBytes($"tcp://{address}:{(port == 0 ? "*" : port)}\0");
            int rc;
            fixed (byte* p = target) rc = zmq_bind(socket, p);
            if (rc != 0)
            {
                int errno = zmq_errno();
                if (errno == EADDRINUSE) throw ZmqBind.InUse(endpoint, "command");
                why = $"libzmq cannot bind {endpoint}: {Error(errno)}";
                Close(context, socket, wakeFd);
                return null;
            }
            if (port == 0)
            {
                var bound = GetString(socket, LAST_ENDPOINT);
                port = int.Parse(bound[(bound.LastIndexOf(':') + 1)..], System.Globalization.CultureInfo.InvariantCulture);
            }
            wakeFd = EventFd(0, EFD_NONBLOCK | EFD_CLOEXEC);
            if (wakeFd < 0) throw new InvalidOperationException("eventfd failed: " + System.Runtime.InteropServices.Marshal.GetLastPInvokeErrorMessage());
            why = null;
            return new NativeRouter(context, socket, wakeFd, $"tcp://{host}:{port}");
        }
        catch
        {
            Close(context, socket, wakeFd);
            throw;
        }
    }

    private static void Close(nint context, nint socket, int wakeFd)
    {
        zmq_close(socket);
        zmq_ctx_term(context);
        if (wakeFd >= 0) LibZmq.Close(wakeFd);
    }

    public void Start(IRouterHandler handler)
    {
        _handler = handler;
        _thread = new Thread(Loop) { IsBackground = true, Name = "sparky-zmq-commands" };
        _thread.Start();
    }

    private void Loop()
    {
        var items = stackalloc PollItem[2];
        items[0] = new PollItem { Socket = _socket, Events = POLLIN };
        items[1] = new PollItem { Fd = _wakeFd, Events = POLLIN };
        Msg msg, body;
        zmq_msg_init(&msg);
        zmq_msg_init(&body);
        while (!_stopping)
        {
            if (zmq_poll(items, 2, -1) < 0)
            {
                int errno = zmq_errno();
                if (errno == EINTR) continue;
                _handler!.OnError(new InvalidOperationException("zmq_poll: " + Error(errno)));
                if (errno == ETERM) break;
                Thread.Sleep(10); // not expected; never spin
                continue;
            }
            if ((items[1].Revents & POLLIN) != 0) Woken();
            if ((items[0].Revents & POLLIN) != 0)
                for (int i = 0; i < Batch && !_stopping; i++)
                    if (!ReceiveOne(&msg, &body)) break;
        }
        Woken(); // the last replies queued before Dispose
        zmq_msg_close(&msg);
        zmq_msg_close(&body);
        zmq_close(_socket); // by the thread that used it
    }

    private void Woken()
    {
        ulong count;
        Read(_wakeFd, &count, sizeof(ulong));
        Volatile.Write(ref _woken, 0); // before draining: a reply queued from now on writes again
        try { _handler!.OnWake(); }
        catch (Exception e) { _handler!.OnError(e); }
    }

    /// <summary>Reads one whole message (libzmq delivers all its frames at once) and hands it to the handler: the
    /// body in place, in libzmq's buffer (nothing copied), which stays <paramref name="body"/>'s until the next message.</summary>
    private bool ReceiveOne(Msg* msg, Msg* body)
    {
        if (zmq_msg_recv(msg, _socket, DONTWAIT) < 0) return false; // EAGAIN: nothing waiting
        // A routing id is at most 255 bytes.
        Span<byte> identity = stackalloc byte[256];
        int identityLength = Copy(msg, identity);
        int frames = 1, delimiterSize = 0;
        _body.Set(null, 0);
        bool more = zmq_msg_more(msg) != 0;
        while (more)
        {
            var into = frames == 2 ? body : msg; // the third frame is the body
            if (zmq_msg_recv(into, _socket, DONTWAIT) < 0) break;
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
            if (zmq_send(_socket, id, (nuint)identity.Length, DONTWAIT | SNDMORE) < 0)
                return zmq_errno() == EHOSTUNREACH ? SendResult.Gone : SendResult.Full;
        }
        zmq_send(_socket, null, 0, DONTWAIT | SNDMORE);
        fixed (byte* b = body) zmq_send(_socket, b, (nuint)body.Length, DONTWAIT);
        return SendResult.Sent;
    }

    public void Wake()
    {
        if (Interlocked.Exchange(ref _woken, 1) == 1) return; // a wake-up is already on its way
        ulong one = 1;
        lock (_wakeLock)
            if (!_closed) Write(_wakeFd, &one, sizeof(ulong));
    }

    public void Dispose()
    {
        _stopping = true;
        Volatile.Write(ref _woken, 0);
        Wake();
        _thread?.Join();
        if (_thread is null) zmq_close(_socket);
        zmq_ctx_term(_context);
        lock (_wakeLock)
        {
            _closed = true;
            LibZmq.Close(_wakeFd);
        }
    }
}
