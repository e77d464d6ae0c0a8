using Sparky.Core.Config;

namespace Sparky.Core.Tests.Config;

public sealed class LoopbackTests
{
    [Theory]
    [InlineData("localhost", true)]
    [InlineData("LOCALHOST", true)]
    [InlineData("127.0.0.1", true)]
    [InlineData("127.9.8.7", true)]
    [InlineData("::1", true)]
    [InlineData("[::1]", true)]
    [InlineData("0.0.0.0", false)]
    [InlineData("[::]", false)]
    [InlineData("192.168.1.10", false)]
    [InlineData("localhost.example.org", false)]
    [InlineData("", false)]
    public void Names_loopback_and_nothing_else(string host, bool expected) => Assert.Equal(expected, Loopback.IsHost(host));

    // A request's Host: loopback's names, and names under .localhost (RFC 6761); never a name that merely contains them.
    [Theory]
    [InlineData("localhost", true)]
    [InlineData("api.localhost", true)]
    [InlineData("API.LOCALHOST", true)]
    [InlineData("127.0.0.1", true)]
    [InlineData("[::1]", true)]
    [InlineData("attacker.example", false)]
    [InlineData("localhost.attacker.example", false)]
    [InlineData("attacker-localhost", false)]
    [InlineData("0.0.0.0", false)]
    public void A_request_host_is_loopback_or_under_localhost(string host, bool expected) => Assert.Equal(expected, Loopback.IsRequestHost(host));
}
