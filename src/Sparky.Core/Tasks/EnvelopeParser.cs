using System.Text.Json;
using System.Text.Json.Nodes;

namespace Sparky.Core.Tasks;

/// <summary>
/// Turns what a client sent into a <see cref="Submission"/>, or into every reason it is refused.
/// Three shapes mean the same task:
/// <list type="bullet">
/// <item>the seed envelope <c>{id?, class?, payload: {command, env, cwd, timeout_seconds, resources, retries}}</c>;</item>
/// <item>the replaced runner's nested form <c>{tenant?, workflow_id?, execution: {command, env, working_dir, timeout_seconds, resources}}</c>,
/// at the top level or inside <c>payload</c> (as that system's clients send it);</item>
/// <item>the flat native form, the payload's fields at the top level.</item>
/// </list>
/// Native extras may sit at the top level of any shape: <c>name</c>, <c>after</c>, <c>array</c>.
/// A <c>payload</c> with neither <c>command</c> nor <c>execution</c> (any JSON value: <c>{"method": "grpo"}</c>,
/// <c>"demo"</c>) names work for its class's handler (<see cref="TaskSpec.HandlerPayload"/>).
/// </summary>
public static class EnvelopeParser
{
    public const int MaxNameLength = 256;
    public const int MaxArgs = 10_000;
    public const int MaxRetries = 100;
    /// <summary>A year and a day: far past any real task, and well within what a deadline (a
    /// <see cref="DateTimeOffset"/>, a timer) can hold from now; 1e18 threw at the task's start.</summary>
    public const double MaxTimeoutSeconds = 366 * 86400;
    /// <summary>Linux's MAX_ARG_STRLEN (32 pages): execve refuses any one argument or <c>NAME=value</c> longer than
    /// this, NUL included (E2BIG). Refused at submit instead of failing at start with a made-up exit code.</summary>
    public const int MaxArgBytes = 32 * 4096;
    /// <summary>The most nodes a task may ask for; a cluster's own size is checked by its executor.</summary>
    public const int MaxNodes = 4096;

    public static EnvelopeResult Parse(JsonNode? node, IReadOnlySet<string> knownClasses, EnvelopeOptions? options = null)
    {
        options ??= EnvelopeOptions.Native;
        var errors = new List<string>();
        if (JsonChecks.FirstProblem(node) is { } problem) return EnvelopeResult.Fail(problem);
        if (node is not JsonObject root)
            return EnvelopeResult.Fail($"expected a JSON object, got {Kind(node)}");

        TaskId? id = null;
        if (root.TryGetPropertyValue("id", out var idNode) && idNode is not null)
        {
            if (Str(idNode) is { } s && TaskId.TryParse(s, out var parsed)) id = parsed;
            else errors.Add($"id must be a string matching {TaskId.Pattern}");
        }

        string cls = Classes.CpuShort;
        if (root.TryGetPropertyValue("class", out var classNode) && classNode is not null)
        {
            var s = Str(classNode);
            if (s is null) errors.Add("class must be a string");
            else if (!knownClasses.Contains(s)) errors.Add(UnknownClass(s, knownClasses));
            else cls = s;
        }

        string? name = null;
        if (root.TryGetPropertyValue("name", out var nameNode) && nameNode is not null)
        {
            name = Str(nameNode);
            if (name is null || !NameOk(name))
            {
                errors.Add(NameMessage);
                name = null;
            }
        }

        var after = new List<TaskId>();
        if (root.TryGetPropertyValue("after", out var afterNode) && afterNode is not null)
        {
            if (afterNode is not JsonArray arr) errors.Add("after must be an array of task ids");
            else
                foreach (var a in arr)
                {
                    if (Str(a) is { } s && TaskId.TryParse(s, out var dep)) after.Add(dep);
                    else { errors.Add($"after holds an invalid task id (must match {TaskId.Pattern})"); break; }
                }
        }

        ArrayRange? array = null;
        if (root.TryGetPropertyValue("array", out var arrayNode) && arrayNode is not null)
        {
            if (Str(arrayNode) is { } s && ArrayRange.TryParse(s, out var r, out var err)) array = r;
            else errors.Add(Str(arrayNode) is null ? "array must be a string such as \"0-99\"" : err_(arrayNode));
        }

        TaskSpec? spec = null;
        if (root["payload"] is JsonNode payload)
        {
            if (payload is JsonObject p && p.ContainsKey("command"))
            {
                if (p.ContainsKey("execution")) errors.Add("payload holds both command and execution: send one");
                else spec = ParsePayload(p, errors);
            }
            else if (payload is JsonObject nested && nested.ContainsKey("execution"))
            {
                // The replaced runner's clients (its training pipeline, its gRPC server) send its form inside payload.
                if (nested["execution"] is JsonObject e) spec = ParseExecution(e, errors, "payload.execution");
                else errors.Add($"payload.execution must be an object, got {Kind(nested["execution"])}");
            }
            else spec = HandlerTask(payload, cls, options, errors);
        }
        else if (root["execution"] is JsonNode execution)
        {
            if (execution is JsonObject e) spec = ParseExecution(e, errors, "execution");
            else errors.Add($"execution must be an object, got {Kind(execution)}");
        }
        else if (root.ContainsKey("command"))
        {
            spec = ParsePayload(root, errors);
        }
        else if (options.CompatDoor)
        {
            // The replaced orchestrator took an envelope without a payload (or with null) as an empty one: {} to the handler.
            spec = HandlerTask(new JsonObject(), cls, options, errors);
        }
        else
        {
            errors.Add("missing command: send payload.command (or execution.command)");
        }

        var outputs = ParseArtifacts(root, errors);
        if (errors.Count > 0 || spec is null) return new EnvelopeResult(null, errors);
        spec = spec with { Class = cls, Name = name, After = after, Outputs = outputs };
        return new EnvelopeResult(new Submission(id, spec, root, array), errors);

        static string err_(JsonNode n) { ArrayRange.TryParse(Str(n), out _, out var e); return e; }
    }

    /// <summary>
    /// What <see cref="Parse"/> would refuse in a submission built in this process instead of parsed (a plan's tasks):
    /// the same checks, in the same order and words, as its envelope gets at the native door in the payload form
    /// (<c>payload.command</c>, <c>env</c>, …). Ids, dependencies and the array are typed, so valid already; declared
    /// outputs and handler payloads are not checked (nothing in this process builds them). Empty when it is accepted.
    /// </summary>
    public static IReadOnlyList<string> Check(Submission submission, IReadOnlySet<string> knownClasses)
    {
        if (JsonChecks.FirstProblem(submission.Envelope) is { } problem) return [problem];
        var spec = submission.Spec;
        var errors = new List<string>();
        if (!knownClasses.Contains(spec.Class)) errors.Add(UnknownClass(spec.Class, knownClasses));
        if (spec.Name is { } name && !NameOk(name)) errors.Add(NameMessage);
        if (spec.Argv is { } argv)
        {
            if (argv.Count == 0) errors.Add("command must not be empty");
            else if (argv.Count > MaxArgs) errors.Add(TooManyArgs("command", argv.Count));
            else if (argv.Select((a, i) => ArgProblem(a, "command", i)).FirstOrDefault(p => p is not null) is { } bad) errors.Add(bad);
            else if (argv[0].Length == 0) errors.Add(EmptyProgram("command"));
        }
        else if (spec.Shell is { } shell)
        {
            if (ShellProblem(shell, "command") is { } wrong) errors.Add(wrong);
        }
        else if (spec.HandlerPayload is null) errors.Add("missing command");
        foreach (var (k, v) in spec.Env)
        {
            if (!EnvNameOk(k)) errors.Add(EnvNameMessage("env"));
            else if (EnvValueProblem(k, v, "env") is { } bad) errors.Add(bad);
        }
        if (spec.Cwd is { } cwd && !PathOk(cwd)) errors.Add(PathMessage("cwd"));
        if (spec.TimeoutSeconds is { } timeout && !TimeoutOk(timeout)) errors.Add(TimeoutMessage("timeout_seconds"));
        if (spec.Retries is < 0 or > MaxRetries) errors.Add(IntMessage("retries", 0, MaxRetries));
        if (spec.Cpus is { } cpus && !NonNegativeOk(cpus)) errors.Add(NonNegativeMessage("resources.cpus"));
        if (spec.MemoryMb < 0) errors.Add(NonNegativeMessage("resources.memory_mb"));
        if (spec.Gpus is < 0 or > 1024) errors.Add(IntMessage("resources.gpus", 0, 1024));
        if (spec.GpuMemoryMb < 0) errors.Add(NonNegativeMessage("resources.gpu_memory_mb"));
        CheckGpuShare(spec.Gpus, spec.GpuMemoryMb, errors);
        if (spec.Nodes is < 1 or > MaxNodes) errors.Add(IntMessage("resources.nodes", 1, MaxNodes));
        if (spec.GpusPerNode is < 0 or > 1024) errors.Add(IntMessage("resources.gpus_per_node", 0, 1024));
        if (spec.ProcsPerNode is < 1 or > 1024) errors.Add(IntMessage("resources.procs_per_node", 1, 1024));
        CheckNodes(spec.Nodes, spec.Gpus, spec.GpusPerNode, errors);
        return errors;
    }

    private static TaskSpec? ParsePayload(JsonObject p, List<string> errors)
    {
        int before = errors.Count;
        var (argv, shell) = ParseCommand(p["command"], "command", errors);
        var env = ParseEnv(p["env"], "env", errors);
        var cwd = OptionalPath(p["cwd"], "cwd", errors);
        var timeout = OptionalTimeout(p["timeout_seconds"], "timeout_seconds", errors);
        int? retries = OptionalInt(p["retries"], "retries", 0, MaxRetries, errors);
        double? cpus = null;
        long? memMb = null, gpuMemMb = null;
        int? gpus = null;
        if (p["resources"] is JsonNode resNode)
        {
            if (resNode is JsonObject res)
            {
                cpus = OptionalNonNegative(res["cpus"], "resources.cpus", errors);
                memMb = Mb(OptionalNonNegative(res["memory_mb"], "resources.memory_mb", errors), 1);
                gpus = OptionalInt(res["gpus"], "resources.gpus", 0, 1024, errors);
                gpuMemMb = Mb(OptionalNonNegative(res["gpu_memory_mb"], "resources.gpu_memory_mb", errors), 1);
                if (gpuMemMb is null or 0) gpuMemMb = Mb(OptionalNonNegative(res["gpu_memory_gb"], "resources.gpu_memory_gb", errors), 1024) ?? gpuMemMb;
            }
            else errors.Add("resources must be an object");
        }
        var placing = ParseNodeOptions(p, "", "resources.gpus", gpus ?? 0, errors);
        CheckGpuShare(gpus ?? 0, gpuMemMb ?? 0, errors);
        if (errors.Count > before) return null;
        return TaskSpec.Of(argv, shell, placing with
        {
            Env = env, Cwd = cwd, TimeoutSeconds = timeout, Retries = retries, Cpus = cpus, MemoryMb = memMb, Gpus = gpus, GpuMemoryMb = gpuMemMb,
        });
    }

    /// <summary>
    /// A task's rendezvous port and node options, read the same way in every form of the envelope: <c>port</c> beside
    /// the command, <c>nodes</c>, <c>gpus_per_node</c>, <c>procs_per_node</c> and <c>exclusive</c> in its
    /// <c>resources</c> (<paramref name="at"/>: where that object is, "" or "execution."). Errors name the field where
    /// it was sent. <paramref name="gpusField"/> and <paramref name="gpus"/>: that form's whole-GPU count.
    /// </summary>
    private static TaskOptions ParseNodeOptions(JsonObject o, string at, string gpusField, int gpus, List<string> errors)
    {
        bool? port = OptionalBool(o["port"], at + "port", errors);
        int? nodes = null, gpusPerNode = null, procsPerNode = null;
        bool? exclusive = null;
        if (o["resources"] is JsonObject res)
        {
            nodes = OptionalInt(res["nodes"], at + "resources.nodes", 1, MaxNodes, errors);
            gpusPerNode = OptionalInt(res["gpus_per_node"], at + "resources.gpus_per_node", 0, 1024, errors);
            procsPerNode = OptionalInt(res["procs_per_node"], at + "resources.procs_per_node", 1, 1024, errors);
            exclusive = OptionalBool(res["exclusive"], at + "resources.exclusive", errors);
        }
        CheckNodes(nodes, gpus, gpusPerNode, errors, at, gpusField);
        return new TaskOptions { Port = port, Nodes = nodes, GpusPerNode = gpusPerNode, ProcsPerNode = procsPerNode, Exclusive = exclusive };
    }

    /// <summary>A payload that names work instead of a command: any JSON value, kept as it came for the class's handler.
    /// The replaced system's doors take it whatever the class, as its runner did (without a handler it is kept, and ends
    /// failed, <c>no_handler</c>, saying what to set); the native doors take it only where the class has a handler.</summary>
    private static TaskSpec? HandlerTask(JsonNode payload, string cls, EnvelopeOptions options, List<string> errors)
    {
        if (!options.CompatDoor && !options.HandlerClasses.Contains(cls))
        {
            errors.Add("missing command: send payload.command (or execution.command); " + Handlers.NoHandlerMessage(cls));
            return null;
        }
        return new TaskSpec { HandlerPayload = payload.ToJsonString() };
    }

    private static TaskSpec? ParseExecution(JsonObject e, List<string> errors, string at)
    {
        int before = errors.Count;
        var (argv, shell) = ParseCommand(e["command"], at + ".command", errors);
        var env = ParseEnv(e["env"], at + ".env", errors);
        var cwd = OptionalPath(e["working_dir"], at + ".working_dir", errors);
        var timeout = OptionalTimeout(e["timeout_seconds"], at + ".timeout_seconds", errors);
        double? cpus = null;
        long? memMb = null, gpuMemMb = null;
        int? gpus = null;
        if (e["resources"] is JsonNode resNode)
        {
            if (resNode is JsonObject res)
            {
                if (OptionalNonNegative(res["cpu_millicores"], at + ".resources.cpu_millicores", errors) is { } mc) cpus = mc / 1000.0;
                if (OptionalNonNegative(res["mem_bytes"], at + ".resources.mem_bytes", errors) is { } mb) memMb = (long)Math.Ceiling(mb / (1024.0 * 1024.0));
                gpus = OptionalInt(res["gpu_count"], at + ".resources.gpu_count", 0, 1024, errors);
                gpuMemMb = Mb(OptionalNonNegative(res["gpu_memory_gb"], at + ".resources.gpu_memory_gb", errors), 1024);
                // The replaced runner sent both a count and the memory it needs on each; that is whole GPUs.
                if (gpus > 0) gpuMemMb = null;
            }
            else errors.Add(at + ".resources must be an object");
        }
        // Sparky's own options, where the native form has them: port beside the command, the node options in resources.
        var placing = ParseNodeOptions(e, at + ".", at + ".resources.gpu_count", gpus ?? 0, errors);
        if (errors.Count > before) return null;
        return TaskSpec.Of(argv, shell, placing with
        {
            Env = env, Cwd = cwd, TimeoutSeconds = timeout, Cpus = cpus, MemoryMb = memMb, Gpus = gpus, GpuMemoryMb = gpuMemMb,
        });
    }

    public const int MaxOutputs = 1000;
    /// <summary>Linux's PATH_MAX, the NUL included.</summary>
    public const int MaxPathBytes = 4096;

    /// <summary>
    /// The declared output artifacts, <c>artifacts: {"outputs": [{"path", "type"?, "name"?}]}</c>, at the envelope's top
    /// level or inside <c>payload</c> (where the replaced system's clients put it); both are read. <c>inputs</c> and
    /// fields unknown here are kept in the stored envelope and not acted on. Null when none is declared.
    /// </summary>
    private static IReadOnlyList<DeclaredOutput>? ParseArtifacts(JsonObject root, List<string> errors)
    {
        List<DeclaredOutput>? outputs = null;
        ReadFrom(root["artifacts"], "artifacts");
        if (root["payload"] is JsonObject p) ReadFrom(p["artifacts"], "payload.artifacts");
        return outputs;

        void ReadFrom(JsonNode? node, string field)
        {
            if (node is null) return;
            if (node is not JsonObject a) { errors.Add($"{field} must be an object such as {{\"outputs\": [{{\"path\": \"out.json\"}}]}}, got {Kind(node)}"); return; }
            if (a["outputs"] is not JsonNode list) return;
            if (list is not JsonArray arr) { errors.Add($"{field}.outputs must be an array of {{\"path\", \"type\"?, \"name\"?}}, got {Kind(list)}"); return; }
            for (int i = 0; i < arr.Count; i++)
            {
                var at = $"{field}.outputs[{i}]";
                if (arr[i] is not JsonObject o) { errors.Add($"{at} must be an object with a path, got {Kind(arr[i])}"); return; }
                var path = Str(o["path"]);
                if (string.IsNullOrEmpty(path) || path.Contains('\0')) { errors.Add($"{at}.path must be a non-empty string without NUL bytes"); return; }
                if (System.Text.Encoding.UTF8.GetByteCount(path) >= MaxPathBytes) { errors.Add($"{at}.path is longer than a path can be ({MaxPathBytes - 1} bytes)"); return; }
                string? type = null, name = null;
                if (o["type"] is JsonNode t && (type = Str(t)) is null) { errors.Add($"{at}.type must be a string"); return; }
                if (o["name"] is JsonNode n && (name = Str(n)) is null) { errors.Add($"{at}.name must be a string"); return; }
                outputs ??= [];
                if (outputs.Count == MaxOutputs) { errors.Add($"at most {MaxOutputs} output artifacts may be declared"); return; }
                outputs.Add(new DeclaredOutput(path, type, name));
            }
        }
    }

    /// <summary>A size in MiB from a number in units of <paramref name="unitMb"/>, rounded up; null when absent.</summary>
    private static long? Mb(double? value, double unitMb) => value is { } v ? MiB(v, unitMb) : null;

    /// <summary>A size in MiB, as a field of the envelope is read: from a number in units of <paramref name="unitMb"/>,
    /// rounded up, and capped where adding two of them cannot overflow.</summary>
    public static long MiB(double value, double unitMb = 1) => (long)Math.Min(long.MaxValue / 2, Math.Ceiling(value * unitMb));

    private static void CheckGpuShare(int gpus, long gpuMemMb, List<string> errors)
    {
        if (gpuMemMb > 0 && gpus > 1)
            errors.Add("resources.gpu_memory_mb is a share of one GPU; it cannot go with gpus > 1 (ask for whole GPUs, or for a share)");
    }

    /// <summary>GPUs on several nodes are asked per node: a total would not say how they split.</summary>
    private static void CheckNodes(int? nodes, int gpus, int? gpusPerNode, List<string> errors, string at = "", string gpusField = "resources.gpus")
    {
        if (nodes > 1 && gpus > 0 && gpusPerNode is null)
            errors.Add($"{gpusField} is a count on one machine; with {at}resources.nodes > 1 ask for {at}resources.gpus_per_node");
        if (gpus > 0 && gpusPerNode > 0 && gpus != gpusPerNode * (nodes ?? 1))
            errors.Add($"{gpusField} and {at}resources.gpus_per_node disagree: send one of them");
    }

    private static bool? OptionalBool(JsonNode? node, string field, List<string> errors)
    {
        if (node is null) return null;
        if (node is JsonValue v && v.GetValueKind() is JsonValueKind.True or JsonValueKind.False) return v.GetValue<bool>();
        errors.Add($"{field} must be true or false");
        return null;
    }

    private static (IReadOnlyList<string>?, string?) ParseCommand(JsonNode? node, string field, List<string> errors)
    {
        switch (node)
        {
            case null:
                errors.Add($"missing {field}");
                return (null, null);
            case JsonArray arr:
                if (arr.Count == 0) { errors.Add($"{field} must not be empty"); return (null, null); }
                if (arr.Count > MaxArgs) { errors.Add(TooManyArgs(field, arr.Count)); return (null, null); }
                var argv = new List<string>(arr.Count);
                foreach (var a in arr)
                {
                    if (Str(a) is not { } s) { errors.Add($"{field} must hold only strings"); return (null, null); }
                    if (ArgProblem(s, field, argv.Count) is { } bad) { errors.Add(bad); return (null, null); }
                    argv.Add(s);
                }
                if (argv[0].Length == 0) { errors.Add(EmptyProgram(field)); return (null, null); }
                return (argv, null);
            default:
                var str = Str(node);
                if (str is null) { errors.Add($"{field} must be an array of strings or a string, got {Kind(node)}"); return (null, null); }
                if (ShellProblem(str, field) is { } wrong) { errors.Add(wrong); return (null, null); }
                return (null, str);
        }
    }

    private static string TooManyArgs(string field, int count) => $"{field} has {count} arguments; at most {MaxArgs}";
    private static string EmptyProgram(string field) => $"{field}[0] must not be empty";

    /// <summary>What is wrong with argument <paramref name="index"/> of an argv, or null.</summary>
    private static string? ArgProblem(string s, string field, int index)
    {
        if (s.Contains('\0')) return $"{field} must not contain a NUL byte";
        if (TooLong(s, 0) is { } n) return $"{field}[{index}] is {n} bytes; the kernel takes at most {MaxArgBytes - 1} in one argument";
        return null;
    }

    private static string? ShellProblem(string s, string field)
    {
        if (string.IsNullOrWhiteSpace(s)) return $"{field} must not be empty";
        if (s.Contains('\0')) return $"{field} must not contain a NUL byte";
        if (TooLong(s, 0) is { } len) return $"{field} is {len} bytes; the kernel takes at most {MaxArgBytes - 1} in one argument (the shell's)";
        return null;
    }

    private static IReadOnlyDictionary<string, string> ParseEnv(JsonNode? node, string field, List<string> errors)
    {
        var env = new Dictionary<string, string>(StringComparer.Ordinal);
        if (node is null) return env;
        if (node is not JsonObject obj) { errors.Add($"{field} must be an object of strings"); return env; }
        foreach (var (k, v) in obj)
        {
            if (!EnvNameOk(k)) { errors.Add(EnvNameMessage(field)); continue; }
            var s = v is JsonValue jv && jv.GetValueKind() is JsonValueKind.Number or JsonValueKind.True or JsonValueKind.False
                ? jv.ToJsonString()
                : Str(v);
            if (s is null) { errors.Add($"{field}.{Clip(k)} must be a string"); continue; }
            if (EnvValueProblem(k, s, field) is { } bad) { errors.Add(bad); continue; }
            env[k] = s;
        }
        return env;
    }

    private static bool EnvNameOk(string k) => k.Length > 0 && !k.Contains('=') && !k.Contains('\0');
    private static string EnvNameMessage(string field) => $"{field} has an invalid variable name";

    private static string? EnvValueProblem(string k, string s, string field)
    {
        if (s.Contains('\0')) return $"{field}.{Clip(k)} must not contain a NUL byte";
        if (TooLong(s, k.Length + 1) is { } n) return $"{field}.{Clip(k)} is {n} bytes with its name; the kernel takes at most {MaxArgBytes - 1} in one variable";
        return null;
    }

    private static string? OptionalPath(JsonNode? node, string field, List<string> errors)
    {
        if (node is null) return null;
        var s = Str(node);
        if (s is null || !PathOk(s)) { errors.Add(PathMessage(field)); return null; }
        return s;
    }

    private static bool PathOk(string s) => s.Length > 0 && !s.Contains('\0');
    private static string PathMessage(string field) => $"{field} must be a non-empty string without NUL bytes";

    private static double? OptionalTimeout(JsonNode? node, string field, List<string> errors)
    {
        if (node is null) return null;
        if (Num(node) is { } d && TimeoutOk(d)) return d;
        errors.Add(TimeoutMessage(field));
        return null;
    }

    private static bool TimeoutOk(double d) => d > 0 && d <= MaxTimeoutSeconds;
    private static string TimeoutMessage(string field) => $"{field} must be a positive number of seconds, at most {MaxTimeoutSeconds:0} (a year and a day)";

    private static double? OptionalNonNegative(JsonNode? node, string field, List<string> errors)
    {
        if (node is null) return null;
        if (Num(node) is { } d && NonNegativeOk(d)) return d;
        errors.Add(NonNegativeMessage(field));
        return null;
    }

    private static bool NonNegativeOk(double d) => d >= 0 && double.IsFinite(d);
    private static string NonNegativeMessage(string field) => $"{field} must be a non-negative number";

    private static int? OptionalInt(JsonNode? node, string field, int min, int max, List<string> errors)
    {
        if (node is null) return null;
        if (Num(node) is { } d && d == Math.Floor(d) && d >= min && d <= max) return (int)d;
        errors.Add(IntMessage(field, min, max));
        return null;
    }

    private static string IntMessage(string field, int min, int max) => $"{field} must be an integer from {min} to {max}";

    private static string UnknownClass(string cls, IReadOnlySet<string> knownClasses) =>
        $"unknown class '{Clip(cls)}' (known: {string.Join(", ", knownClasses.Order())})";

    private static bool NameOk(string name) => name.Length <= MaxNameLength && !name.Any(char.IsControl);
    private static readonly string NameMessage = $"name must be a string of at most {MaxNameLength} printable characters";

    /// <summary>The UTF-8 length of <paramref name="s"/> plus <paramref name="extra"/> bytes when that and its NUL are
    /// over <see cref="MaxArgBytes"/>; null when it fits. Counted only for strings that could be too long.</summary>
    private static long? TooLong(string s, int extra)
    {
        if ((long)s.Length * 3 + extra < MaxArgBytes) return null;
        long n = System.Text.Encoding.UTF8.GetByteCount(s) + (long)extra;
        return n + 1 > MaxArgBytes ? n : null;
    }

    private static string? Str(JsonNode? n) =>
        n is JsonValue v && v.GetValueKind() == JsonValueKind.String ? v.GetValue<string>() : null;

    /// <summary>A JSON number, whether parsed from text or built in code (where an int does not read as a double).</summary>
    private static double? Num(JsonNode? n)
    {
        if (n is not JsonValue v || v.GetValueKind() != JsonValueKind.Number) return null;
        if (v.TryGetValue<double>(out var d)) return d;
        if (v.TryGetValue<long>(out var l)) return l;
        if (v.TryGetValue<int>(out var i)) return i;
        return double.Parse(v.ToJsonString(), System.Globalization.CultureInfo.InvariantCulture);
    }

    private static string Kind(JsonNode? n) => n switch
    {
        null => "null",
        JsonObject => "an object",
        JsonArray => "an array",
        JsonValue v => v.GetValueKind().ToString().ToLowerInvariant(),
        _ => "something else",
    };

    private static string Clip(string s) => s.Length <= 40 ? s : s[..40] + "…";
}

/// <summary>Which door an envelope came through, and what that door takes.</summary>
public sealed record EnvelopeOptions
{
    /// <summary>The replaced system's doors (<c>POST /queue/submit</c>, the drop directory): a payload that names work
    /// instead of a command is accepted in any class, as that system's runner accepted it.</summary>
    public bool CompatDoor { get; init; }
    /// <summary>Classes with a handler (<c>&lt;class&gt;_handler</c>, or a batch template on Slurm): at the native doors,
    /// only these take a payload without a command.</summary>
    public IReadOnlySet<string> HandlerClasses { get; init; } = new HashSet<string>();

    public static readonly EnvelopeOptions Native = new();
}

public sealed record EnvelopeResult(Submission? Submission, IReadOnlyList<string> Errors)
{
    public bool Ok => Submission is not null;
    public string Error => string.Join("; ", Errors);
    public static EnvelopeResult Fail(string error) => new(null, [error]);
}
