using NetMQ;

namespace Sparky.Server.Zmq.Transport;

/// <summary>
/// A bound NetMQ socket (managed ZeroMQ, where libzmq is not installed) and the one thread that owns it: a
/// NetMQPoller's, woken by a <see cref="NetMQQueue{T}"/>. What <see cref="NativeSocket"/> is on libzmq; each message
/// crosses more threads (bench/README.md, IPC).
/// </summary>
internal abstract class NetMqSocket<TSocket> : IDisposable where TSocket : NetMQSocket
{
    protected readonly TSocket Socket;
    private readonly NetMQQueue<bool> _wake = new();
    private readonly NetMQPoller _poller;
    private int _woken;

    public string Endpoint { get; }
    public string Library => "NetMQ";

    protected NetMqSocket(TSocket socket, string endpoint)
    {
        Socket = socket;
        Endpoint = endpoint;
        socket.ReceiveReady += (_, _) =>
        {
            try { OnReadable(); }
            catch (Exception e) { OnError(e); }
        };
        _wake.ReceiveReady += (_, _) =>
        {
            while (_wake.TryDequeue(out _, TimeSpan.Zero)) { }
            Volatile.Write(ref _woken, 0);
            try { OnWoken(); }
            catch (Exception e) { OnError(e); }
        };
        _poller = new NetMQPoller { socket, _wake };
    }

    /// <summary>Sets up and binds <paramref name="socket"/> (port 0: a free port), disposing of it if that fails.
    /// Throws InvalidOperationException with one line if it can't bind.</summary>
    protected static string Bind(TSocket socket, string endpoint, string what, NetMQCertificate? curve, Action<TSocket> configure)
    {
        try
        {
            socket.Options.Linger = TimeSpan.Zero;
            configure(socket);
            CurveKeys.Serve(socket, curve);
            return ZmqBind.Bind(socket, endpoint, what);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    protected void StartThread(string name) => _poller.RunAsync(name, isBackgroundThread: true);

    /// <summary>The socket has something to read. The socket thread.</summary>
    protected abstract void OnReadable();

    /// <summary>After <see cref="Wake"/>. The socket thread.</summary>
    protected abstract void OnWoken();

    protected abstract void OnError(Exception e);

    /// <summary>From any thread: <see cref="OnWoken"/> runs soon on the socket thread.</summary>
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
        Socket.Dispose();
        _wake.Dispose();
    }
}
