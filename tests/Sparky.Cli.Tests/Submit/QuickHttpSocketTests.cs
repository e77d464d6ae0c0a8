using System.Net;
using System.Net.Sockets;
using System.Text;
using Sparky.Cli.Submit;

namespace Sparky.Cli.Tests.Submit;

/// <summary>The quick path's own socket (libc's calls, Libc.cs) against a real loopback listener.</summary>
public sealed class QuickHttpSocketTests
{
    [Theory]
    [InlineData("127.0.0.1")]
    [InlineData("[::1]")]
    public async Task A_request_goes_out_whole_and_its_answer_comes_back(string host)
    {
        var address = host == "[::1]" ? IPAddress.IPv6Loopback : IPAddress.Loopback;
        if (address.AddressFamily == AddressFamily.InterNetworkV6 && !Socket.OSSupportsIPv6) return;
        using var listener = new TcpListener(address, 0);
        listener.Start();
        var uri = new Uri($"http://{host}:{((IPEndPoint)listener.LocalEndpoint).Port}/api/v1/tasks");
        var body = Encoding.UTF8.GetBytes("{\"command\":[\"true\"],\"name\":\"é\"}");
        var request = QuickHttp.Request("POST", uri, null, body);

        var server = Task.Run(async () =>
        {
            using var peer = await listener.AcceptSocketAsync();
            var got = new List<byte>();
            var buffer = new byte[1024];
            while (got.Count < request.Length)
            {
                int n = await peer.ReceiveAsync(buffer);
                if (n == 0) break;
                got.AddRange(buffer.AsSpan(0, n));
            }
            // In two pieces: the answer is read until its Content-Length is in.
            await peer.SendAsync("HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 10\r\n\r\n{\"ids\":["u8.ToArray());
            await Task.Delay(50);
            await peer.SendAsync("]}"u8.ToArray());
            return got.ToArray();
        });
        var answer = await Task.Run(() => QuickHttp.Send(uri, request, TimeSpan.FromSeconds(10)));

        Assert.Equal(request, await server);
        Assert.Equal((201, "{\"ids\":[]}"), (answer.Status, answer.Body));
    }

    [Fact]
    public void A_port_nobody_listens_on_is_not_connected_and_nothing_is_sent()
    {
        int port;
        using (var probe = new TcpListener(IPAddress.Loopback, 0))
        {
            probe.Start();
            port = ((IPEndPoint)probe.LocalEndpoint).Port;
        }
        var uri = new Uri($"http://127.0.0.1:{port}/api/v1/tasks");
        var e = Assert.Throws<QuickHttp.NotConnected>(() => QuickHttp.Send(uri, QuickHttp.Request("POST", uri, null, []), TimeSpan.FromSeconds(5)));
        Assert.Contains("refused", e.Message, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task A_daemon_that_never_answers_runs_out_the_time_limit()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var uri = new Uri($"http://127.0.0.1:{((IPEndPoint)listener.LocalEndpoint).Port}/api/v1/tasks");
        var accepted = listener.AcceptSocketAsync();
        var e = Assert.Throws<SocketException>(() => QuickHttp.Send(uri, QuickHttp.Request("POST", uri, null, []), TimeSpan.FromSeconds(1)));
        Assert.Equal(SocketError.TimedOut, e.SocketErrorCode);
        (await accepted).Dispose();
    }

    [Fact]
    public async Task A_connection_closed_before_the_answer_ends_is_an_io_error()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var uri = new Uri($"http://127.0.0.1:{((IPEndPoint)listener.LocalEndpoint).Port}/api/v1/tasks");
        var server = Task.Run(async () =>
        {
            using var peer = await listener.AcceptSocketAsync();
            await peer.SendAsync("HTTP/1.1 201 Created\r\nContent-Length: 50\r\n\r\n{\"ids\""u8.ToArray());
            peer.Shutdown(SocketShutdown.Both);
        });
        var e = Assert.Throws<IOException>(() => QuickHttp.Send(uri, QuickHttp.Request("POST", uri, null, []), TimeSpan.FromSeconds(10)));
        Assert.Contains("ended prematurely", e.Message);
        await server;
    }
}
