using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using Sparky.Core.Tasks;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Sparky.Plans;

public sealed record PlanParseResult(Plan? Plan, IReadOnlyList<PlanError> Errors)
{
    public bool Ok => Plan is not null && Errors.Count == 0;
    /// <summary>Every error, one per line, as <c>file:line:col: message</c>.</summary>
    public string ErrorText => string.Join('\n', Errors);
}

/// <summary>Reads plan files (SPEC §5). Every error carries the file, line and column; all that can be found are reported.</summary>
public static class PlanFile
{
    public static readonly string[] PlanKeys = ["name", "vars", "env", "defaults", "phases"];
    public static readonly string[] PhaseKeys = ["name", "workstreams", "gate"];
    public static readonly string[] OptionKeys = ["class", "cpus", "mem", "gpus", "gpu_mem", "port", "nodes", "gpus_per_node", "procs_per_node", "exclusive", "retries", "timeout", "env", "cwd"];
    public static readonly string[] TaskKeys = ["name", "run", .. OptionKeys, "after", "array"];
    /// <summary>A workstream written as one task: its keys inline.</summary>
    public static readonly string[] SingleWorkstreamKeys = ["name", "run", .. OptionKeys, "array", "on_failure"];
    public static readonly string[] ListWorkstreamKeys = ["name", "tasks", "on_failure"];
    public static readonly string[] CheckKinds = ["run", "metric", "file"];

    /// <summary>Reads and parses <paramref name="path"/>; errors name the path as given.</summary>
    public static PlanParseResult Load(string path, IReadOnlyDictionary<string, string>? vars = null)
    {
        string text;
        try { text = PlanLimits.ReadFile(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return new PlanParseResult(null, [new PlanError(path, 0, 0, $"cannot read the plan file: {e.Message}")]);
        }
        return Parse(text, path, vars);
    }

    /// <summary>Whether <paramref name="name"/> can name a var (<c>${name}</c>): letters, digits and '_', not starting with a digit.</summary>
    public static bool IsVarName(string name) => PlanParser.IsVarName(name);

    /// <summary>The first problem with vars given from outside the file (<c>--var K=V</c>, the API's <c>vars</c>), or null.</summary>
    public static string? CheckVars(IReadOnlyDictionary<string, string>? vars)
    {
        foreach (var (k, v) in vars ?? new Dictionary<string, string>())
        {
            if (!IsVarName(k)) return $"var name '{(k.Length <= 60 ? k : k[..60] + "…")}' must be letters, digits and '_', not starting with a digit";
            if (v.Contains('\0')) return $"var '{k}' holds a NUL character";
        }
        return null;
    }

    /// <param name="vars">Overrides for the file's <c>vars:</c> (as from <c>--var K=V</c>); a name the file does not
    /// declare is defined all the same (a var with no default).</param>
    public static PlanParseResult Parse(string text, string file = "plan.yaml", IReadOnlyDictionary<string, string>? vars = null) =>
        new PlanParser(file, vars).Run(text);
}

internal sealed partial class PlanParser(string file, IReadOnlyDictionary<string, string>? overrides)
{
    private readonly List<PlanError> _errors = [];
    private readonly Dictionary<string, string> _vars = new(StringComparer.Ordinal);

    /// <summary>A gate check's timeout is a timer's (CancelAfter), which holds at most 2^32-2 ms, about 49.7 days.</summary>
    private const int MaxCheckTimeoutSeconds = 49 * 86400;

    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    private static partial Regex PlanName();

    [GeneratedRegex("^[A-Za-z_][A-Za-z0-9_]*$")]
    private static partial Regex VarName();

    public static bool IsVarName(string name) => VarName().IsMatch(name);

    public PlanParseResult Run(string text)
    {
        if (PlanLimits.FirstProblem(text, file) is { } tooBig)
        {
            _errors.Add(tooBig);
            return Done(null);
        }
        var stream = new YamlStream();
        try { stream.Load(new StringReader(text)); }
        catch (YamlException e)
        {
            _errors.Add(new PlanError(file, (int)e.Start.Line, (int)e.Start.Column, YamlMessage(e)));
            return Done(null);
        }
        if (stream.Documents.Count == 0 || IsNull(stream.Documents[0].RootNode))
        {
            _errors.Add(new PlanError(file, 1, 1, "the plan file is empty (want name and phases)"));
            return Done(null);
        }
        if (stream.Documents.Count > 1) Err(stream.Documents[1].RootNode, "a plan file holds one YAML document, not several");
        if (stream.Documents[0].RootNode is not YamlMappingNode root)
        {
            Err(stream.Documents[0].RootNode, $"a plan must be a mapping with name and phases, got {Kind(stream.Documents[0].RootNode)}");
            return Done(null);
        }
        CheckKeys(root, "the plan", PlanFile.PlanKeys);

        // Vars first: every other string may use them.
        if (Get(root, "vars") is { } varsNode && !IsNull(varsNode))
        {
            if (varsNode is not YamlMappingNode vm) Err(varsNode, $"vars must be a mapping of names to values, got {Kind(varsNode)}");
            else
                foreach (var (k, v) in vm.Children)
                {
                    var key = (k as YamlScalarNode)?.Value;
                    if (key is null || !VarName().IsMatch(key)) { Err(k, $"a var name must be letters, digits and '_' (not starting with a digit), got {Kind(k)}"); continue; }
                    if (v is not YamlScalarNode sv) { Err(v, $"var '{key}' must be a string or a number, got {Kind(v)}"); continue; }
                    _vars[key] = sv.Value ?? "";
                }
        }
        if (PlanFile.CheckVars(overrides) is { } badVar) _errors.Add(new PlanError(file, 0, 0, badVar));
        foreach (var (k, v) in overrides ?? new Dictionary<string, string>()) _vars[k] = v;

        string? name = null;
        if (Get(root, "name") is not { } nameNode || IsNull(nameNode)) Err(root, "the plan needs a name");
        else if (Str(nameNode, "name") is { } n)
        {
            if (PlanName().IsMatch(n)) name = n;
            else Err(nameNode, $"plan name '{Clip(n)}' must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit (it names the plan's folder and URL)");
        }

        var env = Env(Get(root, "env"), "env") ?? new Dictionary<string, string>();
        var defaults = TaskOptions.None;
        if (Get(root, "defaults") is { } defNode && !IsNull(defNode))
        {
            if (defNode is not YamlMappingNode dm) Err(defNode, $"defaults must be a mapping of task options, got {Kind(defNode)}");
            else
            {
                CheckKeys(dm, "defaults", PlanFile.OptionKeys);
                defaults = Options(dm);
            }
        }

        var phases = new List<Phase>();
        if (Get(root, "phases") is not { } phasesNode || IsNull(phasesNode)) Err(root, "the plan needs phases: a list of phases");
        else if (phasesNode is not YamlSequenceNode ps) Err(phasesNode, $"phases must be a list of phases, got {Kind(phasesNode)}");
        else if (ps.Children.Count == 0) Err(ps, "the plan has no phases");
        else
        {
            var seen = new Dictionary<string, SourcePos>(StringComparer.Ordinal);
            foreach (var p in ps.Children)
            {
                if (ParsePhase(p, env, defaults) is not { } phase) continue;
                if (seen.TryGetValue(phase.Name, out var first)) Err(phase.Pos, $"duplicate phase name '{phase.Name}' (first at {first})");
                else seen[phase.Name] = phase.Pos;
                phases.Add(phase);
            }
        }

        if (_errors.Count > 0 || name is null) return Done(null);
        var plan = new Plan
        {
            Name = name,
            Vars = new Dictionary<string, string>(_vars),
            Env = env,
            Defaults = defaults,
            Phases = SpecHash.Apply(phases),
        };
        return Done(plan);
    }

    private PlanParseResult Done(Plan? plan) =>
        new(_errors.Count == 0 ? plan : null, _errors.OrderBy(e => e.Line).ThenBy(e => e.Column).ToList());

    private Phase? ParsePhase(YamlNode node, IReadOnlyDictionary<string, string> planEnv, TaskOptions defaults)
    {
        if (node is not YamlMappingNode m) { Err(node, $"a phase must be a mapping (name, workstreams, gate), got {Kind(node)}"); return null; }
        CheckKeys(m, "a phase", PlanFile.PhaseKeys);
        var name = Name(m, "a phase");
        var label = name is null ? "a phase" : $"phase '{name}'";
        var workstreams = new List<Workstream>();
        var wsNode = Get(m, "workstreams");
        if (wsNode is null || IsNull(wsNode) || wsNode is YamlSequenceNode { Children.Count: 0 })
            Err(wsNode is null || IsNull(wsNode) ? m : wsNode, $"{label} has no workstreams");
        else if (wsNode is not YamlSequenceNode ws) Err(wsNode, $"workstreams must be a list, got {Kind(wsNode)}");
        else
        {
            var seen = new Dictionary<string, SourcePos>(StringComparer.Ordinal);
            foreach (var w in ws.Children)
            {
                if (ParseWorkstream(w, planEnv, defaults) is not { } stream) continue;
                if (seen.TryGetValue(stream.Name, out var first)) Err(stream.Pos, $"duplicate workstream name '{stream.Name}' in {label} (first at {first})");
                else seen[stream.Name] = stream.Pos;
                workstreams.Add(stream);
            }
        }

        var gate = new List<GateCheck>();
        if (Get(m, "gate") is { } gateNode && !IsNull(gateNode))
        {
            if (gateNode is not YamlSequenceNode gs) Err(gateNode, $"gate must be a list of checks, got {Kind(gateNode)}");
            else
                foreach (var c in gs.Children)
                    if (ParseCheck(c) is { } check) gate.Add(check);
        }
        if (name is null) return null;
        return new Phase { Name = name, Workstreams = workstreams, Gate = gate, Pos = NamePos(m) };
    }

    private Workstream? ParseWorkstream(YamlNode node, IReadOnlyDictionary<string, string> planEnv, TaskOptions defaults)
    {
        if (node is not YamlMappingNode m) { Err(node, $"a workstream must be a mapping (name, then run or tasks), got {Kind(node)}"); return null; }
        var tasksNode = Get(m, "tasks");
        bool list = tasksNode is not null;
        if (list && Get(m, "run") is not null)
        {
            Err(GetKey(m, "run")!, "a workstream has either run: (one task) or tasks: (a list), not both");
            CheckKeys(m, "a workstream", [.. PlanFile.ListWorkstreamKeys, "run"]);
        }
        else CheckKeys(m, "a workstream", list ? PlanFile.ListWorkstreamKeys : PlanFile.SingleWorkstreamKeys);

        var name = Name(m, "a workstream");
        var label = name is null ? "a workstream" : $"workstream '{name}'";
        var onFailure = OnFailure.Stop;
        if (Get(m, "on_failure") is { } of && Str(of, "on_failure") is { } ofs)
        {
            if (ofs == "stop") onFailure = OnFailure.Stop;
            else if (ofs == "continue") onFailure = OnFailure.Continue;
            else Err(of, $"on_failure must be stop or continue, got '{Clip(ofs)}'");
        }

        var tasks = new List<PlanTask>();
        var afterItems = new Dictionary<string, List<(string Name, YamlNode Node)>>(StringComparer.Ordinal);
        if (!list)
        {
            if (Get(m, "run") is null) { Err(m, $"{label} needs run: (one task) or tasks: (a list of tasks)"); return null; }
            if (name is null) return null;
            if (ParseTask(m, planEnv, defaults, name, afterItems) is { } t) tasks.Add(t);
        }
        else if (IsNull(tasksNode!) || tasksNode is YamlSequenceNode { Children.Count: 0 }) Err(tasksNode!, $"{label} has no tasks");
        else if (tasksNode is not YamlSequenceNode ts) Err(tasksNode!, $"tasks must be a list of tasks, got {Kind(tasksNode!)}");
        else
        {
            var seen = new Dictionary<string, SourcePos>(StringComparer.Ordinal);
            foreach (var tn in ts.Children)
            {
                if (tn is not YamlMappingNode tm) { Err(tn, $"a task must be a mapping (name, run, …), got {Kind(tn)}"); continue; }
                CheckKeys(tm, "a task", PlanFile.TaskKeys);
                if (ParseTask(tm, planEnv, defaults, null, afterItems) is not { } t) continue;
                if (seen.TryGetValue(t.Name, out var first)) { Err(t.Pos, $"duplicate task name '{t.Name}' in {label} (first at {first})"); continue; }
                seen[t.Name] = t.Pos;
                tasks.Add(t);
            }
            CheckAfter(label, tasks, afterItems);
        }
        if (name is null) return null;
        return new Workstream { Name = name, Tasks = tasks, OnFailure = onFailure, Single = !list, Pos = NamePos(m) };
    }

    /// <summary>Every after: names a task of the workstream, and no chain of them comes back to where it started.</summary>
    private void CheckAfter(string label, List<PlanTask> tasks, Dictionary<string, List<(string Name, YamlNode Node)>> afterItems)
    {
        var names = tasks.Select(t => t.Name).ToHashSet(StringComparer.Ordinal);
        foreach (var t in tasks)
            foreach (var (a, node) in afterItems.GetValueOrDefault(t.Name) ?? [])
                if (!names.Contains(a))
                    Err(node, $"after: '{Clip(a)}' is not a task of {label} (tasks: {string.Join(", ", tasks.Select(x => x.Name))})");

        var color = tasks.ToDictionary(t => t.Name, _ => 0, StringComparer.Ordinal);
        var stack = new List<string>();
        var reported = new HashSet<string>(StringComparer.Ordinal);
        void Visit(string n)
        {
            color[n] = 1;
            stack.Add(n);
            foreach (var (d, node) in afterItems.GetValueOrDefault(n) ?? [])
            {
                if (!color.TryGetValue(d, out var c)) continue;
                if (c == 1)
                {
                    var cycle = stack.Skip(stack.IndexOf(d)).Append(d).ToList();
                    // The same cycle found from another start is one problem, not two.
                    var key = string.Join('\0', cycle.Skip(1).Order(StringComparer.Ordinal));
                    if (reported.Add(key)) Err(node, $"a cycle in after: {string.Join(" -> ", cycle)}");
                }
                else if (c == 0) Visit(d);
            }
            stack.RemoveAt(stack.Count - 1);
            color[n] = 2;
        }
        foreach (var t in tasks)
            if (color[t.Name] == 0) Visit(t.Name);
    }

    /// <param name="fixedName">The workstream's name, for a workstream written as one task.</param>
    private PlanTask? ParseTask(YamlMappingNode m, IReadOnlyDictionary<string, string> planEnv, TaskOptions defaults, string? fixedName,
        Dictionary<string, List<(string Name, YamlNode Node)>> afterItems)
    {
        var name = fixedName ?? Name(m, "a task");
        var label = name is null ? "a task" : $"task '{name}'";
        IReadOnlyList<string>? argv = null;
        string? shell = null;
        if (Get(m, "run") is not { } runNode || IsNull(runNode)) Err(m, $"{label} needs run: (a command: a list of arguments or a shell string)");
        else (argv, shell) = Command(runNode, "run");

        var o = Options(m);
        var after = new List<(string, YamlNode)>();
        if (Get(m, "after") is { } an && !IsNull(an))
        {
            if (an is YamlScalarNode && Str(an, "after") is { } one) after.Add((one, an));
            else if (an is YamlSequenceNode seq)
                foreach (var item in seq.Children)
                {
                    if (item is YamlScalarNode && Str(item, "after") is { } s) after.Add((s, item));
                    else if (item is not YamlScalarNode) Err(item, $"after must list task names, got {Kind(item)}");
                }
            else if (an is YamlMappingNode) Err(an, "after must be a task name or a list of task names, got a mapping");
        }

        ArrayRange? array = null;
        if (Get(m, "array") is { } arr && !IsNull(arr) && Str(arr, "array") is { } arrText)
        {
            if (ArrayRange.TryParse(arrText, out var r, out var error)) array = r;
            else Err(arr, error);
        }

        var options = o.Or(defaults).Or(new TaskOptions { Env = planEnv });
        if (options.GpuMemoryMb > 0 && options.Gpus > 1)
            Err(Get(m, "gpu_mem") ?? Get(m, "gpus") ?? m, "gpu_mem is a share of one GPU; it cannot go with gpus > 1 (ask for whole GPUs, or for a share)");

        if (name is null || (argv is null && shell is null)) return null;
        afterItems[name] = after;
        return new PlanTask
        {
            Name = name,
            Argv = argv,
            Shell = shell,
            Options = options,
            After = after.Select(a => a.Item1).ToList(),
            Array = array,
            Pos = fixedName is null ? NamePos(m) : m.Start.ToPos(),
        };
    }

    /// <summary>The task options that <c>defaults:</c> and tasks share (keys are checked by the caller).</summary>
    private TaskOptions Options(YamlMappingNode m)
    {
        string? cls = null;
        if (Get(m, "class") is { } cn && !IsNull(cn) && Str(cn, "class") is { } c)
        {
            if (c.Length == 0 || c.Any(ch => char.IsWhiteSpace(ch) || char.IsControl(ch))) Err(cn, $"class must be a class name such as cpu_short, got '{Clip(c)}'");
            else cls = c;
        }
        double? cpus = Number(Get(m, "cpus"), "cpus", 0, 1_000_000);
        long? mem = Size(Get(m, "mem"), "mem", allowZero: true);
        int? gpus = Number(Get(m, "gpus"), "gpus", 0, 1024, integer: true) is { } g ? (int)g : null;
        long? gpuMem = Size(Get(m, "gpu_mem"), "gpu_mem", allowZero: false);
        int? retries = Number(Get(m, "retries"), "retries", 0, EnvelopeParser.MaxRetries, integer: true) is { } r ? (int)r : null;
        int? nodes = Number(Get(m, "nodes"), "nodes", 1, EnvelopeParser.MaxNodes, integer: true) is { } nn ? (int)nn : null;
        int? gpusPerNode = Number(Get(m, "gpus_per_node"), "gpus_per_node", 0, 1024, integer: true) is { } gpn ? (int)gpn : null;
        int? procsPerNode = Number(Get(m, "procs_per_node"), "procs_per_node", 1, 1024, integer: true) is { } ppn ? (int)ppn : null;
        double? timeout = null;
        if (Get(m, "timeout") is { } tn && !IsNull(tn) && Str(tn, "timeout") is { } ts)
        {
            if (Durations.TryParseSeconds(ts, out var secs) && secs <= EnvelopeParser.MaxTimeoutSeconds) timeout = secs;
            else if (secs > EnvelopeParser.MaxTimeoutSeconds) Err(tn, $"timeout may be at most a year and a day ({EnvelopeParser.MaxTimeoutSeconds:0} s); got '{Clip(ts)}'");
            else Err(tn, $"timeout must be a duration such as 90, 30s, 5m, 1h; got '{Clip(ts)}'");
        }
        string? cwd = null;
        if (Get(m, "cwd") is { } wn && !IsNull(wn) && Str(wn, "cwd") is { } w)
        {
            if (w.Length == 0 || w.Contains('\0')) Err(wn, "cwd must be a non-empty path");
            else cwd = w;
        }
        return new TaskOptions
        {
            Class = cls, Cpus = cpus, MemoryMb = mem, Gpus = gpus, GpuMemoryMb = gpuMem, Retries = retries, TimeoutSeconds = timeout,
            Env = Env(Get(m, "env"), "env") ?? new Dictionary<string, string>(), Cwd = cwd,
            Port = Flag(Get(m, "port"), "port"), Nodes = nodes, GpusPerNode = gpusPerNode, ProcsPerNode = procsPerNode, Exclusive = Flag(Get(m, "exclusive"), "exclusive"),
        };
    }

    private GateCheck? ParseCheck(YamlNode node)
    {
        if (node is not YamlMappingNode m) { Err(node, $"a gate check must be a mapping with one of run, metric, file; got {Kind(node)}"); return null; }
        var kinds = m.Children.Keys.OfType<YamlScalarNode>().Where(k => PlanFile.CheckKinds.Contains(k.Value)).ToList();
        if (kinds.Count == 0)
        {
            var other = m.Children.Keys.FirstOrDefault(k => k is not YamlScalarNode { Value: "name" or "timeout" });
            if (other is null) Err(m, "a gate check needs one of run, metric, file");
            else Err(other, $"a gate check of an unknown kind '{Clip((other as YamlScalarNode)?.Value ?? "?")}' (known: run, metric, file)");
            return null;
        }
        if (kinds.Count > 1) { Err(kinds[1], $"a gate check has one kind, not both '{kinds[0].Value}' and '{kinds[1].Value}'"); return null; }
        string? name = Get(m, "name") is { } nn && !IsNull(nn) ? Str(nn, "name") : null;
        var pos = m.Start.ToPos();
        switch (kinds[0].Value)
        {
            case "run":
            {
                CheckKeys(m, "a run check", ["run", "timeout", "name"]);
                var runNode = Get(m, "run")!;
                if (IsNull(runNode)) { Err(runNode, "run needs a command"); return null; }
                var (argv, shell) = Command(runNode, "run");
                double? timeout = null;
                if (Get(m, "timeout") is { } tn && !IsNull(tn) && Str(tn, "timeout") is { } ts)
                {
                    if (Durations.TryParseSeconds(ts, out var secs) && secs <= MaxCheckTimeoutSeconds) timeout = secs;
                    else if (secs > MaxCheckTimeoutSeconds) Err(tn, $"a check's timeout may be at most 49 days ({MaxCheckTimeoutSeconds} s), what a timer holds; got '{Clip(ts)}'");
                    else Err(tn, $"timeout must be a duration such as 90, 30s, 5m, 1h; got '{Clip(ts)}'");
                }
                if (argv is null && shell is null) return null;
                return new RunCheck { Argv = argv, Shell = shell, TimeoutSeconds = timeout, Name = name, Pos = pos };
            }
            case "metric":
            {
                CheckKeys(m, "a metric check", ["metric", "name"]);
                var v = Get(m, "metric")!;
                if (v is not YamlMappingNode mm) { Err(v, $"metric must be a mapping {{file, path, min|max|equals}}, got {Kind(v)}"); return null; }
                CheckKeys(mm, "metric", ["file", "path", "min", "max", "equals"]);
                string? fileName = RequiredStr(mm, "file", "metric");
                string? path = RequiredStr(mm, "path", "metric");
                if (path is not null && Gates.ParsePath(path) is null) { Err(Get(mm, "path")!, $"metric path '{Clip(path)}' is malformed (want dot-separated keys and [index], such as eval.scores[0].f1)"); path = null; }
                double? min = Number(Get(mm, "min"), "min", double.MinValue, double.MaxValue);
                double? max = Number(Get(mm, "max"), "max", double.MinValue, double.MaxValue);
                string? eq = Get(mm, "equals") is { } en && en is not YamlMappingNode && en is not YamlSequenceNode ? (IsNull(en) ? "null" : Str(en, "equals")) : null;
                if (Get(mm, "equals") is YamlMappingNode or YamlSequenceNode) Err(Get(mm, "equals")!, "equals must be a number, a string or a boolean");
                else if (Get(mm, "min") is null && Get(mm, "max") is null && Get(mm, "equals") is null) Err(mm, "metric needs min, max or equals");
                if (min > max) Err(Get(mm, "min")!, $"metric min {Gates.Num(min!.Value)} is above max {Gates.Num(max!.Value)}: nothing can pass");
                if (fileName is null || path is null) return null;
                return new MetricCheck { File = fileName, Path = path, Min = min, Max = max, EqualsValue = eq, Name = name, Pos = pos };
            }
            default:
            {
                CheckKeys(m, "a file check", ["file", "name"]);
                var v = Get(m, "file")!;
                if (v is YamlScalarNode && !IsNull(v))
                    return Str(v, "file") is { Length: > 0 } p ? new FileCheck { Path = p, Name = name, Pos = pos } : null;
                if (v is not YamlMappingNode fm) { Err(v, $"file must be a path or a mapping {{path, non_empty}}, got {Kind(v)}"); return null; }
                CheckKeys(fm, "file", ["path", "non_empty"]);
                var path = RequiredStr(fm, "path", "file");
                bool nonEmpty = false;
                if (Get(fm, "non_empty") is { } ne && !IsNull(ne) && Str(ne, "non_empty") is { } nes)
                {
                    if (nes is "true" or "True" or "yes") nonEmpty = true;
                    else if (nes is not ("false" or "False" or "no")) Err(ne, $"non_empty must be true or false, got '{Clip(nes)}'");
                }
                return path is null ? null : new FileCheck { Path = path, NonEmpty = nonEmpty, Name = name, Pos = pos };
            }
        }
    }

    // ---- values ----

    private (IReadOnlyList<string>?, string?) Command(YamlNode node, string field)
    {
        switch (node)
        {
            case YamlSequenceNode seq:
                if (seq.Children.Count == 0) { Err(seq, $"{field} must not be an empty list"); return (null, null); }
                var argv = new List<string>();
                foreach (var a in seq.Children)
                {
                    if (a is not YamlScalarNode) { Err(a, $"{field} must be a list of strings, got {Kind(a)} in it"); return (null, null); }
                    if (Str(a, field) is not { } s) return (null, null);
                    argv.Add(s);
                }
                if (argv[0].Length == 0) { Err(seq.Children[0], $"{field}'s first argument must not be empty"); return (null, null); }
                return (argv, null);
            case YamlScalarNode:
                if (Str(node, field) is not { } str) return (null, null);
                if (string.IsNullOrWhiteSpace(str)) { Err(node, $"{field} must not be empty"); return (null, null); }
                return (null, str);
            default:
                Err(node, $"{field} must be a list of strings or a shell string, got {Kind(node)}");
                return (null, null);
        }
    }

    private Dictionary<string, string>? Env(YamlNode? node, string field)
    {
        if (node is null || IsNull(node)) return null;
        if (node is not YamlMappingNode m) { Err(node, $"{field} must be a mapping of names to values, got {Kind(node)}"); return null; }
        var env = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (k, v) in m.Children)
        {
            var key = (k as YamlScalarNode)?.Value;
            if (string.IsNullOrEmpty(key) || key.Contains('=') || key.Contains('\0')) { Err(k, $"{field} has an invalid variable name"); continue; }
            if (v is not YamlScalarNode) { Err(v, $"{field}.{Clip(key)} must be a string, got {Kind(v)}"); continue; }
            if (Str(v, $"{field}.{key}") is { } s) env[key] = s;
        }
        return env;
    }

    private double? Number(YamlNode? node, string field, double min, double max, bool integer = false)
    {
        if (node is null || IsNull(node) || Str(node, field) is not { } s) return null;
        if (double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) && double.IsFinite(d) && d >= min && d <= max && (!integer || d == Math.Floor(d)))
            return d;
        var want = integer ? $"an integer from {min} to {max}" : min == 0 ? "a non-negative number" : "a number";
        Err(node, $"{field} must be {want}, got {Kind(node)}");
        return null;
    }

    private bool? Flag(YamlNode? node, string field)
    {
        if (node is null || IsNull(node) || Str(node, field) is not { } s) return null;
        if (s is "true" or "false") return s == "true";
        Err(node, $"{field} must be true or false; got '{Clip(s)}'");
        return null;
    }

    private long? Size(YamlNode? node, string field, bool allowZero)
    {
        if (node is null || IsNull(node) || Str(node, field) is not { } s) return null;
        if (MemorySizes.TryParseMb(s, out var mb) && (allowZero || mb > 0)) return mb;
        Err(node, $"{field} must be a size such as 512M or 4G; got '{Clip(s)}'");
        return null;
    }

    private string? RequiredStr(YamlMappingNode m, string key, string what)
    {
        if (Get(m, key) is not { } n || IsNull(n)) { Err(m, $"{what} needs {key}"); return null; }
        var s = Str(n, key);
        if (s is { Length: 0 }) { Err(n, $"{what} {key} must not be empty"); return null; }
        return s;
    }

    private string? Name(YamlMappingNode m, string what)
    {
        if (Get(m, "name") is not { } n || IsNull(n)) { Err(m, $"{what} needs a name"); return null; }
        if (Str(n, "name") is not { } s) return null;
        if (s.Length is 0 or > 128 || s.Any(char.IsControl)) { Err(n, "a name must be 1 to 128 printable characters"); return null; }
        return s;
    }

    /// <summary>A scalar's text with <c>${var}</c> substituted (<c>$${</c> is a literal <c>${</c>); null after an error.</summary>
    private string? Str(YamlNode node, string field)
    {
        if (node is not YamlScalarNode s) { Err(node, $"{field} must be a string, got {Kind(node)}"); return null; }
        var text = s.Value ?? "";
        if (!text.Contains("${")) return text;
        var sb = new StringBuilder();
        bool ok = true;
        for (int i = 0; i < text.Length; i++)
        {
            if (text[i] == '$' && i + 2 < text.Length && text[i + 1] == '$' && text[i + 2] == '{') { sb.Append("${"); i += 2; continue; }
            if (text[i] == '$' && i + 1 < text.Length && text[i + 1] == '{')
            {
                int end = text.IndexOf('}', i + 2);
                if (end < 0) { Err(node, $"unterminated ${{ in {field} (write $${{ for a literal ${{)"); return null; }
                var name = text[(i + 2)..end];
                if (_vars.TryGetValue(name, out var value)) sb.Append(value);
                else
                {
                    ok = false;
                    Err(node, _vars.Count == 0
                        ? $"undefined variable '{Clip(name)}' (the plan defines no vars)"
                        : $"undefined variable '{Clip(name)}' (known: {string.Join(", ", _vars.Keys.Order(StringComparer.Ordinal))})");
                }
                i = end;
                continue;
            }
            sb.Append(text[i]);
        }
        return ok ? sb.ToString() : null;
    }

    // ---- YAML helpers ----

    private void CheckKeys(YamlMappingNode m, string what, string[] known)
    {
        foreach (var k in m.Children.Keys)
        {
            if (k is not YamlScalarNode { Value: { } key }) { Err(k, $"a key in {what} must be a string, got {Kind(k)}"); continue; }
            if (!known.Contains(key)) Err(k, $"unknown key '{Clip(key)}' in {what} (known: {string.Join(", ", known)})");
        }
    }

    private static YamlNode? Get(YamlMappingNode m, string key) =>
        m.Children.FirstOrDefault(kv => kv.Key is YamlScalarNode { Value: var v } && v == key).Value;

    private static YamlNode? GetKey(YamlMappingNode m, string key) =>
        m.Children.Keys.FirstOrDefault(k => k is YamlScalarNode { Value: var v } && v == key);

    /// <summary>Where a named thing is: its name's value, else the mapping.</summary>
    private static SourcePos NamePos(YamlMappingNode m) => (Get(m, "name") ?? m).Start.ToPos();

    private static bool IsNull(YamlNode n) =>
        n is YamlScalarNode { Style: ScalarStyle.Plain or ScalarStyle.Any, Value: null or "" or "~" or "null" or "Null" or "NULL" };

    private static string Kind(YamlNode n) => n switch
    {
        YamlMappingNode => "a mapping",
        YamlSequenceNode => "a list",
        YamlScalarNode s when IsNull(s) => "nothing",
        YamlScalarNode { Style: ScalarStyle.Plain } s when double.TryParse(s.Value, NumberStyles.Float, CultureInfo.InvariantCulture, out _) => $"a number ({Clip(s.Value!)})",
        YamlScalarNode { Style: ScalarStyle.Plain, Value: "true" or "false" or "True" or "False" } s => $"a boolean ({s.Value})",
        YamlScalarNode s => $"'{Clip(s.Value ?? "")}'",
        _ => "something else",
    };

    private void Err(YamlNode node, string message) => Err(node.Start.ToPos(), message);

    private void Err(SourcePos pos, string message) => _errors.Add(new PlanError(file, pos.Line, pos.Column, message));

    /// <summary>YamlDotNet puts the position in its message; the position goes in front instead.</summary>
    private static string YamlMessage(YamlException e)
    {
        var m = Regex.Replace(e.Message, @"^\(Line: \d+, Col: \d+, Idx: \d+\) - \(Line: \d+, Col: \d+, Idx: \d+\): ", "");
        return "malformed YAML: " + m.Trim().TrimEnd('.');
    }

    private static string Clip(string s) => s.Length <= 60 ? s : s[..60] + "…";
}

internal static class MarkExtensions
{
    public static SourcePos ToPos(this Mark m) => new((int)m.Line, (int)m.Column);
}
