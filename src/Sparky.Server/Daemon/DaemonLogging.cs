using Microsoft.Extensions.Logging;
using Sparky.Core.Logging;

namespace Sparky.Server.Daemon;

/// <summary>
/// The daemon's one logger factory: every area's logger (categories are the classes' full names, so a filter on
/// <c>Sparky.Server.Intake</c> takes the drop directory and the done files) and ASP.NET Core's own, held to
/// <c>log_level</c>, written one line each by <see cref="LineLoggerProvider"/>.
/// </summary>
public static class DaemonLogging
{
    /// <param name="sink">Where the lines go; null: stderr.</param>
    public static ILoggerFactory Create(LogLevel least, Action<string>? sink = null) => LoggerFactory.Create(b =>
    {
        b.AddProvider(new LineLoggerProvider(sink));
        b.SetMinimumLevel(least);
        // ASP.NET Core logs every request and connection at information and debug: from debug on only.
        b.AddFilter("Microsoft", least <= LogLevel.Debug ? least : (LogLevel)Math.Max((int)least, (int)LogLevel.Warning));
        // A failed start is reported once, by the caller, in one line.
        b.AddFilter("Microsoft.Extensions.Hosting", LogLevel.None);
    });
}
