namespace Sparky.Cli;

/// <summary>A failure a user should see as one line. From a daemon's error answer it carries the HTTP status, the
/// problem's detail and its list of errors (a plan's, one per line), so callers branch on the status, not the text.</summary>
internal sealed class CliException(string message, int exitCode = 1) : Exception(message)
{
    public int ExitCode { get; } = exitCode;
    /// <summary>The daemon's HTTP status; null when the failure is not an answer of the daemon's.</summary>
    public int? Status { get; init; }
    /// <summary>The problem's <c>detail</c>, as sent (lines kept).</summary>
    public string? Detail { get; init; }
    /// <summary>The problem's <c>errors</c>, where it lists them.</summary>
    public IReadOnlyList<string> Errors { get; init; } = [];
}
