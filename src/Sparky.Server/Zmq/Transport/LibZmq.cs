using System.Runtime.InteropServices;

namespace Sparky.Server.Zmq.Transport;

/// <summary>
/// The few calls of libzmq (Debian's <c>libzmq5</c>, ZeroMQ 4.x) the command and event sockets use, and an eventfd to wake their
/// threads. Loaded at run time: where the library is missing (or built without CURVE where CURVE is asked for),
/// <see cref="IsUsable"/> says so and the daemon uses NetMQ instead.
/// </summary>
internal static unsafe partial class LibZmq
{
    private const string Lib = "libzmq.so.5", C = "libc";

    public const int ROUTER = 6, XPUB = 9;
    public const int RCVMORE = 13, LINGER = 17, MAXMSGSIZE = 22, SNDHWM = 23, RCVHWM = 24, LAST_ENDPOINT = 32,
        ROUTER_MANDATORY = 33, IPV6 = 42, CURVE_SERVER = 47, CURVE_SECRETKEY = 49;
    public const int DONTWAIT = 1, SNDMORE = 2;
    public const short POLLIN = 1;
    public const int EINTR = 4, EAGAIN = 11, EADDRINUSE = 98, EHOSTUNREACH = 113;
    /// <summary>ZMQ_HAUSNUMERO + 53: the context is being terminated.</summary>
    public const int ETERM = 156384712 + 53;
    public const int EFD_NONBLOCK = 0x800, EFD_CLOEXEC = 0x80000;

    /// <summary>zmq_msg_t: 64 opaque bytes.</summary>
    [StructLayout(LayoutKind.Sequential, Size = 64)]
    public struct Msg { private readonly long _first; }

    /// <summary>zmq_pollitem_t on Linux: the socket, or a file descriptor where the socket is null.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct PollItem
    {
        public nint Socket;
        public int Fd;
        public short Events;
        public short Revents;
    }

    [LibraryImport(Lib)] public static partial nint zmq_ctx_new();
    [LibraryImport(Lib)] public static partial int zmq_ctx_term(nint context);
    [LibraryImport(Lib)] public static partial nint zmq_socket(nint context, int type);
    [LibraryImport(Lib)] public static partial int zmq_close(nint socket);
    [LibraryImport(Lib)] public static partial int zmq_setsockopt(nint socket, int option, void* value, nuint size);
    [LibraryImport(Lib)] public static partial int zmq_getsockopt(nint socket, int option, void* value, nuint* size);
    [LibraryImport(Lib)] public static partial int zmq_bind(nint socket, byte* endpoint);
    [LibraryImport(Lib)] public static partial int zmq_send(nint socket, void* buffer, nuint length, int flags);
    [LibraryImport(Lib)] public static partial int zmq_msg_init(Msg* msg);
    [LibraryImport(Lib)] public static partial int zmq_msg_recv(Msg* msg, nint socket, int flags);
    [LibraryImport(Lib)] public static partial int zmq_msg_close(Msg* msg);
    [LibraryImport(Lib)] public static partial void* zmq_msg_data(Msg* msg);
    [LibraryImport(Lib)] public static partial nuint zmq_msg_size(Msg* msg);
    [LibraryImport(Lib)] public static partial int zmq_msg_more(Msg* msg);
    [LibraryImport(Lib)] public static partial int zmq_poll(PollItem* items, int count, long timeout);
    [LibraryImport(Lib)] public static partial int zmq_errno();
    [LibraryImport(Lib)] public static partial byte* zmq_strerror(int errnum);
    [LibraryImport(Lib)] public static partial int zmq_has(byte* capability);
    [LibraryImport(Lib)] public static partial void zmq_version(int* major, int* minor, int* patch);

    [LibraryImport(C, EntryPoint = "eventfd")] public static partial int EventFd(uint initial, int flags);
    [LibraryImport(C, EntryPoint = "write")] public static partial nint Write(int fd, void* buffer, nuint count);
    [LibraryImport(C, EntryPoint = "read")] public static partial nint Read(int fd, void* buffer, nuint count);
    [LibraryImport(C, EntryPoint = "close")] public static partial int Close(int fd);

    private static readonly Lazy<string?> s_version = new(LoadVersion);

    /// <summary>Null where libzmq can be used (with CURVE if <paramref name="curve"/>); else why not, in a few words.</summary>
    public static string? IsUsable(bool curve)
    {
        if (s_version.Value is null) return $"{Lib} is not installed (apt-get install libzmq5)";
        if (curve && !Has("curve")) return $"this {Lib} has no CURVE (built without libsodium)";
        return null;
    }

    /// <summary>"4.3.4", or null where the library cannot be loaded.</summary>
    public static string? Version => s_version.Value;

    private static string? LoadVersion()
    {
        if (!NativeLibrary.TryLoad(Lib, typeof(LibZmq).Assembly, null, out _)) return null;
        int major, minor, patch;
        zmq_version(&major, &minor, &patch);
        return major == 4 ? $"{major}.{minor}.{patch}" : null; // the socket options above are ZeroMQ 4's
    }

    private static bool Has(string capability)
    {
        var name = System.Text.Encoding.ASCII.GetBytes(capability + "\0");
        fixed (byte* p = name) return zmq_has(p) == 1;
    }

    public static string Error(int errno) => Marshal.PtrToStringUTF8((nint)zmq_strerror(errno)) ?? $"error {errno}";

    public static void SetInt(nint socket, int option, int value) => Check(zmq_setsockopt(socket, option, &value, sizeof(int)), option);

    public static void SetLong(nint socket, int option, long value) => Check(zmq_setsockopt(socket, option, &value, sizeof(long)), option);

    public static void SetBytes(nint socket, int option, ReadOnlySpan<byte> value)
    {
        fixed (byte* p = value) Check(zmq_setsockopt(socket, option, p, (nuint)value.Length), option);
    }

    public static string GetString(nint socket, int option)
    {
        var buffer = stackalloc byte[256];
        nuint size = 256;
        Check(zmq_getsockopt(socket, option, buffer, &size), option);
        return Marshal.PtrToStringUTF8((nint)buffer) ?? "";
    }

    private static void Check(int rc, int option)
    {
        if (rc != 0) throw new InvalidOperationException($"libzmq: option {option}: {Error(zmq_errno())}");
    }
}
