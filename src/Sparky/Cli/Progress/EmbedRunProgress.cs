using System.Globalization;
using System.Text.Json.Nodes;
using Sparky.Embeddings.Client.Input;
using Sparky.Embeddings.Client.Jobs;

namespace Sparky.Cli.Progress;

/// <summary>
/// How <c>sparky embed run</c> shows its progress, chosen by where it runs: as a Sparky task (<c>$SPARKY_TASK_ID</c>
/// set), <c>__SPARKY_PROGRESS__</c> lines on stdout, which the daemon reads (at most one a second, and the last); on a
/// terminal, one live line on stderr; otherwise a plain line on stderr every few seconds. Notes (a retry, a skipped
/// line) go to stderr as lines of their own.
/// </summary>
internal sealed class EmbedRunProgress
{
    public enum Mode { Task, Live, Lines }

    private readonly Mode _mode;
    private readonly string _title;
    private readonly RateMeter _rate = new();
    private readonly LineThrottle _throttle;
    private readonly Lock _lock = new();
    private DateTimeOffset _lastDraw = DateTimeOffset.MinValue;
    private JobProgress _last;
    private bool _drawn;

    public EmbedRunProgress(Mode mode, ShardSpec shard)
    {
        _mode = mode;
        _title = shard.IsWhole ? "embedding" : $"embedding shard {shard}";
        _throttle = new LineThrottle(mode == Mode.Lines ? TimeSpan.FromSeconds(5) : TimeSpan.FromSeconds(1));
    }

    public static EmbedRunProgress ForThisProcess(ShardSpec shard) => new(
        Environment.GetEnvironmentVariable("SPARKY_TASK_ID") is { Length: > 0 } ? Mode.Task : Console.IsErrorRedirected ? Mode.Lines : Mode.Live, shard);

    /// <summary>"12800/50000 lines, 12790 vectors, 850/s, ETA 44s": what every mode shows.</summary>
    public static string Text(JobProgress p, double? perSecond, TimeSpan? eta)
    {
        var parts = new List<string> { $"{p.LinesDone}/{p.LinesTotal} lines", $"{p.Rows} vectors" };
        if (p.Skipped > 0) parts.Add($"{p.Skipped} skipped");
        if (p.Retries > 0) parts.Add($"{p.Retries} retried");
        if (perSecond is { } rate) parts.Add(RateMeter.RateText(rate));
        if (eta is { } e && e > TimeSpan.Zero) parts.Add("ETA " + RateMeter.DurationText(e));
        return string.Join(", ", parts);
    }

    /// <summary>The progress line a Sparky task prints (SPEC §3): lines of the shard done of all, and what they are.</summary>
    public static string MarkerLine(JobProgress p, string message) => Sparky.Core.Tasks.TaskProgress.Marker + new JsonObject
    {
        ["done"] = p.LinesDone, ["total"] = p.LinesTotal, ["message"] = Sparky.Core.Tasks.TaskProgress.Clean(message),
    }.ToJsonString();

    public void Show(JobProgress p)
    {
        lock (_lock)
        {
            var now = DateTimeOffset.UtcNow;
            _last = p;
            _rate.Add(now, p.LinesDone);
            Draw(now, final: false);
        }
    }

    private void Draw(DateTimeOffset now, bool final)
    {
        var p = _last;
        var rate = _rate.PerSecond(now);
        var text = Text(p, rate, _rate.Eta(p.LinesTotal - p.LinesDone, now));
        switch (_mode)
        {
            case Mode.Task:
                // No rate in it: the daemon shows its own, and the last line is then the same as the last one sent.
                var message = $"{_title}: {p.Rows} vectors" + (p.Skipped > 0 ? $", {p.Skipped} lines skipped" : "");
                if (_throttle.Next(p.LinesDone.ToString(CultureInfo.InvariantCulture), MarkerLine(p, message), now, final) is { } marker)
                    Console.Out.WriteLine(marker);
                break;
            case Mode.Lines:
                if (_throttle.Next(p.LinesDone.ToString(CultureInfo.InvariantCulture), $"{_title}: {text}", now, final) is { } line)
                    Console.Error.WriteLine(line);
                break;
            default:
                if (!final && now - _lastDraw < TimeSpan.FromMilliseconds(100)) return;
                _lastDraw = now;
                Console.Error.Write($"\r\u001b[K{_title}: {text}");
                _drawn = true;
                break;
        }
    }

    /// <summary>A note on a line of its own (its text is the input's or the server's: shown, never obeyed).</summary>
    public void Log(string note)
    {
        lock (_lock)
        {
            if (_drawn) Console.Error.Write("\r\u001b[K");
            _drawn = false;
            Console.Error.WriteLine("sparky: " + TermText.Visible(note));
        }
    }

    /// <summary>The last progress, whatever the throttle, and the live line ended.</summary>
    public void End()
    {
        lock (_lock)
        {
            if (_last.LinesTotal > 0 || _last.LinesDone > 0) Draw(DateTimeOffset.UtcNow, final: true);
            if (_mode == Mode.Live && _drawn) Console.Error.WriteLine();
            _drawn = false;
        }
    }
}
