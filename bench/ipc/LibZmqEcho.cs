using System.Runtime.InteropServices;
using System.Text;

/// <summary>
/// The floor: a bare libzmq ROUTER that sends every message back as it came, in a process of its own, with none of the
/// daemon's code. Its round trip from the same DEALER is what libzmq, the loopback and this machine's wake-ups cost;
/// the daemon's `ping` above it is Sparky's share. Two loops: a blocking receive (libzmq's fastest), and the daemon's
/// own shape (zmq_poll on the socket and an eventfd, then non-blocking reads until none is left).
/// </summary>
internal static unsafe class LibZmqEcho
{
    private const string Lib = "libzmq.so.5";
    private const int Router = 6, OptLinger = 17, OptLastEndpoint = 32, SendMore = 2, DontWait = 1;
    private const short PollIn = 1;

    [StructLayout(LayoutKind.Sequential, Size = 64)] private struct Msg { private readonly long _first; }
    [StructLayout(LayoutKind.Sequential)] private struct PollItem { public nint Socket; public int Fd; public short Events; public short Revents; }

    [DllImport(Lib)] private static extern nint zmq_ctx_new();
    [DllImport(Lib)] private static extern nint zmq_socket(nint ctx, int type);
    [DllImport(Lib)] private static extern int zmq_setsockopt(nint socket, int option, void* value, nuint size);
    [DllImport(Lib)] private static extern int zmq_getsockopt(nint socket, int option, void* value, nuint* size);
    [DllImport(Lib)] private static extern int zmq_bind(nint socket, byte[] endpoint);
    [DllImport(Lib)] private static extern int zmq_msg_init(Msg* msg);
    [DllImport(Lib)] private static extern int zmq_msg_recv(Msg* msg, nint socket, int flags);
    [DllImport(Lib)] private static extern int zmq_msg_send(Msg* msg, nint socket, int flags);
    [DllImport(Lib)] private static extern int zmq_msg_more(Msg* msg);
    [DllImport(Lib)] private static extern int zmq_poll(PollItem* items, int count, long timeout);
    [DllImport("libc")] private static extern int eventfd(uint initial, int flags);

    /// <summary>Binds on a free loopback port, prints the endpoint, and echoes until killed.</summary>
    public static int Serve(bool poll)
    {
        var ctx = zmq_ctx_new();
        var socket = zmq_socket(ctx, Router);
        int zero = 0;
        zmq_setsockopt(socket, OptLinger, &zero, sizeof(int));
        if (zmq_bind(socket, Encoding.ASCII.GetBytes("tcp://127.0.0.1:*\0")) != 0) return 1;
        var endpoint = stackalloc byte[256];
        nuint size = 256;
        zmq_getsockopt(socket, OptLastEndpoint, endpoint, &size);
        Console.WriteLine(Marshal.PtrToStringUTF8((nint)endpoint));
        Console.Out.Flush();
        Msg msg;
        zmq_msg_init(&msg);
        var items = stackalloc PollItem[2];
        items[0] = new PollItem { Socket = socket, Events = PollIn };
        items[1] = new PollItem { Fd = eventfd(0, 0x800), Events = PollIn }; // never written: the daemon's wake-up fd, idle
        while (true)
        {
            if (poll && zmq_poll(items, 2, -1) < 0) continue;
            // One message, frame by frame, each sent back as it came (the routing id first routes the reply).
            while (zmq_msg_recv(&msg, socket, poll ? DontWait : 0) >= 0)
            {
                bool more = zmq_msg_more(&msg) != 0;
                zmq_msg_send(&msg, socket, more ? SendMore : 0);
                if (!more && !poll) break;
            }
        }
    }
}
