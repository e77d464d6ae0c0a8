using System.Globalization;
using Spectre.Console;
using Sparky.Cli.Progress;
using static Sparky.Cli.TermText;

namespace Sparky.Cli.Top;

/// <summary>
/// Draws a <see cref="TopState"/> as lines of Spectre markup, each at most <c>width</c> columns, at most
/// <c>height</c> lines: a header, the classes, the GPUs, the running tasks and the latest ends. Pure, so what a
/// screen shows is tested without a terminal. Whatever a task or the daemon controls goes through
/// <see cref="TermText.Cell"/>: shown as text, never obeyed as markup or as a terminal sequence.
/// </summary>
internal static class TopView
{
    private const int IdWidth = 13, ClassWidth = 10, ElapsedWidth = 7, OutcomeWidth = 9, ExitWidth = 10, AgoWidth = 8;

    /// <param name="snapshot">A one-off print (stdout is not a terminal): no keys to offer, every row.</param>
    public static IReadOnlyList<string> Lines(TopState s, int width, int height, DateTimeOffset now, bool snapshot = false)
    {
        width = Math.Max(width, 20);
        var lines = new List<string> { Header(s, width, now, snapshot) };
        lines.AddRange(ClassLines(s, width));
        lines.AddRange(GpuLines(s, width));

        var running = s.VisibleRunning();
        var ended = s.VisibleEnded();
        // What is left after the fixed parts and the two sections' titles and column heads goes to the rows: the
        // latest ends get a third (at least 3), the running tasks the rest, and either takes what the other leaves.
        int rows = Math.Max(0, height - lines.Count - 4);
        int endShare = Math.Min(ended.Count, Math.Max(3, rows / 3));
        int runRows = Math.Min(running.Count, Math.Max(0, rows - endShare));
        int endRows = Math.Min(ended.Count, Math.Max(0, rows - runRows));

        lines.Add(Title($"running {s.RunningCount}", running.Count, runRows, s.Filter.Length > 0));
        lines.Add(RunningHead(width));
        foreach (var r in running.Take(runRows)) lines.Add(RunningLine(r, width, now));
        lines.Add(Title("ended, latest first", ended.Count, endRows, s.Filter.Length > 0));
        lines.Add(EndedHead(width));
        foreach (var e in ended.Take(endRows)) lines.Add(EndedLine(e, width, now));
        return lines.Take(Math.Max(1, height)).Select(l => FitMarkup(l, width)).ToList();
    }

    // ---------- header ----------

    private static string Header(TopState s, int width, DateTimeOffset now, bool snapshot)
    {
        string right, rightMarkup;
        if (s.Editing)
        {
            right = $"filter: {Visible(s.Filter)}_  Enter keep · Esc clear";
            rightMarkup = $"[yellow]filter:[/] {Markup.Escape(Visible(s.Filter))}_  [grey]Enter keep · Esc clear[/]";
        }
        else
        {
            var clock = now.ToLocalTime().ToString(snapshot ? "yyyy-MM-dd HH:mm:ss" : "HH:mm:ss", CultureInfo.InvariantCulture);
            var status = snapshot ? "" : s.Problem is not null ? "stale" : s.Live ? "live" : "connecting";
            var filter = s.Filter.Length > 0 ? $"filter: {Visible(s.Filter)}  " : "";
            var keys = snapshot ? "" : s.Filter.Length > 0 ? "  / edit · Esc clear · q quit" : "  / filter · q quit";
            right = $"{filter}{status}{(status.Length > 0 ? " " : "")}{clock}{keys}";
            var statusColor = s.Problem is not null ? "yellow" : s.Live ? "green" : "grey";
            rightMarkup = (filter.Length > 0 ? $"[yellow]{Markup.Escape(filter)}[/]" : "")
                + (status.Length > 0 ? $"[{statusColor}]{status}[/] " : "") + clock + (keys.Length > 0 ? $"[grey]{Markup.Escape(keys)}[/]" : "");
        }
        if (Width(right) > width - 13)
        {
            // Too narrow for all of it: what is being typed, or the status, before the address.
            right = Clip(right, width - 13);
            rightMarkup = Markup.Escape(right);
        }
        int leftWidth = width - Width(right) - 1 - "sparky top  ".Length;
        var left = Markup.Escape(Fit(Visible(s.Problem ?? s.Server), leftWidth));
        return $"[bold]sparky top[/]  {(s.Problem is not null ? $"[yellow]{left}[/]" : left)} {rightMarkup}";
    }

    // ---------- classes ----------

    private static IEnumerable<string> ClassLines(TopState s, int width)
    {
        const int n = 9;
        int nameWidth = Math.Clamp(width - 5 * (n + 1), 8, 16);
        string Row(string name, string q, string r, string l, string ok, string bad) =>
            $"{name} {q} {r} {l} {ok} {bad}";
        yield return $"[grey]{Fit("class", nameWidth)} {Fit("queued", n, true)} {Fit("running", n, true)} {Fit("limit", n, true)} {Fit("succeeded", n, true)} {Fit("failed", n, true)}[/]";
        foreach (var c in s.Classes)
        {
            string Num(long v) => Fit(v.ToString(CultureInfo.InvariantCulture), n, true);
            var running = c.Running > 0 ? $"[blue]{Num(c.Running)}[/]" : Num(c.Running);
            long bad = c.Failed + c.Cancelled;
            var failed = bad > 0 ? $"[red]{Num(bad)}[/]" : Num(bad);
            yield return Row(Cell(c.Name, nameWidth), Num(c.Queued), running, Num(c.Limit), Num(c.Succeeded), failed);
        }
    }

    // ---------- GPUs ----------

    private static IEnumerable<string> GpuLines(TopState s, int width)
    {
        foreach (var g in s.Gpus)
        {
            var util = g.Utilization is { } u ? $"{u * 100,3:0}%" : "  ?%";
            var bar = g.Utilization is { } f ? Bar(f, 8) : Bar(0, 8);
            static string Gib(long? b) => b is { } v ? (v / (1024.0 * 1024 * 1024)).ToString("0.0", CultureInfo.InvariantCulture) : "?";
            var mem = $"{Gib(g.UsedBytes)}/{Gib(g.TotalBytes)} GiB";
            var holders = g.Holders.Count == 0 ? "idle"
                : string.Join(", ", g.Holders.Select(h => Visible(h.Id) + (h.ShareMb is { } mb ? $" ({Math.Round(mb / 1024.0, 1).ToString(CultureInfo.InvariantCulture)}G)" : "")));
            var head = $"GPU {Fit(Visible(g.Index), 2, true)} {Fit(Visible(g.Name ?? ""), 22)} {util} ";
            var tail = $" {Fit(mem, 16)} ";
            int rest = width - Width(head) - 8 - Width(tail);
            yield return $"{Markup.Escape(head)}[green]{bar}[/]{Markup.Escape(tail)}{(g.Holders.Count == 0 ? "[grey]" : "[blue]")}{Markup.Escape(Clip(holders, Math.Max(0, rest)))}[/]";
        }
    }

    // ---------- running ----------

    /// <summary>The flexible columns: the name gets two fifths of what is left (8 to 40), the last column the rest.</summary>
    private static (int Name, int Last) Flexible(int width, int fixedColumns, int columns)
    {
        int left = Math.Max(0, width - fixedColumns - (columns - 1));
        int name = Math.Clamp(left * 2 / 5, Math.Min(8, left), 40);
        return (name, Math.Max(0, left - name));
    }

    private static string RunningHead(int width)
    {
        var (name, rest) = Flexible(width, IdWidth + ClassWidth + ElapsedWidth, 5);
        return $"[grey]{Fit("id", IdWidth)} {Fit("name", name)} {Fit("class", ClassWidth)} {Fit("elapsed", ElapsedWidth, true)} {Fit("progress", rest)}[/]";
    }

    private static string RunningLine(RunningTask r, int width, DateTimeOffset now)
    {
        var (name, rest) = Flexible(width, IdWidth + ClassWidth + ElapsedWidth, 5);
        var elapsed = r.StartedAt is { } s ? RateMeter.DurationText(now - s < TimeSpan.Zero ? TimeSpan.Zero : now - s) : "";
        return $"{Cell(r.Id, IdWidth)} {Cell(r.Name, name)} {Cell(r.Class, ClassWidth)} [blue]{Fit(elapsed, ElapsedWidth, true)}[/] {ProgressCell(r.Progress, rest)}";
    }

    /// <summary>A bar (where done and total are known), then the count and the task's message, in <paramref name="width"/> columns.</summary>
    internal static string ProgressCell(TaskProgress? p, int width)
    {
        if (p is null || width <= 0) return "";
        const int barWidth = 10;
        if (p.Fraction is { } f && width >= barWidth + 4)
            return $"[green]{Bar(f, barWidth)}[/] {Cell(p.Text, width - barWidth - 1)}";
        return Cell(p.Text, width);
    }

    // ---------- ended ----------

    /// <summary>The ended tasks' name column: all that the fixed columns leave.</summary>
    private static int EndedName(int width) => Math.Max(4, width - (IdWidth + ClassWidth + OutcomeWidth + ExitWidth + ElapsedWidth + AgoWidth) - 6);

    private static string EndedHead(int width) =>
        $"[grey]{Fit("id", IdWidth)} {Fit("name", EndedName(width))} {Fit("class", ClassWidth)} {Fit("outcome", OutcomeWidth)} {Fit("exit", ExitWidth)} {Fit("took", ElapsedWidth, true)} {Fit("ended", AgoWidth, true)}[/]";

    private static string EndedLine(EndedTask e, int width, DateTimeOffset now)
    {
        int name = EndedName(width);
        var color = e.State switch { "succeeded" => "green", "failed" => "red", "cancelled" => "yellow", _ => "grey" };
        // The exit code, or the signal, unless the reason says more (a timeout, a dependency that failed, a lost worker).
        var exit = e.Reason is { } why and not ("exit_code" or "signal") ? why
            : e.ExitCode is { } code ? code.ToString(CultureInfo.InvariantCulture)
            : e.Signal is { } sig ? $"sig {sig}" : "";
        var took = e.DurationMs is { } ms ? RateMeter.DurationText(TimeSpan.FromMilliseconds(ms)) : "";
        var ago = e.EndedAt is { } at ? RateMeter.DurationText(now - at < TimeSpan.Zero ? TimeSpan.Zero : now - at) + " ago" : "";
        return $"{Cell(e.Id, IdWidth)} {Cell(e.Name, name)} {Cell(e.Class, ClassWidth)} [{color}]{Cell(e.State, OutcomeWidth)}[/] " +
            $"{Cell(exit, ExitWidth)} {Fit(took, ElapsedWidth, true)} [grey]{Fit(ago, AgoWidth, true)}[/]";
    }

    // ---------- parts ----------

    /// <summary>A section's title, with how many the filter and the height leave shown.</summary>
    private static string Title(string label, int matching, int shown, bool filtered)
    {
        var text = label;
        if (filtered) text += $", {matching} matching";
        if (shown < matching) text += $", {shown} shown";
        return $"[bold]{Markup.Escape(text)}[/]";
    }
}
