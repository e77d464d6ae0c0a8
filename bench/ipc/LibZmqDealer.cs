using System.Runtime.InteropServices;
using System.Text;
using NetMQ;

/// <summary>
/// A DEALER on libzmq (Debian's libzmq5), as pyzmq and most clients outside .NET use: the round trip a client with
/// a native ZeroMQ sees, apart from NetMQ's own cost on the client's side.
/// </summary>
internal sealed class LibZmqDealer : IDealer
{
    private const string Lib = "libzmq.so.5";
    private const int Dealer = 5, OptLinger = 17, OptRcvTimeout = 27, OptCurvePublic = 48, OptCurveSecret = 49, OptCurveServerKey = 50;
    private const int SendMore = 2, Again = 11;

    [DllImport(Lib)] private static extern nint zmq_ctx_new();
    [DllImport(Lib)] private static extern int zmq_ctx_term(nint ctx);
    [DllImport(Lib)] private static extern nint zmq_socket(nint ctx, int type);
    [DllImport(Lib)] private static extern int zmq_close(nint socket);
    [DllImport(Lib)] private static extern int zmq_setsockopt(nint socket, int option, byte[] value, nuint size);
    [DllImport(Lib)] private static extern int zmq_connect(nint socket, byte[] endpoint);
    [DllImport(Lib)] private static extern int zmq_send(nint socket, byte[] buffer, nuint length, int flags);
    [DllImport(Lib)] private static extern int zmq_recv(nint socket, byte[] buffer, nuint length, int flags);
    [DllImport(Lib)] private static extern int zmq_errno();

    private readonly nint _ctx, _socket;
    private readonly byte[] _in = new byte[1 << 20];
    private int _timeoutMs = -1;

    /// <summary>Whether libzmq can be loaded here.</summary>
    public static bool Available => NativeLibrary.TryLoad(Lib, out _);

    public LibZmqDealer(string endpoint, string? serverKey)
    {
        _ctx = zmq_ctx_new();
        _socket = zmq_socket(_ctx, Dealer);
        Option(OptLinger, BitConverter.GetBytes(0));
        if (serverKey is not null)
        {
            var mine = new NetMQCertificate(); // a key pair; libzmq takes the 32-byte keys as they are
            Option(OptCurveServerKey, NetMQCertificate.FromPublicKey(serverKey).PublicKey);
            Option(OptCurvePublic, mine.PublicKey);
            Option(OptCurveSecret, mine.SecretKey);
        }
        if (zmq_connect(_socket, Encoding.ASCII.GetBytes(endpoint + "\0")) != 0) throw new InvalidOperationException($"zmq_connect {endpoint}: errno {zmq_errno()}");
    }

    private void Option(int option, byte[] value)
    {
        if (zmq_setsockopt(_socket, option, value, (nuint)value.Length) != 0) throw new InvalidOperationException($"zmq_setsockopt {option}: errno {zmq_errno()}");
    }

    public void Send(byte[] frame)
    {
        if (zmq_send(_socket, [], 0, SendMore) < 0 || zmq_send(_socket, frame, (nuint)frame.Length, 0) < 0)
            throw new InvalidOperationException($"zmq_send: errno {zmq_errno()}");
    }

    public byte[] Receive(TimeSpan timeout)
    {
        int ms = (int)timeout.TotalMilliseconds;
        if (ms != _timeoutMs) Option(OptRcvTimeout, BitConverter.GetBytes(_timeoutMs = ms));
        int empty = zmq_recv(_socket, _in, (nuint)_in.Length, 0);
        int n = empty < 0 ? -1 : zmq_recv(_socket, _in, (nuint)_in.Length, 0);
        if (n < 0) throw zmq_errno() == Again ? new TimeoutException($"no reply within {timeout.TotalSeconds} s") : new InvalidOperationException($"zmq_recv: errno {zmq_errno()}");
        if (empty != 0 || n > _in.Length) throw new InvalidOperationException($"unexpected reply frames ({empty} then {n} bytes)");
        return _in.AsSpan(0, n).ToArray();
    }

    public void Dispose()
    {
        zmq_close(_socket);
        zmq_ctx_term(_ctx);
    }
}
