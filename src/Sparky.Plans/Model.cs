using Sparky.Core.Tasks;

namespace Sparky.Plans;

/// <summary>Where something stood in the plan file (1-based, as YamlDotNet counts).</summary>
public readonly record struct SourcePos(int Line, int Column)
{
    public override string ToString() => $"{Line}:{Column}";
}

/// <summary>One problem in a plan file, shown as <c>plan.yaml:12:7: message</c>.</summary>
public sealed record PlanError(string File, int Line, int Column, string Message)
{
    public override string ToString() => $"{File}:{Line}:{Column}: {Message}";
}

/// <summary>A parsed, validated plan: vars substituted, defaults applied, hashes computed.</summary>
public sealed record Plan
{
    public required string Name { get; init; }
    public IReadOnlyDictionary<string, string> Vars { get; init; } = new Dictionary<string, string>();
    /// <summary>The plan-level <c>env:</c>, already merged into every task's <see cref="PlanTask.Env"/>.</summary>
    public IReadOnlyDictionary<string, string> Env { get; init; } = new Dictionary<string, string>();
    /// <summary>The plan-level <c>defaults:</c>, already applied to every task.</summary>
    public TaskOptions Defaults { get; init; } = TaskOptions.None;
    public required IReadOnlyList<Phase> Phases { get; init; }

    public Phase? FindPhase(string name) => Phases.FirstOrDefault(p => p.Name == name);
    public int IndexOf(string phase) => Phases.ToList().FindIndex(p => p.Name == phase);
}

public sealed record Phase
{
    public required string Name { get; init; }
    public required IReadOnlyList<Workstream> Workstreams { get; init; }
    /// <summary>Checks that must all pass before the next phase starts; empty passes.</summary>
    public IReadOnlyList<GateCheck> Gate { get; init; } = [];
    /// <summary>Hash of the gate's checks and this phase's workstream hashes: a stored pass counts only under the same key.</summary>
    public string GateKey { get; init; } = "";
    public SourcePos Pos { get; init; }
}

public enum OnFailure { Stop, Continue }

public sealed record Workstream
{
    public required string Name { get; init; }
    /// <summary>In file order; <see cref="PlanTask.After"/> orders them.</summary>
    public required IReadOnlyList<PlanTask> Tasks { get; init; }
    public OnFailure OnFailure { get; init; } = OnFailure.Stop;
    /// <summary>True when written as one task with its keys inline (the task is named after the workstream).</summary>
    public bool Single { get; init; }
    /// <summary>SHA-256 (hex) of the resolved tasks and of every earlier phase's workstreams: stable across runs,
    /// different when this workstream or anything before it changed.</summary>
    public string Hash { get; init; } = "";
    public SourcePos Pos { get; init; }
}

/// <summary>One task of a workstream, resolved: defaults applied, vars substituted. Null options are the daemon's defaults.</summary>
public sealed record PlanTask
{
    public required string Name { get; init; }
    /// <summary>argv form. Exactly one of <see cref="Argv"/> and <see cref="Shell"/> is set.</summary>
    public IReadOnlyList<string>? Argv { get; init; }
    public string? Shell { get; init; }
    /// <summary>The task's own options over the plan's <c>defaults:</c>; unset ones are the daemon's defaults. The env is
    /// the plan's, then the defaults', then the task's own; the cwd is as written (relative paths are taken from the plan
    /// file's folder when submitted).</summary>
    public TaskOptions Options { get; init; } = TaskOptions.None;
    /// <summary>Names of tasks in the same workstream.</summary>
    public IReadOnlyList<string> After { get; init; } = [];
    public ArrayRange? Array { get; init; }
    public SourcePos Pos { get; init; }
}

/// <summary>One check of a phase's gate.</summary>
public abstract record GateCheck
{
    public string? Name { get; init; }
    public SourcePos Pos { get; init; }
    /// <summary>A short human form, for reports: <c>metric out/eval.json accuracy &gt;= 0.8</c>.</summary>
    public abstract string Describe();
}

/// <summary>Runs a command (argv or shell string); exit 0 passes. Executed by the daemon, not here.</summary>
public sealed record RunCheck : GateCheck
{
    public IReadOnlyList<string>? Argv { get; init; }
    public string? Shell { get; init; }
    public double? TimeoutSeconds { get; init; }
    public override string Describe() => "run: " + (Shell ?? string.Join(' ', Argv ?? []));
}

/// <summary>Reads a number (or value) at <see cref="Path"/> in a JSON file and compares it.</summary>
public sealed record MetricCheck : GateCheck
{
    public required string File { get; init; }
    /// <summary>Dot-separated keys and <c>[index]</c>: <c>eval.scores[0].f1</c>.</summary>
    public required string Path { get; init; }
    public double? Min { get; init; }
    public double? Max { get; init; }
    /// <summary>Compared as a number when both sides are numbers, else as text (JSON true/false/null as written).</summary>
    public string? EqualsValue { get; init; }

    /// <summary>What passes: <c>&gt;= 0.8, &lt;= 1</c>.</summary>
    public string Condition
    {
        get
        {
            var parts = new List<string>();
            if (Min is { } min) parts.Add($">= {Gates.Num(min)}");
            if (Max is { } max) parts.Add($"<= {Gates.Num(max)}");
            if (EqualsValue is { } eq) parts.Add($"== {eq}");
            return string.Join(", ", parts);
        }
    }

    public override string Describe() => $"metric {File} {Path} {Condition}";
}

/// <summary>A file exists (and, with <see cref="NonEmpty"/>, is not empty).</summary>
public sealed record FileCheck : GateCheck
{
    public required string Path { get; init; }
    public bool NonEmpty { get; init; }
    public override string Describe() => NonEmpty ? $"file {Path} (non-empty)" : $"file {Path}";
}
