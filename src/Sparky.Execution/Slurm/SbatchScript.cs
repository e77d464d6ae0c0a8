using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using Sparky.Core.Tasks;

namespace Sparky.Execution.Slurm;

/// <summary>Everything needed to render the batch script for one attempt of one Sparky task.</summary>
/// <param name="Cpus">Rounded up to whole CPUs; null leaves Slurm's default.</param>
/// <param name="MemoryMb">0 or less: no <c>--mem</c>.</param>
/// <param name="TimeoutSeconds">Rounded up to whole minutes (at least one); null: no <c>--time</c>.</param>
/// <param name="StdoutPath">Slurm filename patterns such as <c>%j</c> are allowed (and expanded by Slurm).</param>
/// <param name="ExtraOptions">Admin-configured <c>--opt</c> or <c>--opt=value</c> items, added last.</param>
public sealed record SbatchRequest(
    string TaskId, int Attempt, IReadOnlyList<string> Argv, IReadOnlyDictionary<string, string> Env, string? Cwd,
    string? Name, double? Cpus, long MemoryMb, int Gpus, double? TimeoutSeconds,
    string? Partition, string? Account, string StdoutPath, string StderrPath,
    IReadOnlyList<string> AfterOkJobIds, string? ArraySpec, IReadOnlyList<string> ExtraOptions)
{
    /// <summary>Tasks with the same group (the elements of one Sparky array, same spec) may go to Slurm as one job array.</summary>
    public string? ArrayGroup { get; init; }
    public int? ArrayIndex { get; init; }
    /// <summary>A filled batch template (<see cref="SbatchTemplate.Fill"/>): its text is the job, in place of <see cref="Argv"/>.
    /// Its own directives are kept; Sparky's (job name, output, error, comment, ...) come after them, so they win.</summary>
    public string? Template { get; init; }
    /// <summary>A file the command reads on stdin (a handler's payload); null: the job's default.</summary>
    public string? StdinPath { get; init; }
    /// <summary>An allocation of whole nodes, the command started once on each through <c>srun</c>; null: one task.</summary>
    public SbatchNodes? Nodes { get; init; }
}

/// <summary>A task on <paramref name="Count"/> nodes: one <c>srun</c> task per node, each with <c>NODE_RANK</c>, told the
/// first node's address and a port (<c>MASTER_ADDR</c>, <c>MASTER_PORT</c>), <c>NNODES</c> and
/// <c>SPARKY_PROCS_PER_NODE</c> (<paramref name="ProcsPerNode"/>), as torchrun's <c>--nnodes</c>, <c>--node-rank</c>,
/// <c>--nproc-per-node</c> and <c>--rdzv-endpoint</c> want them.</summary>
public sealed record SbatchNodes(int Count, int? GpusPerNode, int ProcsPerNode, bool Exclusive);

/// <summary>One element of a Slurm job array: the Sparky task it runs and that task's own log files.</summary>
public sealed record ArrayElement(int Index, string TaskId, string StdoutPath, string StderrPath);

/// <summary>
/// Renders a bash batch script for <c>sbatch</c>. Pure: no I/O. Write the result as UTF-8 without a BOM.
/// </summary>
/// <remarks>
/// Two places take untrusted text, and each has one rule:
/// <list type="bullet">
/// <item>#SBATCH lines: sbatch tokenises these itself (whitespace splits, quotes group), so only values drawn
/// from a plain character set ever reach them. The job name is <b>sanitised</b> (it is cosmetic); partition,
/// account, paths, ids, array specs and extra options are <b>refused</b> with <see cref="ArgumentException"/>,
/// because silently changing them would send the job somewhere else.</item>
/// <item>The body: every user value (cwd, env values, argv) is single-quoted, where bash gives no character
/// a meaning except the closing quote, written as <c>'\''</c>. Only NUL cannot be carried, and is refused.
/// Slurm stops reading #SBATCH at the first line that is neither blank nor a comment; the body always starts
/// with such a line, so a "#SBATCH" inside a multi-line quoted value is ignored by Slurm as well as bash.</item>
/// </list>
/// </remarks>
public static partial class SbatchScript
{
    public const string CommentPrefix = "sparky:";
    public const int MaxJobNameLength = 64;

    /// <summary>The <c>--comment</c> value that marks a job as this attempt's, <c>sparky:&lt;id&gt;:&lt;attempt&gt;</c>
    /// (used to find it again after a lost submit; with the attempt, a finished job is told from an earlier attempt's).</summary>
    public static string Comment(string taskId, int attempt) =>
        TaskId.TryParse(taskId, out _) ? CommentPrefix + taskId + ":" + attempt.ToString(CultureInfo.InvariantCulture)
            : throw new ArgumentException($"invalid task id '{Printable(taskId)}' (must match {TaskId.Pattern})", nameof(taskId));

    /// <summary>The Sparky task id in a <c>sparky:&lt;id&gt;:&lt;attempt&gt;</c> comment, or in the
    /// <c>sparky:&lt;id&gt;</c> an earlier daemon wrote; null for anything else.</summary>
    public static string? TaskIdFromComment(string? comment) => ParseComment(comment)?.TaskId;

    /// <summary>The attempt in a <c>sparky:&lt;id&gt;:&lt;attempt&gt;</c> comment; null for the older form and anything else.</summary>
    public static int? AttemptFromComment(string? comment) => ParseComment(comment)?.Attempt;

    private static (string TaskId, int? Attempt)? ParseComment(string? comment)
    {
        if (comment is null || !comment.StartsWith(CommentPrefix, StringComparison.Ordinal)) return null;
        var rest = comment[CommentPrefix.Length..];
        int colon = rest.IndexOf(':');
        var id = colon < 0 ? rest : rest[..colon];
        if (!TaskId.TryParse(id, out _)) return null;
        if (colon < 0) return (id, null);
        var attempt = rest[(colon + 1)..];
        return attempt.Length is > 0 and <= 9 && attempt.All(char.IsAsciiDigit)
            ? (id, int.Parse(attempt, CultureInfo.InvariantCulture)) : null;
    }

    public static string Render(SbatchRequest r) => Render(r, null);

    /// <summary>
    /// One script for a Slurm job array (<c>--array</c> lists the elements' indices): every element runs the same
    /// command with its own task id, <c>SPARKY_ARRAY_INDEX</c> and log files, chosen by <c>SLURM_ARRAY_TASK_ID</c>.
    /// <paramref name="common"/>'s output paths take Slurm's own messages (use <c>%A_%a</c> in them); its comment names
    /// the first element's task.
    /// </summary>
    public static string RenderArray(SbatchRequest common, IReadOnlyList<ArrayElement> elements)
    {
        if (elements is null || elements.Count == 0) throw new ArgumentException("an array needs at least one element", nameof(elements));
        var spec = string.Join(',', elements.Select(e => e.Index.ToString(CultureInfo.InvariantCulture)));
        return Render(common with { TaskId = elements[0].TaskId, ArraySpec = spec }, elements);
    }

    private static string Render(SbatchRequest r, IReadOnlyList<ArrayElement>? elements)
    {
        ArgumentNullException.ThrowIfNull(r);
        var comment = Comment(r.TaskId, r.Attempt);
        if (r.Attempt < 0) throw new ArgumentException($"attempt must not be negative (got {r.Attempt})", nameof(r));
        if (r.Template is null && (r.Argv is null || r.Argv.Count == 0 || string.IsNullOrEmpty(r.Argv[0])))
            throw new ArgumentException("argv must have a non-empty program", nameof(r));
        if (r.Template is not null && elements is not null) throw new ArgumentException("a template job is not part of an array", nameof(r));
        var (templateHead, templateBody) = r.Template is null ? ("", "") : SbatchTemplate.Split(r.Template);

        var sb = new StringBuilder();
        sb.Append("#!/bin/bash\n");
        // The template's own directives first: sbatch takes the last of an option it reads twice, so Sparky's win.
        sb.Append(templateHead);
        void Directive(string option) => sb.Append("#SBATCH ").Append(option).Append('\n');

        Directive("--job-name=" + JobName(r.Name ?? r.TaskId));
        if (r.Cpus is { } cpus)
        {
            if (!double.IsFinite(cpus) || cpus <= 0 || cpus > 1_000_000)
                throw new ArgumentException($"cpus must be a positive number (got {cpus.ToString(CultureInfo.InvariantCulture)})", nameof(r));
            Directive("--cpus-per-task=" + ((long)Math.Ceiling(cpus)).ToString(CultureInfo.InvariantCulture));
        }
        if (r.MemoryMb > 0) Directive("--mem=" + r.MemoryMb.ToString(CultureInfo.InvariantCulture) + "M");
        if (r.Gpus < 0) throw new ArgumentException($"gpus must not be negative (got {r.Gpus})", nameof(r));
        if (r.Gpus > 0) Directive("--gres=gpu:" + r.Gpus.ToString(CultureInfo.InvariantCulture));
        if (r.Nodes is { } nodes)
        {
            CheckNodes(nodes);
            Directive("--nodes=" + Number(nodes.Count));
            Directive("--ntasks-per-node=1");
            if (nodes.GpusPerNode is > 0 and var gpn) Directive("--gpus-per-node=" + Number(gpn));
            if (nodes.Exclusive) Directive("--exclusive");
        }
        if (r.TimeoutSeconds is { } timeout) Directive("--time=" + FormatTime(timeout));
        if (r.Partition is not null) Directive("--partition=" + Plain(r.Partition, "partition", SlurmNameRegex()));
        if (r.Account is not null) Directive("--account=" + Plain(r.Account, "account", SlurmNameRegex()));
        Directive("--output=" + Plain(r.StdoutPath, "stdout path", PathRegex()));
        Directive("--error=" + Plain(r.StderrPath, "stderr path", PathRegex()));
        Directive("--comment=" + comment);
        if (r.AfterOkJobIds is { Count: > 0 })
        {
            foreach (var id in r.AfterOkJobIds) Plain(id, "dependency job id", JobIdRegex());
            Directive("--dependency=afterok:" + string.Join(':', r.AfterOkJobIds));
        }
        if (r.ArraySpec is not null) Directive("--array=" + ValidateArraySpec(r.ArraySpec));
        Directive("--open-mode=append"); // retries write to the same files
        foreach (var option in r.ExtraOptions ?? []) Directive(ValidateExtraOption(option));

        // Body. A blank line first, for readers; then a command, which ends Slurm's #SBATCH scan.
        sb.Append('\n');
        if (r.Cwd is not null)
        {
            var cwd = Quote(r.Cwd, "cwd");
            // A missing working directory is created, as the replaced runner did (its pipelines rely on it).
            sb.Append("mkdir -p -- ").Append(cwd).Append(" && cd -- ").Append(cwd)
              .Append(" || { printf 'sparky: cannot create or change to working directory %s\\n' ").Append(cwd).Append(" >&2; exit 1; }\n");
        }
        foreach (var (key, value) in (r.Env ?? new Dictionary<string, string>()).OrderBy(e => e.Key, StringComparer.Ordinal))
        {
            if (key is null || !EnvKeyRegex().IsMatch(key))
                throw new ArgumentException($"invalid environment variable name '{Printable(key)}' (must match {EnvKeyPattern})", nameof(r));
            sb.Append("export ").Append(key).Append('=').Append(Quote(value, $"value of {key}")).Append('\n');
        }
        if (elements is null)
        {
            sb.Append("export SPARKY_TASK_ID=").Append(Quote(r.TaskId, "task id"))
              .Append(" SPARKY_ATTEMPT=").Append(Quote(r.Attempt.ToString(CultureInfo.InvariantCulture), "attempt")).Append('\n');
        }
        else
        {
            // Each element picks its task by index; its output goes to that task's files, not to Slurm's.
            sb.Append("case \"${SLURM_ARRAY_TASK_ID:-}\" in\n");
            foreach (var e in elements)
            {
                Comment(e.TaskId, 0); // validates the id
                var index = e.Index.ToString(CultureInfo.InvariantCulture);
                sb.Append("  ").Append(index).Append(") export SPARKY_TASK_ID=").Append(Quote(e.TaskId, "task id"))
                  .Append(" SPARKY_ARRAY_INDEX=").Append(index)
                  .Append("; exec >>").Append(Quote(e.StdoutPath, "stdout path")).Append(" 2>>").Append(Quote(e.StderrPath, "stderr path"))
                  .Append(" ;;\n");
            }
            sb.Append("  *) echo \"sparky: no task for array element ${SLURM_ARRAY_TASK_ID:-}\" >&2; exit 1 ;;\nesac\n");
            sb.Append("export SPARKY_ATTEMPT=").Append(Quote(r.Attempt.ToString(CultureInfo.InvariantCulture), "attempt")).Append('\n');
        }
        if (r.Nodes is { } allocation) sb.Append(Rendezvous(allocation));
        if (r.Template is not null)
        {
            // The admin's script from here on; every value put in it was checked when it was filled.
            sb.Append(templateBody);
            if (templateBody.Length > 0 && templateBody[^1] != '\n') sb.Append('\n');
            return sb.ToString();
        }
        sb.Append("exec");
        // Once on each node: srun's task on node N runs with NODE_RANK=N; one that fails ends the others and the job.
        if (r.Nodes is { } spread)
            sb.Append(" srun --nodes=").Append(Number(spread.Count)).Append(" --ntasks-per-node=1 --kill-on-bad-exit=1")
              .Append(" /bin/bash -c 'export NODE_RANK=\"$SLURM_NODEID\"; exec \"$@\"' sparky-node");
        foreach (var arg in r.Argv) sb.Append(' ').Append(Quote(arg, "argument"));
        if (r.StdinPath is not null) sb.Append(" <").Append(Quote(r.StdinPath, "stdin path"));
        sb.Append('\n');
        return sb.ToString();
    }

    /// <summary>The most nodes one task may ask for (as <see cref="EnvelopeParser.MaxNodes"/>).</summary>
    public const int MaxNodes = EnvelopeParser.MaxNodes;
    /// <summary>The ports a multi-node task's rendezvous is given on its first node: as a local task's.</summary>
    public const int FirstPort = 29501, LastPort = 29999;

    private static void CheckNodes(SbatchNodes n)
    {
        if (n.Count is < 1 or > MaxNodes) throw new ArgumentException($"nodes must be from 1 to {MaxNodes} (got {n.Count})", nameof(n));
        if (n.GpusPerNode is < 0 or > 1024) throw new ArgumentException($"gpus per node must be from 0 to 1024 (got {n.GpusPerNode})", nameof(n));
        if (n.ProcsPerNode is < 1 or > 1024) throw new ArgumentException($"procs per node must be from 1 to 1024 (got {n.ProcsPerNode})", nameof(n));
    }

    /// <summary>
    /// The rendezvous, run on the allocation's first node (where the batch script runs): its address as Slurm knows it
    /// (<c>NodeAddr</c>, else its name), and a port there (<see cref="PickPort"/>). Every value in it is a number Sparky
    /// checked or Slurm's own.
    /// </summary>
    private static string Rendezvous(SbatchNodes n) =>
        "SPARKY_FIRST_NODE=\"$(scontrol show hostnames \"$SLURM_JOB_NODELIST\" | head -n1)\"\n" +
        "MASTER_ADDR=\"$(scontrol show node \"$SPARKY_FIRST_NODE\" 2>/dev/null | sed -n 's/.*NodeAddr=\\([^ ]*\\).*/\\1/p' | head -n1)\"\n" +
        "MASTER_ADDR=\"${MASTER_ADDR:-$SPARKY_FIRST_NODE}\"\n" +
        PickPort +
        "export MASTER_ADDR MASTER_PORT SPARKY_PORT=\"$MASTER_PORT\" NNODES=" + Quote(Number(n.Count)) +
        " WORLD_SIZE=" + Quote(Number(n.Count * n.ProcsPerNode)) +
        " LOCAL_WORLD_SIZE=" + Quote(Number(n.ProcsPerNode)) + " SPARKY_PROCS_PER_NODE=" + Quote(Number(n.ProcsPerNode)) + "\n";

    /// <summary>
    /// Bash that sets <c>MASTER_PORT</c> to a port free on this node: it starts from the job id (so jobs sharing a node
    /// start apart) and takes the next one, through the range, while a socket of any state has it as its local port in
    /// <c>/proc/net/tcp</c> or <c>tcp6</c>: listening, connected, or closing in TIME_WAIT, where a rendezvous server's
    /// bind (without SO_REUSEADDR) would fail. Plain bash and awk, which every node has. <c>SLURM_JOB_ID</c> is Slurm's,
    /// but only its digits (at most 9) are used: bash evaluates a variable's text inside <c>$(( ))</c>.
    /// </summary>
    public static readonly string PickPort =
        "sparky_port_used() { cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | " +
        "awk -v p=\"$(printf ':%04X' \"$1\")\" 'substr($2, length($2) - 4) == p { found = 1 } END { exit !found }'; }\n" +
        "SPARKY_JOB=\"${SLURM_JOB_ID//[^0-9]/}\"; SPARKY_JOB=\"${SPARKY_JOB:0:9}\"\n" +
        $"MASTER_PORT=$(( {FirstPort} + 10#${{SPARKY_JOB:-0}} % {LastPort - FirstPort + 1} ))\n" +
        $"for _ in $(seq {LastPort - FirstPort + 1}); do sparky_port_used \"$MASTER_PORT\" || break; " +
        $"MASTER_PORT=$(( MASTER_PORT >= {LastPort} ? {FirstPort} : MASTER_PORT + 1 )); done\n";

    private static string Number(int n) => n.ToString(CultureInfo.InvariantCulture);

    /// <summary>Slurm's time limit for a timeout: whole minutes, rounded up, at least one;
    /// <c>M:00</c> under an hour, else <c>D-HH:MM:00</c>.</summary>
    public static string FormatTime(double seconds)
    {
        // Slurm counts limits in minutes, so rounding down would kill a job before its timeout.
        if (!double.IsFinite(seconds) || seconds <= 0)
            throw new ArgumentException($"timeout must be a positive number of seconds (got {seconds.ToString(CultureInfo.InvariantCulture)})", nameof(seconds));
        if (seconds > 100.0 * 366 * 24 * 3600)
            throw new ArgumentException("timeout is longer than 100 years", nameof(seconds));
        long minutes = Math.Max(1, (long)Math.Ceiling(seconds / 60));
        if (minutes < 60) return minutes.ToString(CultureInfo.InvariantCulture) + ":00";
        long days = minutes / 1440, hours = minutes / 60 % 24, mins = minutes % 60;
        return string.Create(CultureInfo.InvariantCulture, $"{days}-{hours:00}:{mins:00}:00");
    }

    /// <summary>Job names are cosmetic, so they are sanitised rather than refused: anything outside
    /// <c>[A-Za-z0-9._-]</c> becomes '_', and the result is capped at <see cref="MaxJobNameLength"/>.</summary>
    public static string JobName(string? name)
    {
        var sb = new StringBuilder();
        foreach (var c in name ?? "")
        {
            if (sb.Length == MaxJobNameLength) break;
            sb.Append(char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-' ? c : '_');
        }
        return sb.Length == 0 ? "sparky" : sb.ToString();
    }

    /// <summary>Checks an array spec (<c>0-99</c>, <c>1,3,5</c>, <c>0-99:2</c>, optional <c>%N</c> throttle).</summary>
    public static string ValidateArraySpec(string spec)
    {
        var m = ArraySpecRegex().Match(spec ?? "");
        if (!m.Success) throw new ArgumentException($"invalid array spec '{Printable(spec)}' (expected e.g. 0-99, 1,3,5, 0-99:2 or 0-15%4)", nameof(spec));
        foreach (var part in m.Groups["list"].Value.Split(','))
        {
            var range = part.Split(':')[0].Split('-');
            if (range.Length == 2 && (!long.TryParse(range[0], out var lo) || !long.TryParse(range[1], out var hi) || lo > hi))
                throw new ArgumentException($"invalid array spec '{spec}': range {part} runs backwards or is too large", nameof(spec));
            if (part.Contains(':') && long.TryParse(part.Split(':')[1], out var step) && step == 0)
                throw new ArgumentException($"invalid array spec '{spec}': step must be positive", nameof(spec));
        }
        if (m.Groups["throttle"].Success && long.TryParse(m.Groups["throttle"].Value, out var t) && t == 0)
            throw new ArgumentException($"invalid array spec '{spec}': throttle must be positive", nameof(spec));
        return spec!;
    }

    /// <summary>Admin options go on #SBATCH lines verbatim, so they must be one <c>--name</c> or <c>--name=value</c>
    /// token with no whitespace, quotes, backslashes, '#' or control characters (sbatch would split or unquote them).</summary>
    public static string ValidateExtraOption(string option)
    {
        if (option is null || !ExtraOptionRegex().IsMatch(option))
            throw new ArgumentException($"invalid extra sbatch option '{Printable(option)}': must be --name or --name=value with no whitespace, quotes, backslashes or control characters", nameof(option));
        return option;
    }

    /// <summary>Single-quotes a value for bash. Anything but NUL survives byte for byte.</summary>
    public static string Quote(string value, string what = "value")
    {
        ArgumentNullException.ThrowIfNull(value, what);
        if (value.Contains('\0')) throw new ArgumentException($"{what} contains a NUL character, which a shell script cannot carry");
        return "'" + value.Replace("'", "'\\''", StringComparison.Ordinal) + "'";
    }

    private static string Plain(string value, string what, Regex allowed) =>
        value is not null && allowed.IsMatch(value)
            ? value
            : throw new ArgumentException($"invalid {what} '{Printable(value)}': allowed characters are {allowed} (no whitespace, quotes or newlines, which would break the #SBATCH line)");

    /// <summary>A value fit for an error message: control characters shown escaped, long values cut.</summary>
    internal static string Printable(string? value)
    {
        if (value is null) return "(null)";
        var sb = new StringBuilder();
        foreach (var c in value.Length > 80 ? value[..80] : value)
            sb.Append(char.IsControl(c) ? $"\\u{(int)c:x4}" : c.ToString());
        if (value.Length > 80) sb.Append("...");
        return sb.ToString();
    }

    public const string EnvKeyPattern = "^[A-Za-z_][A-Za-z0-9_]*$";

    // \z, not $: .NET's $ also matches before a final newline.
    [GeneratedRegex(@"\A[A-Za-z_][A-Za-z0-9_]*\z", RegexOptions.CultureInvariant)]
    private static partial Regex EnvKeyRegex();

    // Partition and account names; a comma allows a partition list.
    [GeneratedRegex(@"\A[A-Za-z0-9_.+-]+(,[A-Za-z0-9_.+-]+)*\z", RegexOptions.CultureInvariant)]
    private static partial Regex SlurmNameRegex();

    // Paths written by Sparky; % keeps Slurm's filename patterns (%j, %A, %a) usable.
    [GeneratedRegex(@"\A[A-Za-z0-9_./%+=,@:~-]+\z", RegexOptions.CultureInvariant)]
    private static partial Regex PathRegex();

    [GeneratedRegex(@"\A[0-9]+(_[0-9]+)?\z", RegexOptions.CultureInvariant)]
    private static partial Regex JobIdRegex();

    [GeneratedRegex(@"\A(?<list>[0-9]{1,9}(-[0-9]{1,9}(:[0-9]{1,9})?)?(,[0-9]{1,9}(-[0-9]{1,9}(:[0-9]{1,9})?)?)*)(%(?<throttle>[0-9]{1,9}))?\z", RegexOptions.CultureInvariant)]
    private static partial Regex ArraySpecRegex();

    [GeneratedRegex(@"\A--[A-Za-z0-9][A-Za-z0-9-]*(=[\x21\x24-\x26\x28-\x5B\x5D-\x7E]+)?\z", RegexOptions.CultureInvariant)]
    private static partial Regex ExtraOptionRegex();
}
