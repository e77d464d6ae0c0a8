using System.Text;
using Sparky.Core.Config;
using static Sparky.Server.Zmq.Transport.LibZmq;

namespace Sparky.Server.Zmq.Transport;

/// <summary>
/// A bound libzmq socket and the one thread that owns it. The thread sleeps in <c>zmq_poll</c> on the socket and on an
/// eventfd that other threads write to wake it, so what the socket receives is handled by the thread that polled it,
/// and work queued elsewhere costs one eventfd write (coalesced while a wake-up is pending). libzmq's own I/O thread is
/// native: no managed thread pool between the kernel and the socket. <see cref="NativeRouter"/> and
/// <see cref="NativePublisher"/> say what to do when the socket is readable and when the thread is woken.
/// </summary>
internal abstract unsafe class NativeSocket : IDisposable
{
    protected readonly nint Socket;
    private readonly nint _context;
    private readonly int _wakeFd;
    private Thread? _thread;
    private volatile bool _stopping;
    private int _woken; // 1 while a wake-up is written and not yet read: more Wake calls write nothing
    /// <summary>Taken to write to the eventfd and to close it: a late Wake never writes to a descriptor reused since.</summary>
    private readonly Lock _wakeLock = new();
    private bool _closed;

    public string Endpoint { get; }
    public string Library => "libzmq " + LibZmq.Version;
    protected bool Stopping => _stopping;

    protected NativeSocket(Bound bound) => (_context, Socket, _wakeFd, Endpoint) = (bound.Context, bound.Socket, bound.WakeFd, bound.Endpoint);

    /// <summary>A socket bound to its endpoint, with the eventfd that wakes its thread.</summary>
    protected readonly record struct Bound(nint Context, nint Socket, int WakeFd, string Endpoint);

    /// <summary>Makes a socket of <paramref name="type"/>, sets it up with <paramref name="configure"/> and binds it
    /// (port 0: a free port), or returns null with why where libzmq cannot bind this endpoint (NetMQ is then tried).
    /// Throws InvalidOperationException (one line) when the port is in use: NetMQ would not do better.</summary>
    protected static Bound? TryBind(int type, string endpoint, string what, NetMQ.NetMQCertificate? curve, Action<nint> configure, out string? why)
    {
        var context = zmq_ctx_new();
        var socket = zmq_socket(context, type);
        int wakeFd = -1;
        try
        {
            SetInt(socket, LINGER, 0);
            configure(socket);
            if (curve is not null)
            {
                // No ZAP handler: any client key completes the handshake, as on NetMQ (ZmqAuth checks keys per message).
                SetInt(socket, CURVE_SERVER, 1);
                SetBytes(socket, CURVE_SECRETKEY, curve.SecretKey);
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
                if (errno == EADDRINUSE) throw ZmqBind.InUse(endpoint, what);
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
            return new Bound(context, socket, wakeFd, $"tcp://{host}:{port}");
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

    protected void StartThread(string name)
    {
        _thread = new Thread(Loop) { IsBackground = true, Name = name };
        _thread.Start();
    }

    /// <summary>The socket has something to read (a message, a subscription). The socket thread.</summary>
    protected abstract void OnReadable();

    /// <summary>After <see cref="Wake"/>, and once more before the socket closes. The socket thread.</summary>
    protected abstract void OnWoken();

    protected abstract void OnError(Exception e);

    private void Loop()
    {
        var items = stackalloc PollItem[2];
        items[0] = new PollItem { Socket = Socket, Events = POLLIN };
        items[1] = new PollItem { Fd = _wakeFd, Events = POLLIN };
        while (!_stopping)
        {
            if (zmq_poll(items, 2, -1) < 0)
            {
                int errno = zmq_errno();
                if (errno == EINTR) continue;
                OnError(new InvalidOperationException("zmq_poll: " + Error(errno)));
                if (errno == ETERM) break;
                Thread.Sleep(10); // not expected; never spin
                continue;
            }
            if ((items[1].Revents & POLLIN) != 0) Woken();
            if ((items[0].Revents & POLLIN) != 0 && !_stopping)
            {
                try { OnReadable(); }
                catch (Exception e) { OnError(e); }
            }
        }
        Woken(); // what was queued before Dispose
        zmq_close(Socket); // by the thread that used it
    }

    private void Woken()
    {
        ulong count;
        Read(_wakeFd, &count, sizeof(ulong));
        Volatile.Write(ref _woken, 0); // before handling: what is queued from now on writes again
        try { OnWoken(); }
        catch (Exception e) { OnError(e); }
    }

    /// <summary>From any thread: <see cref="OnWoken"/> runs soon on the socket thread.</summary>
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
        if (_thread is null) zmq_close(Socket);
        zmq_ctx_term(_context);
        lock (_wakeLock)
        {
            _closed = true;
            LibZmq.Close(_wakeFd);
        }
    }
}
