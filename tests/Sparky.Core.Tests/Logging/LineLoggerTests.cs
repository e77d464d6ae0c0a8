using Microsoft.Extensions.Logging;
using Sparky.Core.Logging;

namespace Sparky.Core.Tests.Logging;

/// <summary>The daemon's log lines: <c>sparky: LEVEL: message</c>, one per message, another library's category named.</summary>
public sealed class LineLoggerTests
{
    [Fact]
    public void A_message_is_one_line_with_its_level()
    {
        var lines = new List<string>();
        using var provider = new LineLoggerProvider(lines.Add);
        var log = provider.CreateLogger("Sparky.Server.Intake.DropDirectory");
        log.LogWarning("drop directory: {Name}: waiting", "a.json");
        log.LogInformation("serving");
        provider.CreateLogger("Microsoft.AspNetCore.Server.Kestrel").LogError("bad request");
        Assert.Equal(["sparky: warning: drop directory: a.json: waiting", "sparky: info: serving",
            "sparky: error: Microsoft.AspNetCore.Server.Kestrel: bad request"], lines);
    }

    [Fact]
    public void An_exception_follows_its_message_and_a_worker_has_its_own_prefix()
    {
        var lines = new List<string>();
        using var provider = new LineLoggerProvider(lines.Add, "sparky worker");
        provider.CreateLogger("Sparky.Workers").LogError(new InvalidOperationException("boom"), "a step failed");
        Assert.StartsWith("sparky worker: error: a step failed: System.InvalidOperationException: boom", Assert.Single(lines));
    }
}
