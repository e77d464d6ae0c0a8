using Sparky.Core.Config;
using System.Globalization;
using System.Net;
using NetMQ;

namespace Sparky.Server.Zmq;

/// <summary>Binding a socket to a <c>tcp://HOST:PORT</c> setting, where port 0 means "pick a free one".</summary>
public static class ZmqBind
{
    public static (string Host, int Port) Split(string endpoint)
    {
        var hostPort = endpoint["tcp://".Length..];
        int colon = hostPort.LastIndexOf(':');
        return (hostPort[..colon], int.Parse(hostPort[(colon + 1)..], CultureInfo.InvariantCulture));
    }

    public static bool IsLoopback(string endpoint) => Loopback.IsHost(Split(endpoint).Host);

    public static InvalidOperationException InUse(string endpoint, string what) =>
        new($"the ZeroMQ {what} endpoint {endpoint} is in use (another daemon?); pick another with --{(what == "command" ? "zmq" : "zmq-events")}");

    /// <summary>Binds and returns the endpoint bound, with the real port. Throws InvalidOperationException (one line) if it can't.</summary>
    public static string Bind(NetMQSocket socket, string endpoint, string what)
    {
        var (host, port) = Split(endpoint);
        if (host.StartsWith('[')) socket.Options.IPv4Only = false;
        try
        {
            if (port != 0)
            {
                socket.Bind(endpoint);
                return endpoint;
            }
            int picked = socket.BindRandomPort("tcp://" + host);
            return $"tcp://{host}:{picked}";
        }
        catch (AddressAlreadyInUseException)
        {
            throw InUse(endpoint, what);
        }
        catch (NetMQException e)
        {
            throw new InvalidOperationException($"cannot bind the ZeroMQ {what} socket to {endpoint}: {e.Message.Split('\n')[0]}");
        }
    }
}
