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
}
