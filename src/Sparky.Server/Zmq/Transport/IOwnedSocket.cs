namespace Sparky.Server.Zmq.Transport;

/// <summary>
/// A bound ZeroMQ socket and the one thread that owns it, whichever kind (<see cref="IRouter"/>, the command socket's;
/// <see cref="IPublisher"/>, the event socket's) and whichever library (libzmq's or NetMQ's).
/// </summary>
internal interface IOwnedSocket : IDisposable
{
    /// <summary>The endpoint bound, with the real port.</summary>
    string Endpoint { get; }

    /// <summary>Which ZeroMQ serves it, for the log: "libzmq 4.3.4" or "NetMQ".</summary>
    string Library { get; }

    /// <summary>From any thread: the handler's <c>OnWake</c> runs soon on the socket thread.</summary>
    void Wake();
}
