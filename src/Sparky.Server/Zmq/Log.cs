using Microsoft.Extensions.Logging;

namespace Sparky.Server.Zmq;

/// <summary>What the ZeroMQ sockets log (event ids 1500-1599). The command socket's messages (1550-1559) are defined
/// here for its conversion; nothing calls them yet.</summary>
internal static partial class ZmqLog
{
    [LoggerMessage(1501, LogLevel.Error, "zmq event socket: {Kind}: {Error}")]
    public static partial void EventSocketFailed(ILogger logger, string kind, string error);

    [LoggerMessage(1502, LogLevel.Error, "zmq event {Topic}: {Error}")]
    public static partial void EventNotEncoded(ILogger logger, string topic, string error);

    [LoggerMessage(1503, LogLevel.Debug, "zmq event socket on {Library}")]
    public static partial void EventsOnLibZmq(ILogger logger, string library);

    [LoggerMessage(1504, LogLevel.Debug, "zmq event socket on NetMQ ({Why})")]
    public static partial void EventsOnNetMq(ILogger logger, string why);

    [LoggerMessage(1510, LogLevel.Warning, "zmq keys: {Error} (its keys are not accepted)")]
    public static partial void KeyListUnreadable(ILogger logger, string error);

    // ---- the command socket (CommandSocket.cs) ----

    [LoggerMessage(1550, LogLevel.Error, "zmq command socket: {Kind}: {Error}")]
    public static partial void CommandSocketFailed(ILogger logger, string kind, string error);

    [LoggerMessage(1552, LogLevel.Debug, "zmq command socket on {Library}")]
    public static partial void CommandOnLibZmq(ILogger logger, string library);

    /// <summary>Told at start: the command socket is on NetMQ, slower (bench/README.md, IPC), and why.</summary>
    [LoggerMessage(1553, LogLevel.Information, "zmq command socket on NetMQ ({Why})")]
    public static partial void CommandOnNetMq(ILogger logger, string why);

    /// <summary>A request whose handler threw: the client is answered 500.</summary>
    [LoggerMessage(1551, LogLevel.Error, "zmq {Request}: the handler failed")]
    public static partial void RequestFailed(ILogger logger, string request, Exception exception);
}
