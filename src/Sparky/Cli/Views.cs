using System.Text.Json.Nodes;
using Spectre.Console;

namespace Sparky.Cli;

/// <summary>Tables and lines for people; <c>--json</c> bypasses all of this.</summary>
internal static class Views
{
    public static void TaskTable(IEnumerable<JsonNode?> tasks)
    {
        var list = tasks.OfType<JsonNode>().ToList();
        // A progress column only where a task reported some: other tables keep their width.
        bool progress = list.Any(t => t["progress"] is JsonObject);
        // A nodes column likewise, only where a task asked for nodes (or GPUs per node, whole nodes, a port).
        bool nodes = list.Any(t => TaskText.Nodes(t) is not null);
        var table = new Table().Border(TableBorder.Rounded);
        foreach (var h in new[] { "id", "name", "class", "state", "runtime", "exit", "tries", "where" }) table.AddColumn(new TableColumn(h).NoWrap());
        if (nodes) table.AddColumn(new TableColumn("nodes").NoWrap());
        if (progress) table.AddColumn(new TableColumn("progress").NoWrap());
        table.AddColumn("command");
        foreach (var t in list)
        {
            var cells = new List<string>
            {
                Esc(t["id"]), Esc(t["name"]), Esc(t["class"]), State((string?)t["state"], (string?)t["reason"]),
                Esc(Runtime(t)), Esc(t["exit_code"] ?? (t["signal"] is { } sig ? "sig " + sig : null)),
                Esc(t["attempts"]), Esc(Where(t)),
            };
            if (nodes) cells.Add(Esc(TaskText.Nodes(t)));
            if (progress) cells.Add(Esc(ProgressText(t["progress"] as JsonObject, Bars, 36)));
            cells.Add(Esc(Clip(CommandText(t), 32)));
            table.AddRow(cells.ToArray());
        }
        AnsiConsole.Write(table);
    }

    /// <summary>Bars on a terminal that shows Unicode; plain text (a percent) in a pipe or a file.</summary>
    public static bool Bars => !Console.IsOutputRedirected && AnsiConsole.Profile.Capabilities.Unicode;

    /// <summary>
    /// A task's progress in at most <paramref name="width"/> characters: how far (a bar and a percent where it gave done
    /// and total, <c>5%</c> without the bar, <c>5</c> or <c>?/100</c> where it gave one of them) and its last message,
    /// cut to fit. Null where it reported none. The message is the task's text: the caller escapes it.
    /// </summary>
    public static string? ProgressText(JsonObject? p, bool bar, int width = 60)
    {
        if (p is null) return null;
        double? done = Number(p["done"]), total = Number(p["total"]);
        string? message = p["message"] is JsonValue m && m.TryGetValue<string>(out var text) ? Sparky.Core.Tasks.TaskProgress.Clean(text) : null;
        string how = (done, total) switch
        {
            ({ } d, { } t and > 0) => (bar ? Bar(d / t) + " " : "") + $"{Math.Floor(Math.Clamp(d / t, 0, 1) * 100):0}%",
            ({ } d, _) => Count(d),
            (null, { } t) => "?/" + Count(t),
            _ => "",
        };
        if (message is null or "") return how;
        var line = how.Length == 0 ? message : how + " " + message;
        return Clip(line, width);
    }

    private static double? Number(JsonNode? n) => n is JsonValue v && v.TryGetValue<double>(out var d) && double.IsFinite(d) ? d : null;

    private static string Count(double v) => v.ToString("0.###", System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>Eight cells, each in eighths: <c>███▌░░░░</c>.</summary>
    private static string Bar(double fraction)
    {
        const int Cells = 8;
        int eighths = (int)Math.Floor(Math.Clamp(fraction, 0, 1) * Cells * 8);
        var sb = new System.Text.StringBuilder(Cells);
        for (int i = 0; i < Cells; i++)
        {
            int fill = Math.Clamp(eighths - i * 8, 0, 8);
            sb.Append(fill switch { 8 => '█', 0 => '░', _ => " ▏▎▍▌▋▊▉"[fill] });
        }
        return sb.ToString();
    }

    /// <summary>The host, or for a Slurm job its job id and Slurm state (and node once it runs).</summary>
    private static string? Where(JsonNode t) => t["slurm"] is { } s
        ? $"slurm {(string?)s["job_id"]} {(string?)s["state"]}" + (s["node"] is { } n ? $" on {n}" : "")
        : (string?)t["host"];

    public static void GpuTable(JsonObject found)
    {
        var gpus = (JsonArray)found["gpus"]!;
        if (gpus.Count == 0)
        {
            AnsiConsole.MarkupLine("[grey]no GPU found[/] (tried: " + Esc(string.Join("; ", ((JsonArray)found["problems"]!).Select(x => (string?)x))) + ")");
            return;
        }
        var table = new Table().Border(TableBorder.Rounded).AddColumns("#", "name", "uuid", "memory used / total", "util", "temp", "bus");
        static string Gib(JsonNode? b) => b is null ? "?" : $"{(long)b / (1024.0 * 1024 * 1024):0.0}";
        foreach (var g in gpus)
        {
            var mem = $"{Gib(g!["memory_used_bytes"])} / {Gib(g["memory_total_bytes"])} GiB" + ((bool)g["unified_memory"]! ? " (host's, unified)" : "");
            table.AddRow(Esc(g["index"]), Esc(g["name"]), Esc(g["uuid"]), Esc(mem),
                Esc(g["utilization"] is { } u ? $"{(double)u:P0}" : "?"), Esc(g["temperature_c"] is { } t ? $"{t} °C" : "?"), Esc(g["pci_bus_id"]));
        }
        AnsiConsole.Write(table);
        AnsiConsole.MarkupLine($"[grey]found by {Esc(found["source"])}[/]");
    }

    public static void TaskDetail(JsonNode t)
    {
        var grid = new Grid().AddColumn().AddColumn();
        void Row(string k, string? v) => grid.AddRow(new Markup($"[grey]{k}[/]"), new Markup(v ?? "-"));
        Row("id", Esc(t["id"]));
        Row("name", Esc(t["name"]));
        Row("class", Esc(t["class"]));
        Row("state", State((string?)t["state"], (string?)t["reason"]));
        Row("command", Esc(CommandText(t)));
        if (TaskText.Nodes(t) is { } asked) Row("nodes", Esc(asked));
        Row("exit code", Esc(t["exit_code"]));
        Row("signal", Esc(t["signal"]));
        Row("attempts", $"{Esc(t["attempts"])} (retries allowed: {Esc(t["retries"])})");
        Row("submitted", Esc(t["submitted_at"]));
        Row("started", Esc(t["started_at"]));
        Row("finished", Esc(t["finished_at"]));
        Row("runtime", Esc(Runtime(t)));
        if (t["result"] is { } r) Row("result", Esc(r.ToJsonString()));
        if (t["result_error"] is { } re) Row("result error", Esc(re));
        if (t["artifacts"] is JsonObject art) Row("artifacts", Esc(ArtifactsText(art)));
        if (t["progress"] is JsonObject progress)
            Row("progress", Esc(ProgressText(progress, Bars, 240)) + (progress["updated_at"] is { } at ? $" [grey](at {Esc(at)})[/]" : ""));
        AnsiConsole.Write(grid);
        if (t["attempt_list"] is JsonArray attempts && attempts.Count > 0)
        {
            var table = new Table().Border(TableBorder.Simple).AddColumns("attempt", "started", "ended", "exit", "signal", "pid", "host", "slurm job", "cpu", "peak mem", "outcome", "reason");
            foreach (var a in attempts)
                table.AddRow(Esc(a?["n"]), Esc(a?["started_at"]), Esc(a?["ended_at"]), Esc(a?["exit_code"]), Esc(a?["signal"]), Esc(a?["pid"]), Esc(a?["host"]), Esc(a?["slurm_job_id"]),
                    Esc(CpuText((long?)a?["cpu_ms"])), Esc(BytesText((long?)a?["mem_peak_bytes"])), Esc(a?["outcome"]), Esc(a?["reason"]));
            AnsiConsole.Write(table);
        }
    }

    /// <summary>An attempt's CPU time ("1.25 s"); empty where it is not known.</summary>
    public static string? CpuText(long? ms) => ms is { } v ? (v / 1000.0).ToString("0.00", System.Globalization.CultureInfo.InvariantCulture) + " s" : null;

    /// <summary>A size in binary units ("12.3 MiB"); empty where it is not known.</summary>
    public static string? BytesText(long? bytes)
    {
        if (bytes is not { } b) return null;
        string[] units = ["B", "KiB", "MiB", "GiB", "TiB"];
        double v = b;
        int u = 0;
        for (; v >= 1024 && u < units.Length - 1; u++) v /= 1024;
        return (u == 0 ? b.ToString(System.Globalization.CultureInfo.InvariantCulture) : v.ToString("0.0", System.Globalization.CultureInfo.InvariantCulture)) + " " + units[u];
    }

    /// <summary>One line per declared output: its size and checksum, or missing, or why not; pending or skipped as a whole.</summary>
    public static string ArtifactsText(JsonObject artifacts)
    {
        var state = (string?)artifacts["state"];
        var lines = new List<string>();
        if (state == "pending") lines.Add("pending (being hashed)");
        if (state == "skipped") lines.Add("skipped: " + (string?)artifacts["reason"]);
        foreach (var o in artifacts["outputs"] as JsonArray ?? [])
        {
            if (o is null) continue;
            var what = state != "recorded" ? ""
                : o["missing"] is not null ? " missing"
                : o["error"] is { } e ? " " + (string?)e
                : $" {(long?)o["size_bytes"]} bytes {(string?)o["checksum"]}";
            lines.Add($"{(string?)o["path"]}{(o["name"] is { } n ? $" ({(string?)n})" : "")}{what}");
        }
        return string.Join('\n', lines);
    }

    public static string State(string? state, string? reason = null)
    {
        var color = state switch
        {
            "succeeded" => "green",
            "failed" => "red",
            "cancelled" => "yellow",
            "running" => "blue",
            _ => "grey",
        };
        var text = Esc(state ?? "?");
        if (reason is not null && state is "failed" or "cancelled" or "queued") text += $" ({Esc(reason)})";
        return $"[{color}]{text}[/]";
    }

    public static string CommandText(JsonNode t) => t["command"] switch
    {
        JsonArray a => string.Join(' ', a.Select(x => (string?)x)),
        JsonNode n => (string?)n ?? "",
        // A payload that names work: its class's handler runs it.
        null => t["payload"] is { } p ? "(handler) " + p.ToJsonString() : "",
    };

    public static string? Runtime(JsonNode t)
    {
        if (t["duration_ms"] is { } ms) return Sparky.Core.Tasks.Durations.Format(TimeSpan.FromMilliseconds((long)ms));
        if (t["started_at"] is { } s && (string?)t["state"] == "running" && DateTimeOffset.TryParse((string?)s, out var started))
            return Sparky.Core.Tasks.Durations.Format(DateTimeOffset.UtcNow - started);
        return null;
    }

    /// <summary>A value from the daemon or a task in a markup table or line: its control characters shown, never
    /// obeyed (a name holding an ANSI sequence cannot recolour or clear the user's terminal), and markup escaped.</summary>
    public static string Esc(object? v) => v is null ? "" : Markup.Escape(TermText.Visible(v.ToString()));

    private static string Clip(string s, int n) => s.Length <= n ? s : s[..(n - 1)] + "…";
}
