using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Sparky.Cli.Submit;

/// <summary>
/// The few libc calls of the quick submit path. In the native build they are linked directly (DirectPInvoke in
/// Sparky.csproj): resolving a P/Invoke at run time would start the runtime's reflection. System.Net.Sockets is not
/// used because its first socket starts the runtime's socket-engine thread, and waits for it to run, even for a
/// blocking socket that never uses it: 6% of a quick submit's CPU (bench/README.md, the CLI's start-up).
/// </summary>
internal static class Libc
{
    private const int EINTR = 4, EAGAIN = 11, ETIMEDOUT = 110;
    private const int AF_INET = 2, AF_INET6 = 10, SOCK_STREAM = 1, SOCK_CLOEXEC = 0x80000;
    private const int SOL_SOCKET = 1, SO_RCVTIMEO = 20, SO_SNDTIMEO = 21, IPPROTO_TCP = 6, TCP_NODELAY = 1;
    private const int MSG_NOSIGNAL = 0x4000; // a closed connection is an error to report, not a SIGPIPE

    static Libc()
    {
        // The JIT build (sparky.dll under dotnet) has no link step: "libc" is found as glibc's file (libc.so is often
        // a linker script or absent). Native AOT binds the calls at link time, and this branch is not compiled in.
        if (RuntimeFeature.IsDynamicCodeSupported)
            NativeLibrary.SetDllImportResolver(typeof(Libc).Assembly,
                (name, _, _) => name == "libc" && NativeLibrary.TryLoad("libc.so.6", out var handle) ? handle : 0);
    }

    /// <summary>Writes all of <paramref name="bytes"/> to a file descriptor; false on an error other than EINTR (a
    /// closed pipe, which callers treat as Console does: not an error).</summary>
    public static bool WriteAll(int fd, ReadOnlySpan<byte> bytes)
    {
        while (!bytes.IsEmpty)
        {
            nint n = Write(fd, ref MemoryMarshal.GetReference(bytes), bytes.Length);
            if (n > 0) bytes = bytes[(int)n..];
            else if (Marshal.GetLastPInvokeError() != EINTR) return false;
        }
        return true;
    }

    /// <summary>A blocking TCP socket connected to <paramref name="address"/>, with the kernel's send and receive
    /// time limits (SO_SNDTIMEO, SO_RCVTIMEO); null when it could not connect, with the reason.</summary>
    public static int? Connect(IPAddress address, int port, TimeSpan timeout, out string? failure)
    {
        failure = null;
        bool v6 = address.AddressFamily == AddressFamily.InterNetworkV6;
        int family = v6 ? AF_INET6 : AF_INET;
        int fd = Socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
        {
            failure = Marshal.GetPInvokeErrorMessage(Marshal.GetLastPInvokeError());
            return null;
        }
        // struct timeval { long tv_sec; long tv_usec; } on 64-bit Linux.
        Span<byte> tv = stackalloc byte[16];
        tv.Clear();
        BinaryPrimitives.WriteInt64LittleEndian(tv, (long)timeout.TotalSeconds);
        Span<byte> one = [1, 0, 0, 0];
        SetSockOpt(fd, SOL_SOCKET, SO_RCVTIMEO, ref tv[0], tv.Length);
        SetSockOpt(fd, SOL_SOCKET, SO_SNDTIMEO, ref tv[0], tv.Length);
        SetSockOpt(fd, IPPROTO_TCP, TCP_NODELAY, ref one[0], one.Length);
        // struct sockaddr_in (16 bytes) or sockaddr_in6 (28): the family in the host's order (little-endian on both
        // architectures built), the port and address in network order.
        Span<byte> sa = stackalloc byte[v6 ? 28 : 16];
        sa.Clear();
        BinaryPrimitives.WriteUInt16LittleEndian(sa, (ushort)family);
        BinaryPrimitives.WriteUInt16BigEndian(sa[2..], (ushort)port);
        if (v6)
        {
            address.TryWriteBytes(sa.Slice(8, 16), out _);
            BinaryPrimitives.WriteUInt32LittleEndian(sa[24..], (uint)address.ScopeId);
        }
        else address.TryWriteBytes(sa.Slice(4, 4), out _);
        if (ConnectTo(fd, ref sa[0], sa.Length) != 0)
        {
            // Interrupted too (EINTR): nothing was sent, and the caller's fallback tries again.
            failure = Marshal.GetPInvokeErrorMessage(Marshal.GetLastPInvokeError());
            Close(fd);
            return null;
        }
        return fd;
    }

    /// <summary>Sends all of <paramref name="data"/>; a <see cref="SocketException"/> (TimedOut) when the time limit
    /// ran out, an <see cref="IOException"/> on another error.</summary>
    public static void SendAll(int fd, ReadOnlySpan<byte> data)
    {
        while (!data.IsEmpty)
        {
            nint n = Send(fd, ref MemoryMarshal.GetReference(data), data.Length, MSG_NOSIGNAL);
            if (n >= 0) data = data[(int)n..];
            else Fail();
        }
    }

    /// <summary>Reads what has come, 0 at the end of the connection; errors as <see cref="SendAll"/>.</summary>
    public static int Receive(int fd, Span<byte> into)
    {
        while (true)
        {
            nint n = Recv(fd, ref MemoryMarshal.GetReference(into), into.Length, 0);
            if (n >= 0) return (int)n;
            Fail();
        }
    }

    private static void Fail()
    {
        int errno = Marshal.GetLastPInvokeError();
        if (errno == EINTR) return;
        if (errno is EAGAIN or ETIMEDOUT) throw new SocketException((int)SocketError.TimedOut);
        throw new IOException(Marshal.GetPInvokeErrorMessage(errno));
    }

    [DllImport("libc", EntryPoint = "write", SetLastError = true)]
    private static extern nint Write(int fd, ref byte buffer, nint count);

    [DllImport("libc", EntryPoint = "socket", SetLastError = true)]
    private static extern int Socket(int domain, int type, int protocol);

    [DllImport("libc", EntryPoint = "setsockopt", SetLastError = true)]
    private static extern int SetSockOpt(int fd, int level, int name, ref byte value, int length);

    [DllImport("libc", EntryPoint = "connect", SetLastError = true)]
    private static extern int ConnectTo(int fd, ref byte address, int length);

    [DllImport("libc", EntryPoint = "send", SetLastError = true)]
    private static extern nint Send(int fd, ref byte buffer, nint count, int flags);

    [DllImport("libc", EntryPoint = "recv", SetLastError = true)]
    private static extern nint Recv(int fd, ref byte buffer, nint count, int flags);

    [DllImport("libc", EntryPoint = "close")]
    public static extern int Close(int fd);
}
