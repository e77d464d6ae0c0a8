using System.Text.Json;
using System.Text.Json.Nodes;
using Sparky.Core.Tasks;

namespace Sparky.Cli.Submit;

/// <summary>What <c>sparky submit</c> was asked, whichever parser read it: the System.CommandLine tree or
/// <see cref="QuickSubmitArgs"/>. One body builder for both keeps their requests the same.</summary>
internal sealed record SubmitRequest
{
    public required string[] Command { get; init; }
    public string? Server { get; init; }
    public bool Json { get; init; }
    public bool Wait { get; init; }
    public string? Class { get; init; }
    public string? Name { get; init; }
    public string? Id { get; init; }
    public double? Cpus { get; init; }
    public string? Mem { get; init; }
    public int? Gpus { get; init; }
    public string? GpuMem { get; init; }
    public bool Port { get; init; }
    public int? Nodes { get; init; }
    public int? GpusPerNode { get; init; }
    public int? ProcsPerNode { get; init; }
    public bool Exclusive { get; init; }
    public string[] After { get; init; } = [];
    public int? Retries { get; init; }
    public string? Timeout { get; init; }
    public string[] Env { get; init; } = [];
    public string? Cwd { get; init; }
    public string? Array { get; init; }

    /// <summary>The body of <c>POST /api/v1/tasks</c> as UTF-8 JSON, written without System.Text.Json's converters
    /// (their start-up is a tenth of a quick submit's CPU); a bad value is a <see cref="CliException"/> with exit code 2.</summary>
    public byte[] Body()
    {
        // Checked before anything is written, in the order the verb has always checked them.
        var env = new List<(string Key, string Value)>();
        foreach (var kv in Env)
        {
            int eq = kv.IndexOf('=');
            if (eq <= 0) throw new CliException($"--env wants K=V, got '{kv}'", 2);
            int known = env.FindIndex(e => e.Key == kv[..eq]);
            if (known >= 0) env[known] = (kv[..eq], kv[(eq + 1)..]); // a key given twice: the last value, in the first place
            else env.Add((kv[..eq], kv[(eq + 1)..]));
        }
        var cwd = Path.GetFullPath(Cwd ?? Environment.CurrentDirectory);
        double? timeoutSeconds = null;
        if (Timeout is { } t)
        {
            if (!Durations.TryParseSeconds(t, out var secs)) throw new CliException($"--timeout wants a duration such as 90, 30s, 5m, 1h; got '{t}'", 2);
            timeoutSeconds = secs;
        }
        long? memoryMb = null, gpuMemoryMb = null;
        if (Mem is { } m)
        {
            if (!MemorySizes.TryParseMb(m, out var mb)) throw new CliException($"--mem wants a size such as 512M or 4G; got '{m}'", 2);
            memoryMb = mb;
        }
        if (GpuMem is { } gm)
        {
            if (!MemorySizes.TryParseMb(gm, out var gmb) || gmb == 0) throw new CliException($"--gpu-mem wants a size such as 20G or 512M; got '{gm}'", 2);
            gpuMemoryMb = gmb;
        }

        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream))
        {
            w.WriteStartObject();
            w.WriteStartObject("payload");
            // One argument with shell syntax runs in /bin/sh: sent as a string.
            if (Command.Length == 1 && Command[0].Any(ch => char.IsWhiteSpace(ch) || "|&;<>()$`\\\"'*?[]#~=%".Contains(ch)))
                w.WriteString("command", Command[0]);
            else
                WriteStrings(w, "command", Command);
            if (env.Count > 0)
            {
                w.WriteStartObject("env");
                foreach (var (k, v) in env) w.WriteString(k, v);
                w.WriteEndObject();
            }
            w.WriteString("cwd", cwd);
            if (timeoutSeconds is { } ts) w.WriteNumber("timeout_seconds", ts);
            if (Retries is { } r) w.WriteNumber("retries", r);
            if (Port) w.WriteBoolean("port", true);
            if (Cpus is not null || memoryMb is not null || Gpus is not null || gpuMemoryMb is not null || Nodes is not null
                || GpusPerNode is not null || ProcsPerNode is not null || Exclusive)
            {
                w.WriteStartObject("resources");
                if (Cpus is { } cp) w.WriteNumber("cpus", cp);
                if (memoryMb is { } mb) w.WriteNumber("memory_mb", mb);
                if (Gpus is { } g) w.WriteNumber("gpus", g);
                if (gpuMemoryMb is { } gmb) w.WriteNumber("gpu_memory_mb", gmb);
                if (Nodes is { } nn) w.WriteNumber("nodes", nn);
                if (GpusPerNode is { } gpn) w.WriteNumber("gpus_per_node", gpn);
                if (ProcsPerNode is { } ppn) w.WriteNumber("procs_per_node", ppn);
                if (Exclusive) w.WriteBoolean("exclusive", true);
                w.WriteEndObject();
            }
            w.WriteEndObject();
            if (Id is { } i) w.WriteString("id", i);
            if (Class is { } cl) w.WriteString("class", cl);
            if (Name is { } n) w.WriteString("name", n);
            if (Array is { } a) w.WriteString("array", a);
            var deps = After.SelectMany(x => x.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)).ToArray();
            if (deps.Length > 0) WriteStrings(w, "after", deps);
            w.WriteEndObject();
        }
        return stream.ToArray();
    }

    private static void WriteStrings(Utf8JsonWriter w, string name, IEnumerable<string> values)
    {
        w.WriteStartArray(name);
        foreach (var v in values) w.WriteStringValue(v);
        w.WriteEndArray();
    }

    /// <summary>The ids of the daemon's answer, one a line, or the answer itself with --json.</summary>
    public static string Render(JsonNode? reply, IReadOnlyList<string> ids, bool json) =>
        json ? reply!.ToJsonString() + "\n" : string.Concat(ids.Select(x => x + "\n"));

    /// <summary>The ids a submission's answer names; null when it is not a Sparky daemon's answer.</summary>
    public static List<string>? Ids(JsonNode reply) =>
        reply["ids"] is JsonArray idArray ? idArray.Select(x => (string)x!).ToList() : null;
}
