using System.CommandLine;
using System.Text.Json.Nodes;
using Spectre.Console;
using Spectre.Console.Rendering;
using Sparky.Cli.Progress;
using Sparky.Plans;

namespace Sparky.Cli;

/// <summary><c>sparky plan run FILE [--from PHASE] [--var K=V]…</c>, <c>sparky plan status [NAME]</c> and
/// <c>sparky plan delete NAME</c> (SPEC §5).</summary>
internal static class PlanVerbs
{
    public static Command Build(Option<string?> server, Option<bool> json)
    {
        var plan = new Command("plan", "Plans: phases of parallel workstreams behind gates, resumable.");
        plan.Subcommands.Add(Run(server, json));
        plan.Subcommands.Add(Status(server, json));
        plan.Subcommands.Add(Delete(server, json));
        return plan;
    }

    private static Command Run(Option<string?> server, Option<bool> json)
    {
        var file = new Argument<string>("file") { Description = "the plan file (YAML)" };
        var from = new Option<string?>("--from") { Description = "run this phase and every later one again" };
        var varOption = new Option<string[]>("--var") { Description = "KEY=VALUE for ${KEY} in the plan, over its vars:; repeatable" };
        var c = new Command("run", "Run a plan (again: resume) and follow it: a live tree on a terminal, with the tasks done of all, the rate, " +
            "the time left and each running task's own progress; else a line per change (progress at most once a second). Exit 0 when every " +
            "phase and gate passed.") { file, from, varOption };
        c.SetAction(async (p, ct) =>
        {
            var vars = Vars(p.GetValue(varOption) ?? []);
            var path = Path.GetFullPath(p.GetValue(file)!);
            string text;
            try { text = PlanLimits.ReadFile(path); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { throw new CliException($"cannot read {path}: {e.Message}", 2); }
            // The file's own errors, all of them, before anything is sent.
            var parsed = PlanFile.Parse(text, path, vars);
            if (!parsed.Ok)
            {
                foreach (var e in parsed.Errors) Console.Error.WriteLine(e);
                return 2;
            }
            using var client = new DaemonClient(p.GetValue(server));
            var body = new JsonObject { ["text"] = text, ["path"] = path, ["base_dir"] = Path.GetDirectoryName(path) };
            if (p.GetValue(from) is { } f) body["from"] = f;
            if (vars.Count > 0)
            {
                var vo = new JsonObject();
                foreach (var (k, v) in vars) vo[k] = v;
                body["vars"] = vo;
            }
            JsonNode started;
            try { started = await client.PostAsync("api/v1/plans", body, ct); }
            catch (CliException e) when (e.Status == 400)
            {
                // What only the daemon can check (its classes, --from): each error on its own line, as the file's own.
                if (e.Errors.Count == 0) throw new CliException(e.Message, 2);
                foreach (var error in e.Errors) Console.Error.WriteLine(error);
                return 2;
            }
            var name = (string?)started["name"] ?? throw client.NotSparky();
            bool asJson = p.GetValue(json);
            var report = await FollowAsync(client, name, live: !asJson && !Console.IsOutputRedirected && AnsiConsole.Profile.Capabilities.Interactive, lines: !asJson, ct);
            if (asJson) Console.WriteLine(report.ToJsonString());
            if ((string?)report["status"] == "succeeded")
            {
                if (!asJson) Console.WriteLine($"plan {name} succeeded");
                return 0;
            }
            Console.Error.WriteLine($"stopped at phase {(string?)report["current_phase"]}: {(string?)report["reason"]}");
            return 1;
        });
        return c;
    }

    /// <summary><c>--var KEY=VALUE</c>s; a later one for the same key wins, as it would in a shell.</summary>
    private static Dictionary<string, string> Vars(IEnumerable<string> given)
    {
        var vars = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var kv in given)
        {
            int eq = kv.IndexOf('=');
            if (eq <= 0) throw new CliException($"--var wants KEY=VALUE, got '{kv}'", 2);
            vars[kv[..eq]] = kv[(eq + 1)..];
        }
        if (PlanFile.CheckVars(vars) is { } bad) throw new CliException("--var: " + bad, 2);
        return vars;
    }

    /// <summary>Polls the plan every 300 ms until it succeeded or stopped: a live tree on a terminal, else a line per
    /// change; with its tasks done out of all, how fast they end and the time left, and each running task's own progress
    /// (from its <c>task.progress</c> events).</summary>
    internal static async Task<JsonNode> FollowAsync(DaemonClient client, string name, bool live, bool lines, CancellationToken ct)
    {
        var path = $"api/v1/plans/{Uri.EscapeDataString(name)}";
        async Task<JsonNode> Get()
        {
            try { return await client.GetAsync(path, ct); }
            catch (CliException e) when (e.Status == 404) { throw new CliException($"plan {name} was deleted while it ran"); }
        }
        var tasks = new TaskSetProgress([], $"plan {name}", DateTimeOffset.Now, noun: "tasks done");
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var feed = EventFeed.RunAsync(client, topic => topic == "task.progress",
            item => { if (item is FeedItem.Event e) lock (tasks) tasks.Apply(e.Topic, e.Body, DateTimeOffset.Now); }, stop.Token);
        try
        {
            JsonNode report = await Get();
            bool Done(JsonNode r) => (string?)r["status"] is "succeeded" or "stopped";
            if (live)
            {
                IRenderable View()
                {
                    lock (tasks)
                    {
                        var now = DateTimeOffset.Now;
                        Count(tasks, report, now);
                        return new Rows(new Markup(tasks.LiveLines(now, AnsiConsole.Profile.Width, tasks: false)[0]), Tree(report, tasks, now));
                    }
                }
                using var interruption = new Interruption(ct);
                await AnsiConsole.Live(View()).AutoClear(false).StartAsync(async ctx =>
                {
                    while (!Done(report))
                    {
                        await Task.Delay(300, interruption.Token);
                        report = await Get();
                        ctx.UpdateTarget(View());
                    }
                });
                return report;
            }
            var seen = new Dictionary<string, string>();
            var progress = new LineThrottle();
            while (true)
            {
                if (lines)
                {
                    foreach (var (key, line) in Lines(report))
                        if (!seen.TryGetValue(key, out var old) || old != line)
                        {
                            seen[key] = line;
                            Console.WriteLine(line);
                        }
                    lock (tasks)
                    {
                        var now = DateTimeOffset.Now;
                        Count(tasks, report, now);
                        if (progress.Next(tasks.PlainKey(), tasks.PlainLine(now), now, final: Done(report)) is { } line) Console.WriteLine(line);
                    }
                }
                if (Done(report)) return report;
                await Task.Delay(300, ct);
                report = await Get();
            }
        }
        finally
        {
            stop.Cancel();
            try { await feed; } catch (OperationCanceledException) { }
        }
    }

    /// <summary>The plan's tasks from its report: each submitted one followed, and all of them counted (an array's
    /// elements each, one not submitted yet by its <c>array_size</c>).</summary>
    private static void Count(TaskSetProgress tasks, JsonNode report, DateTimeOffset now)
    {
        int total = 0;
        foreach (var t in TaskNodes(report))
        {
            if (t["elements"] is JsonArray elements)
            {
                total += elements.Count;
                foreach (var e in elements) See(e);
            }
            else
            {
                total += (int?)t["array_size"] ?? 1;
                See(t);
            }
        }
        tasks.Total = total;

        void See(JsonNode? t)
        {
            if (JsonRead.Str(t, "id") is not { } id || t!["state"] is null) return;
            tasks.Track([id]);
            tasks.Saw(t, now);
        }
    }

    private static IEnumerable<JsonNode> TaskNodes(JsonNode report) =>
        from ph in (JsonArray)report["phases"]!
        from ws in (JsonArray)ph!["workstreams"]!
        from t in (JsonArray)ws!["tasks"]!
        select t!;

    /// <summary>One line per phase, workstream and gate, keyed, for the not-a-terminal view.</summary>
    private static IEnumerable<(string Key, string Line)> Lines(JsonNode report)
    {
        if (report["waiting"] is { } waiting) yield return ("#waiting", $"plan {(string?)report["name"]}: {(string?)waiting}");
        foreach (var ph in (JsonArray)report["phases"]!)
        {
            var phase = (string)ph!["name"]!;
            yield return (phase, $"phase {phase}: {(string?)ph["status"]}" + (ph["blocked_reason"] is { } b ? $" ({b})" : ""));
            foreach (var ws in (JsonArray)ph["workstreams"]!)
                yield return ($"{phase}/{ws!["name"]}", $"  {phase}/{(string?)ws["name"]}: {(string?)ws["status"]}" +
                    (ws["waiting"]?["reason"] is { } wr ? $" ({wr})" : ws["reason"] is { } r ? $" ({r})" : ""));
            var gate = ph["gate"]!;
            if (((JsonArray)gate["checks"]!).Count > 0)
                yield return ($"{phase}#gate", $"  {phase} gate: {(string?)gate["status"]}" + (gate["reason"] is { } gr ? $" ({gr})" : ""));
        }
    }

    private static Command Status(Option<string?> server, Option<bool> json)
    {
        var name = new Argument<string?>("name") { Description = "a plan (none: every plan)", Arity = ArgumentArity.ZeroOrOne };
        var c = new Command("status", "A plan as a tree (phases, workstreams, tasks, gate checks), or a table of plans.") { name };
        c.SetAction(async (p, ct) =>
        {
            using var client = new DaemonClient(p.GetValue(server));
            bool asJson = p.GetValue(json);
            if (p.GetValue(name) is { } n)
            {
                var report = await client.GetAsync($"api/v1/plans/{Uri.EscapeDataString(n)}", ct);
                if (asJson) Console.WriteLine(report.ToJsonString());
                else AnsiConsole.Write(Tree(report));
                return 0;
            }
            var list = await client.GetAsync("api/v1/plans", ct);
            if (asJson) { Console.WriteLine(list.ToJsonString()); return 0; }
            var plans = (JsonArray?)list["plans"] ?? throw client.NotSparky();
            if (plans.Count == 0) { Console.WriteLine("no plans"); return 0; }
            var table = new Table().Border(TableBorder.Rounded).AddColumns("plan", "status", "phase", "updated");
            foreach (var pl in plans)
                table.AddRow(Views.Esc(pl!["name"]), Styled((string?)pl["status"]), Views.Esc(pl["current_phase"]),
                    Views.Esc(pl["updated_at"] is { } u ? DateTimeOffset.FromUnixTimeMilliseconds((long)u).ToLocalTime().ToString("yyyy-MM-dd HH:mm:ss") : null));
            AnsiConsole.Write(table);
            return 0;
        });
        return c;
    }

    private static Command Delete(Option<string?> server, Option<bool> json)
    {
        var name = new Argument<string>("name") { Description = "the plan" };
        var c = new Command("delete", "Stop a plan (cancel its queued and running tasks and its gate) and remove it from the list.") { name };
        c.SetAction(async (p, ct) =>
        {
            using var client = new DaemonClient(p.GetValue(server));
            var n = p.GetValue(name)!;
            JsonNode answer;
            try { answer = await client.DeleteAsync($"api/v1/plans/{Uri.EscapeDataString(n)}", ct); }
            catch (CliException e) when (e.Status == 404) { throw new CliException($"no plan '{n}'"); }
            if (p.GetValue(json)) Console.WriteLine(answer.ToJsonString());
            else Console.WriteLine($"deleted plan {n}" + ((int?)answer["cancelled"] is > 0 and var k ? $" (cancelled {k} task{(k == 1 ? "" : "s")})" : ""));
            return 0;
        });
        return c;
    }

    /// <summary>phases → workstreams → tasks (state, duration, attempts), and each gate check with its result and output tail.</summary>
    /// <param name="progress">Where known, the running tasks' own progress, shown beside them.</param>
    public static IRenderable Tree(JsonNode report, TaskSetProgress? progress = null, DateTimeOffset now = default)
    {
        var root = new Tree(new Markup($"[bold]{Views.Esc((string?)report["name"] ?? "?")}[/] {Styled((string?)report["status"])}" +
            (report["reason"] is { } why ? $" [grey]{Views.Esc((string)why!)}[/]" : "") +
            (report["waiting"] is { } waiting ? $" [yellow]{Views.Esc((string)waiting!)}[/]" : "")));
        foreach (var ph in (JsonArray)report["phases"]!)
        {
            var phase = root.AddNode(new Markup($"phase [bold]{Views.Esc((string)ph!["name"]!)}[/] {Styled((string?)ph["status"])}" +
                (ph["blocked_reason"] is { } b ? $" [grey]{Views.Esc((string)b!)}[/]" : "")));
            foreach (var ws in (JsonArray)ph["workstreams"]!)
            {
                var w = phase.AddNode(new Markup($"{Views.Esc((string)ws!["name"]!)} {Styled((string?)ws["status"])}" +
                    ((int?)ws["attempt"] is > 1 and var a ? $" [grey]run {a}[/]" : "") +
                    (ws["waiting"]?["reason"] is { } wr ? $" [yellow]{Views.Esc((string)wr!)}[/]"
                        : ws["reason"] is { } r ? $" [grey]{Views.Esc((string)r!)}[/]" : "")));
                foreach (var t in (JsonArray)ws["tasks"]!)
                {
                    if (t!["state"] is null) continue;
                    var line = $"{Views.Esc((string)t["name"]!)} {Styled((string?)t["state"])}";
                    if (t["duration_seconds"] is { } dur) line += $" {(double)dur:0.0}s";
                    if ((int?)t["attempts"] is > 1 and var tries) line += $" [grey]{tries} attempts[/]";
                    if (t["reason"] is { } tr && (string?)t["state"] != "succeeded") line += $" [grey]{Views.Esc((string)tr!)}[/]";
                    line += $" [grey]{Views.Esc((string?)t["id"] ?? "")}[/]";
                    // A running task's progress as the events bring it (with its rate and ETA); else the last the report has.
                    if ((string?)t["state"] == "running" && (string?)t["id"] is { } id && progress?.ProgressOf(id) is { } live)
                        line += " " + (live.Fraction is { } f ? $"[green]{TermText.Bar(f, 10)}[/] " : "") + Views.Esc(progress.TaskText(id, live, now));
                    else if (t["progress"] is JsonObject reported) line += " " + Views.Esc(Views.ProgressText(reported, Views.Bars, 48));
                    w.AddNode(new Markup(line));
                }
            }
            var gate = ph["gate"]!;
            var checks = (JsonArray)gate["checks"]!;
            if (checks.Count == 0) continue;
            var g = phase.AddNode(new Markup($"gate {Styled((string?)gate["status"])}"));
            foreach (var ch in checks)
            {
                var mark = (bool?)ch!["passed"] switch { true => "[green]pass[/]", false => "[red]FAIL[/]", null => "[grey]-[/]" };
                var node = g.AddNode(new Markup($"{mark} {Views.Esc((string?)ch["name"] ?? (string)ch["check"]!)}"));
                if (ch["output"] is { } output && ((string)output!).Length > 0)
                {
                    var tail = ((string)output!).TrimEnd().Split('\n').TakeLast(5);
                    node.AddNode(new Markup($"[grey]{string.Join('\n', tail.Select(Views.Esc))}[/]"));
                }
            }
        }
        return root;
    }

    private static string Styled(string? status) => status switch
    {
        "succeeded" or "passed" => $"[green]{status}[/]",
        "failed" or "stopped" or "cancelled" => $"[red]{status}[/]",
        "blocked" => $"[yellow]{status}[/]",
        "running" or "gating" => $"[blue]{status}[/]",
        null => "",
        _ => $"[grey]{Views.Esc(status)}[/]",
    };
}
