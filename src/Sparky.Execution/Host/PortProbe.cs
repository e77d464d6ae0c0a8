using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Sparky.Execution.Host;

/// <summary>Whether a TCP port on this host is free for a task's server: no socket of any state uses it (a
/// connection lingering in TIME_WAIT makes a bind without SO_REUSEADDR fail), and binding it on every address works.</summary>
public static class PortProbe
{
    public static bool IsFree(int port) => !InProcNet(port) && Binds(port);

    /// <summary>.NET sets SO_REUSEADDR on every TCP socket it binds, which would call a port in TIME_WAIT free; a socket
    /// made with no protocol named gets the plain kernel bind, as a task's server does.</summary>
    private static bool Binds(int port)
    {
        try
        {
            using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Unspecified);
            socket.Bind(new IPEndPoint(IPAddress.Any, port));
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    /// <summary>Any socket, listening, connected or closing, whose local port is <paramref name="port"/>.</summary>
    private static bool InProcNet(int port)
    {
        var hex = ":" + port.ToString("X4", CultureInfo.InvariantCulture) + " ";
        foreach (var table in new[] { "/proc/net/tcp", "/proc/net/tcp6" })
        {
            try
            {
                // "  sl  local_address rem_address st ...": the local address is the second field.
                foreach (var line in File.ReadLines(table).Skip(1))
                {
                    var fields = line.Split(' ', 3, StringSplitOptions.RemoveEmptyEntries);
                    if (fields.Length >= 2 && (fields[1] + " ").EndsWith(hex, StringComparison.Ordinal)) return true;
                }
            }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
        }
        return false;
    }
}
