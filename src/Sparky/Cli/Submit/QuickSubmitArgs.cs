namespace Sparky.Cli.Submit;

/// <summary>
/// Reads the common shapes of <c>sparky submit</c> (<c>submit [--option value]... [--] command...</c>) without building
/// the command tree, which costs more than the rest of a submission. Anything it is not sure reads exactly as the tree
/// would (--wait, --help, <c>--name=x</c>, a repeated option, a value that looks like an option, a response file, a
/// number that does not parse) gives null, and the tree reads it instead, errors and all.
/// </summary>
internal static class QuickSubmitArgs
{
    private enum Kind { Text, Many, Int, Number, Flag }

    private static readonly Dictionary<string, Kind> Options = new(StringComparer.Ordinal)
    {
        ["--server"] = Kind.Text, ["--class"] = Kind.Text, ["--name"] = Kind.Text, ["--id"] = Kind.Text, ["--mem"] = Kind.Text,
        ["--gpu-mem"] = Kind.Text, ["--timeout"] = Kind.Text, ["--cwd"] = Kind.Text, ["--array"] = Kind.Text,
        ["--after"] = Kind.Many, ["--env"] = Kind.Many,
        ["--gpus"] = Kind.Int, ["--retries"] = Kind.Int, ["--nodes"] = Kind.Int, ["--gpus-per-node"] = Kind.Int, ["--procs-per-node"] = Kind.Int,
        ["--cpus"] = Kind.Number,
        ["--port"] = Kind.Flag, ["--exclusive"] = Kind.Flag, ["--json"] = Kind.Flag,
    };

    // The help option's other spellings, which the tree takes for help even among a command's words.
    private static readonly HashSet<string> HelpWords = ["-h", "/h", "--help", "-?", "/?"];

    public static SubmitRequest? TryParse(IReadOnlyList<string> args)
    {
        if (args.Count < 2 || args[0] != "submit") return null;
        var text = new Dictionary<string, string>(StringComparer.Ordinal);
        var many = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        var flags = new HashSet<string>(StringComparer.Ordinal);
        var command = new List<string>();
        int i = 1;
        for (; i < args.Count; i++)
        {
            var token = args[i];
            if (token.StartsWith('@')) return null; // a response file: the tree expands it
            if (token == "--") { i++; break; }
            if (!token.StartsWith('-'))
            {
                // Before `--`, the tree still reads options among the command's words: only plain words are taken.
                if (HelpWords.Contains(token)) return null;
                command.Add(token);
                continue;
            }
            if (!Options.TryGetValue(token, out var kind)) return null;
            if (kind == Kind.Flag)
            {
                // A flag may take true or false as its value: leave that to the tree.
                if (i + 1 < args.Count && bool.TryParse(args[i + 1], out _)) return null;
                if (!flags.Add(token)) return null;
                continue;
            }
            if (i + 1 >= args.Count) return null;
            var value = args[++i];
            if (value.StartsWith('-') || value.StartsWith('@') || HelpWords.Contains(value)) return null;
            if (kind == Kind.Int && !int.TryParse(value, out _)) return null;
            if (kind == Kind.Number && !double.TryParse(value, out _)) return null;
            if (kind == Kind.Many) { if (!many.TryGetValue(token, out var list)) many[token] = list = []; list.Add(value); }
            else if (!text.TryAdd(token, value)) return null;
        }
        for (; i < args.Count; i++)
        {
            if (args[i].StartsWith('@')) return null;
            command.Add(args[i]);
        }
        if (command.Count == 0) return null;

        string? Text(string name) => text.GetValueOrDefault(name);
        int? Int(string name) => text.TryGetValue(name, out var v) ? int.Parse(v) : null;
        return new SubmitRequest
        {
            Command = [.. command],
            Server = Text("--server"),
            Json = flags.Contains("--json"),
            Class = Text("--class"),
            Name = Text("--name"),
            Id = Text("--id"),
            Cpus = text.TryGetValue("--cpus", out var cpus) ? double.Parse(cpus) : null,
            Mem = Text("--mem"),
            Gpus = Int("--gpus"),
            GpuMem = Text("--gpu-mem"),
            Port = flags.Contains("--port"),
            Nodes = Int("--nodes"),
            GpusPerNode = Int("--gpus-per-node"),
            ProcsPerNode = Int("--procs-per-node"),
            Exclusive = flags.Contains("--exclusive"),
            After = [.. many.GetValueOrDefault("--after") ?? []],
            Retries = Int("--retries"),
            Timeout = Text("--timeout"),
            Env = [.. many.GetValueOrDefault("--env") ?? []],
            Cwd = Text("--cwd"),
            Array = Text("--array"),
        };
    }
}
