using System.Net;
using System.Net.Sockets;
using Sparky.Execution.Host;

namespace Sparky.Execution.Tests.Host;

public sealed class PortProbeTests
{
    [Fact]
    public void A_listening_port_is_taken_and_free_once_closed()
    {
        int port;
        using (var listener = new TcpListener(IPAddress.Loopback, 0))
        {
            listener.Start();
            port = ((IPEndPoint)listener.LocalEndpoint).Port;
            Assert.False(PortProbe.IsFree(port));
        }
        Assert.True(PortProbe.IsFree(port));
    }

    [Fact]
    public void A_port_whose_connection_lingers_in_time_wait_is_taken()
    {
        // The server side closes first, so its port (the rendezvous port) is left in TIME_WAIT.
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        using var client = new TcpClient();
        client.Connect(IPAddress.Loopback, port);
        using (var served = listener.AcceptSocket()) served.Close();
        listener.Stop();
        Thread.Sleep(50);
        client.Close();
        Assert.False(PortProbe.IsFree(port));
    }
}
