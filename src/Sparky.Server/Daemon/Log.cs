using Microsoft.Extensions.Logging;

namespace Sparky.Server.Daemon;

/// <summary>What the daemon's host logs (event ids 1000-1099).</summary>
internal static partial class DaemonLog
{
    /// <summary>The line a start ends with, once every door is open.</summary>
    [LoggerMessage(1001, LogLevel.Information, "serving on {Url}, zmq {Zmq}, events {Events} ({Details}){Key}")]
    public static partial void Serving(ILogger logger, string url, string zmq, string events, string details, string key);

    [LoggerMessage(1002, LogLevel.Warning, "GPU sampling: {Error}")]
    public static partial void GpuSamplingFailed(ILogger logger, string error);

    [LoggerMessage(1003, LogLevel.Warning, "max_connections {Configured} is over what RLIMIT_NOFILE ({Files}) leaves room for; using {Used}")]
    public static partial void MaxConnectionsLowered(ILogger logger, int configured, long files, int used);
}
