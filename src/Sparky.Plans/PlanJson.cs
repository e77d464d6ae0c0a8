using System.Collections.Immutable;
using System.Text.Json.Nodes;

namespace Sparky.Plans;

/// <summary>
/// Plan state as JSON: <see cref="State"/>/<see cref="ReadState"/> for the store (round-trips exactly), and
/// <see cref="Report"/> for <c>plan status --json</c>, <c>GET /api/v1/plans/{name}</c> and <c>report.json</c>
/// (the daemon adds what only it knows: task states, attempts, durations, a run check's output tail).
/// </summary>
public static class PlanJson
{
    public static JsonObject State(PlanState state)
    {
        var ws = new JsonArray();
        foreach (var (k, r) in state.Workstreams.OrderBy(kv => kv.Key.Phase, StringComparer.Ordinal).ThenBy(kv => kv.Key.Workstream, StringComparer.Ordinal))
            ws.Add((JsonNode)new JsonObject
            {
                ["phase"] = k.Phase, ["workstream"] = k.Workstream, ["status"] = Name(r.Status),
                ["hash"] = r.Hash, ["attempt"] = r.Attempt, ["reason"] = r.Reason,
            });
        var gates = new JsonArray();
        foreach (var (phase, g) in state.Gates.OrderBy(kv => kv.Key, StringComparer.Ordinal))
            gates.Add((JsonNode)new JsonObject
            {
                ["phase"] = phase, ["status"] = Name(g.Status), ["key"] = g.Key, ["reason"] = g.Reason,
                ["results"] = g.Results is { } rs ? new JsonArray(rs.Select(r => (JsonNode?)new JsonObject { ["passed"] = r.Passed, ["output"] = r.Output }).ToArray()) : null,
            });
        var blocked = new JsonObject();
        foreach (var (phase, why) in state.BlockedPhases.OrderBy(kv => kv.Key, StringComparer.Ordinal)) blocked[phase] = why;
        return new JsonObject { ["v"] = 1, ["workstreams"] = ws, ["gates"] = gates, ["blocked"] = blocked };
    }

    /// <exception cref="FormatException">Not what <see cref="State"/> writes.</exception>
    public static PlanState ReadState(JsonNode? node)
    {
        try
        {
            var o = node!.AsObject();
            var ws = ImmutableDictionary.CreateBuilder<WorkstreamKey, WorkstreamRecord>();
            foreach (var w in o["workstreams"]!.AsArray())
                ws[new WorkstreamKey((string)w!["phase"]!, (string)w["workstream"]!)] = new WorkstreamRecord(
                    Enum.Parse<WorkstreamStatus>(Pascal((string)w["status"]!)), (string?)w["hash"], (int)w["attempt"]!, (string?)w["reason"]);
            var gates = ImmutableDictionary.CreateBuilder<string, GateRecord>();
            foreach (var g in o["gates"]!.AsArray())
                gates[(string)g!["phase"]!] = new GateRecord(
                    Enum.Parse<GateStatus>(Pascal((string)g["status"]!)), (string?)g["key"],
                    g["results"]?.AsArray().Select(r => new CheckResult((bool)r!["passed"]!, (string)r["output"]!)).ToList(),
                    (string?)g["reason"]);
            var blocked = ImmutableDictionary.CreateBuilder<string, string>();
            foreach (var (phase, why) in o["blocked"]!.AsObject()) blocked[phase] = (string)why!;
            return new PlanState { Workstreams = ws.ToImmutable(), Gates = gates.ToImmutable(), BlockedPhases = blocked.ToImmutable() };
        }
        catch (Exception e) when (e is NullReferenceException or InvalidOperationException or ArgumentException or FormatException)
        {
            throw new FormatException($"not a stored plan state: {e.Message}", e);
        }
    }

    /// <summary>The plan as a tree of phases → workstreams → tasks with each one's state, and each gate check's result.</summary>
    public static JsonObject Report(Plan plan, PlanState state)
    {
        var step = PlanEngine.Decide(plan, state);
        var phases = new JsonArray();
        foreach (var phase in plan.Phases)
        {
            var workstreams = new JsonArray();
            foreach (var w in phase.Workstreams)
            {
                var r = state.Of(phase.Name, w.Name);
                // A record of another spec is history: this workstream has not run as written now.
                var status = r.Hash == w.Hash || r.Status is WorkstreamStatus.Blocked ? r.Status : WorkstreamStatus.NotStarted;
                var wait = r.Hash == w.Hash ? state.WaitOf(phase.Name, w.Name) : null;
                workstreams.Add((JsonNode)new JsonObject
                {
                    ["name"] = w.Name,
                    // Pending: running as far as the plan goes, but the daemon has not taken its tasks yet.
                    ["status"] = wait is null ? Name(status) : "pending",
                    ["waiting"] = wait is null ? null : new JsonObject
                    {
                        ["status"] = wait.Status,
                        ["reason"] = wait.Reason,
                        ["since"] = wait.Since,
                        ["retry_at"] = wait.RetryAt,
                        ["tries"] = wait.Tries,
                    },
                    ["attempt"] = r.Attempt,
                    ["hash"] = w.Hash,
                    ["changed"] = r.Hash is not null && r.Hash != w.Hash,
                    ["on_failure"] = w.OnFailure == OnFailure.Continue ? "continue" : "stop",
                    ["reason"] = r.Reason,
                    ["tasks"] = new JsonArray(w.Tasks.Select(t => (JsonNode?)new JsonObject
                    {
                        ["name"] = t.Name,
                        ["after"] = new JsonArray(t.After.Select(a => (JsonNode?)a).ToArray()),
                        // How many tasks it will be, before it is submitted (a follower's done/total counts them).
                        ["array_size"] = t.Array?.Count,
                    }).ToArray()),
                });
            }
            var g = state.GateOf(phase.Name);
            bool current = g.Key == phase.GateKey;
            var checks = new JsonArray();
            for (int i = 0; i < phase.Gate.Count; i++)
            {
                var result = current && g.Results is { } rs && i < rs.Count ? rs[i] : null;
                checks.Add((JsonNode)new JsonObject
                {
                    ["check"] = phase.Gate[i].Describe(),
                    ["name"] = phase.Gate[i].Name,
                    ["passed"] = result?.Passed,
                    ["output"] = result?.Output,
                });
            }
            phases.Add((JsonNode)new JsonObject
            {
                ["name"] = phase.Name,
                ["status"] = Name(PlanEngine.StatusOf(plan, state, phase)),
                ["blocked_reason"] = state.BlockedPhases.GetValueOrDefault(phase.Name),
                ["workstreams"] = workstreams,
                ["gate"] = new JsonObject
                {
                    ["status"] = Name(current ? g.Status : GateStatus.NotRun),
                    ["reason"] = current ? g.Reason : null,
                    ["checks"] = checks,
                },
            });
        }
        var stopped = step.Decisions.OfType<PlanStopped>().FirstOrDefault();
        return new JsonObject
        {
            ["name"] = plan.Name,
            ["status"] = Name(step.Status),
            ["current_phase"] = step.CurrentPhase,
            ["reason"] = stopped?.Reason,
            ["waiting"] = Waiting(plan, state),
            ["phases"] = phases,
        };
    }

    /// <summary>One line on what the plan waits for, or null: the workstreams the daemon has not taken, and why.</summary>
    public static string? Waiting(Plan plan, PlanState state)
    {
        if (state.Waiting.IsEmpty) return null;
        var waiting = new List<(string Name, SubmitWait Wait)>();
        foreach (var phase in plan.Phases)
            foreach (var w in phase.Workstreams)
                if (state.Of(phase.Name, w.Name).Hash == w.Hash && state.WaitOf(phase.Name, w.Name) is { } wait)
                    waiting.Add(($"{phase.Name}/{w.Name}", wait));
        if (waiting.Count == 0) return null;
        var latest = waiting.MaxBy(w => w.Wait.RetryAt).Wait;
        var names = string.Join(", ", waiting.Take(5).Select(w => w.Name)) + (waiting.Count > 5 ? $" and {waiting.Count - 5} more" : "");
        return $"waiting to submit {names}: {latest.Reason} ({latest.Status}); trying again with backoff";
    }

    /// <summary>Enum names as the API writes them: <c>not_started</c>, <c>gating</c>, <c>succeeded</c>.</summary>
    public static string Name<T>(T value) where T : struct, Enum
    {
        var s = value.ToString();
        var sb = new System.Text.StringBuilder();
        for (int i = 0; i < s.Length; i++)
        {
            if (char.IsUpper(s[i]) && i > 0) sb.Append('_');
            sb.Append(char.ToLowerInvariant(s[i]));
        }
        return sb.ToString();
    }

    private static string Pascal(string snake) =>
        string.Concat(snake.Split('_').Select(p => p.Length == 0 ? p : char.ToUpperInvariant(p[0]) + p[1..]));
}
