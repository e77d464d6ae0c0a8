using Microsoft.Extensions.Logging;

namespace Sparky.Core.Logging;

/// <summary>
/// Writes each log message as one line, <c>sparky: LEVEL: message</c>, to a sink (the daemon's stderr by default): the
/// shape users and scripts read from the daemon before it logged through Microsoft.Extensions.Logging, with the level
/// added. Filtering by level and category is the logger factory's; this provider writes whatever reaches it.
/// <para><paramref name="prefix"/>: what each line starts with (<c>sparky worker</c> for a worker's).</para>
/// </summary>
public sealed class LineLoggerProvider(Action<string>? sink = null, string prefix = "sparky") : ILoggerProvider
{
    // Console.Error is synchronised: a line is written whole even when two threads log at once.
    private readonly Action<string> _sink = sink ?? Console.Error.WriteLine;

    public ILogger CreateLogger(string categoryName) => new LineLogger(categoryName, _sink, LogLevel.Trace, prefix);

    public void Dispose() { }

    /// <summary>A logger for code that was given none (a test that builds an executor alone, say): it writes what the
    /// daemon's default <c>log_level</c> would, to stderr.</summary>
    public static ILogger Fallback(string category) => new LineLogger(category, Console.Error.WriteLine, LogLevel.Information, "sparky");

    /// <summary>The short name a line carries.</summary>
    public static string LevelName(LogLevel level) => level switch
    {
        LogLevel.Trace => "trace",
        LogLevel.Debug => "debug",
        LogLevel.Information => "info",
        LogLevel.Warning => "warning",
        LogLevel.Error => "error",
        LogLevel.Critical => "critical",
        _ => level.ToString().ToLowerInvariant(),
    };

    /// <summary>One line: Sparky's own categories say their area in the message itself; another library's (ASP.NET
    /// Core's) is named, so a reader knows where it came from.</summary>
    public static string Format(string prefix, string category, LogLevel level, string message, Exception? exception)
    {
        var area = category.StartsWith("Sparky", StringComparison.Ordinal) ? "" : category + ": ";
        return $"{prefix}: {LevelName(level)}: {area}{message}{(exception is null ? "" : ": " + exception)}";
    }

    private sealed class LineLogger(string category, Action<string> sink, LogLevel least, string prefix) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= least && logLevel != LogLevel.None;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (!IsEnabled(logLevel)) return;
            sink(Format(prefix, category, logLevel, formatter(state, exception), exception));
        }
    }
}
