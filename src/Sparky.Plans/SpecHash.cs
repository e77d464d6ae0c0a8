using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace Sparky.Plans;

/// <summary>
/// Hashes that let a second <c>plan run</c> tell what changed. A workstream's hash covers its resolved tasks
/// (defaults applied, vars substituted: what would actually run) and the hashes of every workstream in earlier
/// phases, so a change anywhere makes everything after it new, and a crash-resume of the same file changes nothing.
/// Comments, whitespace, key order and YAML style never reach the hash: only the canonical JSON does.
/// </summary>
public static class SpecHash
{
    /// <summary>The phases with <see cref="Workstream.Hash"/> and <see cref="Phase.GateKey"/> filled in.</summary>
    public static IReadOnlyList<Phase> Apply(IReadOnlyList<Phase> phases)
    {
        var result = new List<Phase>(phases.Count);
        string upstream = "";
        foreach (var phase in phases)
        {
            var streams = phase.Workstreams
                .Select(w => w with { Hash = Sha256(CanonicalJson(phase.Name, w) + "\n" + upstream) })
                .ToList();
            upstream = Sha256(upstream + "\n" + string.Join("\n", streams.Select(w => w.Hash)));
            var gateKey = Sha256(GateJson(phase.Gate) + "\n" + string.Join("\n", streams.Select(w => w.Hash)));
            result.Add(phase with { Workstreams = streams, GateKey = gateKey });
        }
        return result;
    }

    /// <summary>The workstream as canonical JSON: fixed key order, absent options left out, env sorted.</summary>
    public static string CanonicalJson(string phase, Workstream w)
    {
        using var buffer = new MemoryStream();
        using (var j = new Utf8JsonWriter(buffer))
        {
            j.WriteStartObject();
            j.WriteString("phase", phase);
            j.WriteString("workstream", w.Name);
            j.WriteStartArray("tasks");
            foreach (var t in w.Tasks) WriteTask(j, t);
            j.WriteEndArray();
            j.WriteEndObject();
        }
        return Encoding.UTF8.GetString(buffer.ToArray());
    }

    private static void WriteTask(Utf8JsonWriter j, PlanTask t)
    {
        j.WriteStartObject();
        j.WriteString("name", t.Name);
        if (t.Argv is { } argv)
        {
            j.WriteStartArray("argv");
            foreach (var a in argv) j.WriteStringValue(a);
            j.WriteEndArray();
        }
        if (t.Shell is { } shell) j.WriteString("shell", shell);
        var o = t.Options;
        if (o.Class is { } c) j.WriteString("class", c);
        if (o.Cpus is { } cpus) j.WriteNumber("cpus", cpus);
        if (o.MemoryMb is { } mem) j.WriteNumber("memory_mb", mem);
        if (o.Gpus is { } gpus) j.WriteNumber("gpus", gpus);
        if (o.GpuMemoryMb is { } gm) j.WriteNumber("gpu_memory_mb", gm);
        if (o.Port is { } port) j.WriteBoolean("port", port);
        if (o.Nodes is { } nodes) j.WriteNumber("nodes", nodes);
        if (o.GpusPerNode is { } gpn) j.WriteNumber("gpus_per_node", gpn);
        if (o.ProcsPerNode is { } ppn) j.WriteNumber("procs_per_node", ppn);
        if (o.Exclusive is { } exclusive) j.WriteBoolean("exclusive", exclusive);
        if (o.Retries is { } r) j.WriteNumber("retries", r);
        if (o.TimeoutSeconds is { } to) j.WriteNumber("timeout_seconds", to);
        if (o.Env.Count > 0)
        {
            j.WriteStartObject("env");
            foreach (var (k, v) in o.Env.OrderBy(kv => kv.Key, StringComparer.Ordinal)) j.WriteString(k, v);
            j.WriteEndObject();
        }
        if (o.Cwd is { } cwd) j.WriteString("cwd", cwd);
        if (t.After.Count > 0)
        {
            j.WriteStartArray("after");
            foreach (var a in t.After.Distinct().Order(StringComparer.Ordinal)) j.WriteStringValue(a);
            j.WriteEndArray();
        }
        if (t.Array is { } arr) j.WriteString("array", arr.ToString());
        j.WriteEndObject();
    }

    private static string GateJson(IReadOnlyList<GateCheck> gate)
    {
        using var buffer = new MemoryStream();
        using (var j = new Utf8JsonWriter(buffer))
        {
            j.WriteStartArray();
            foreach (var c in gate)
            {
                j.WriteStartObject();
                switch (c)
                {
                    case RunCheck r:
                        if (r.Argv is { } argv) { j.WriteStartArray("argv"); foreach (var a in argv) j.WriteStringValue(a); j.WriteEndArray(); }
                        if (r.Shell is { } s) j.WriteString("shell", s);
                        if (r.TimeoutSeconds is { } t) j.WriteNumber("timeout_seconds", t);
                        break;
                    case MetricCheck m:
                        j.WriteString("metric_file", m.File);
                        j.WriteString("path", m.Path);
                        if (m.Min is { } min) j.WriteNumber("min", min);
                        if (m.Max is { } max) j.WriteNumber("max", max);
                        if (m.EqualsValue is { } eq) j.WriteString("equals", eq);
                        break;
                    case FileCheck f:
                        j.WriteString("file", f.Path);
                        j.WriteBoolean("non_empty", f.NonEmpty);
                        break;
                }
                j.WriteEndObject();
            }
            j.WriteEndArray();
        }
        return Encoding.UTF8.GetString(buffer.ToArray());
    }

    public static string Sha256(string text) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)));
}
