using System.CommandLine;
using System.Reflection;
using System.Text;
using Sparky.Core.Config;

namespace Sparky.Cli;

/// <summary>
/// Shell completions (bash, zsh, fish) and the man page, written from the CLI's own command tree at the moment they are
/// asked for, so they never drift from it: a verb or option added to <see cref="Verbs"/> is in all four at once.
/// Hidden verbs and options (those the daemon passes to its own pilots) are left out, as <c>--help</c> leaves them.
/// </summary>
internal static class CliDocs
{
    /// <summary>A command with the words that lead to it (empty for the root), its visible subcommands and options.</summary>
    private sealed record Node(string[] Path, Command Command)
    {
        public IEnumerable<Command> Subcommands => Command.Subcommands.Where(c => !c.Hidden);
        public string Key => string.Join(' ', Path);
    }

    private static IEnumerable<Node> Walk(Command root)
    {
        var stack = new Stack<Node>();
        stack.Push(new Node([], root));
        var all = new List<Node>();
        while (stack.Count > 0)
        {
            var n = stack.Pop();
            all.Add(n);
            foreach (var c in n.Subcommands.Reverse()) stack.Push(new Node([.. n.Path, c.Name], c));
        }
        return all;
    }

    /// <summary>The options in force at a command: its own and the recursive ones of the commands above it.</summary>
    private static IEnumerable<Option> OptionsOf(Node n, IReadOnlyList<Node> all)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        for (int depth = n.Path.Length; depth >= 0; depth--)
        {
            var key = string.Join(' ', n.Path.Take(depth));
            var at = all.First(a => a.Key == key);
            foreach (var o in at.Command.Options)
                if (!o.Hidden && (depth == n.Path.Length || o.Recursive) && seen.Add(o.Name)) yield return o;
        }
    }

    /// <summary>An option's names as a shell user types them (not the Windows-style /h and /? of --help).</summary>
    private static IEnumerable<string> Names(Option o) => o.Aliases.Prepend(o.Name).Where(n => n.StartsWith('-')).Distinct();

    private static string OneLine(string? text) => (text ?? "").ReplaceLineEndings(" ").Trim();

    public static string Bash(RootCommand root)
    {
        var all = Walk(root).ToList();
        var sb = new StringBuilder();
        sb.Append("# bash completion for sparky, written by `sparky completions bash` from its own command tree.\n");
        sb.Append("# Load it: source <(sparky completions bash), or save it as /usr/share/bash-completion/completions/sparky\n");
        sb.Append("_sparky() {\n");
        sb.Append("  local cur=${COMP_WORDS[COMP_CWORD]} path= w i words\n");
        // After `--` comes a task's command: nothing of sparky's, only file names (-o default).
        sb.Append("  for ((i = 1; i < COMP_CWORD; i++)); do\n    w=${COMP_WORDS[i]}\n    [ \"$w\" = -- ] && return 0\n    case \"$path $w\" in\n");
        sb.Append("      ").Append(string.Join('|', all.Where(n => n.Path.Length > 0).Select(n => Quote(" " + n.Key)))).Append(") path=\"$path $w\" ;;\n");
        sb.Append("    esac\n  done\n  case \"$path\" in\n");
        foreach (var n in all)
        {
            var words = n.Subcommands.Select(c => c.Name).Concat(OptionsOf(n, all).SelectMany(Names));
            sb.Append("    ").Append(Quote(n.Path.Length == 0 ? "" : " " + n.Key)).Append(") words=").Append(Quote(string.Join(' ', words))).Append(" ;;\n");
        }
        sb.Append("    *) words= ;;\n  esac\n");
        sb.Append("  COMPREPLY=($(compgen -W \"$words\" -- \"$cur\"))\n}\n");
        // -o default: past the known words (a task's command, a file), bash completes file names.
        sb.Append("complete -o default -F _sparky sparky\n");
        return sb.ToString();

        static string Quote(string s) => "'" + s.Replace("'", "'\\''") + "'";
    }

    public static string Zsh(RootCommand root)
    {
        var all = Walk(root).ToList();
        var sb = new StringBuilder();
        sb.Append("#compdef sparky\n");
        sb.Append("# zsh completion for sparky, written by `sparky completions zsh` from its own command tree.\n");
        sb.Append("# Save it as _sparky in a directory of $fpath (e.g. /usr/share/zsh/vendor-completions), then compinit.\n");
        sb.Append("_sparky() {\n  local path= w\n  local -a commands options\n");
        sb.Append("  for w in ${words[2,CURRENT-1]}; do\n    [[ $w == -- ]] && { _files; return }\n    case \"$path $w\" in\n");
        sb.Append("      (").Append(string.Join('|', all.Where(n => n.Path.Length > 0).Select(n => Quote(" " + n.Key)))).Append(") path=\"$path $w\" ;;\n");
        sb.Append("    esac\n  done\n  case \"$path\" in\n");
        foreach (var n in all)
        {
            sb.Append("    (").Append(Quote(n.Path.Length == 0 ? "" : " " + n.Key)).Append(")\n");
            sb.Append("      commands=(").Append(string.Join(' ', n.Subcommands.Select(c => Quote(Entry(c.Name, c.Description))))).Append(")\n");
            sb.Append("      options=(").Append(string.Join(' ', OptionsOf(n, all).SelectMany(o => Names(o).Select(a => Quote(Entry(a, o.Description)))))).Append(") ;;\n");
        }
        sb.Append("  esac\n");
        sb.Append("  _describe -t commands 'sparky command' commands\n");
        sb.Append("  _describe -t options 'option' options\n");
        sb.Append("  _files\n}\n");
        sb.Append("compdef _sparky sparky\n");
        return sb.ToString();

        // _describe's entries are name:description; a colon in the name is escaped.
        static string Entry(string name, string? description) => name.Replace(":", "\\:") + ":" + OneLine(description);
        static string Quote(string s) => "'" + s.Replace("'", "'\\''") + "'";
    }

    public static string Fish(RootCommand root)
    {
        var all = Walk(root).ToList();
        var sb = new StringBuilder();
        sb.Append("# fish completion for sparky, written by `sparky completions fish` from its own command tree.\n");
        sb.Append("# Save it as ~/.config/fish/completions/sparky.fish (or /usr/share/fish/vendor_completions.d/).\n");
        sb.Append("complete -c sparky -f\n");
        // The words after `sparky` that lead to a command, as a fish function that tells whether the line is at it.
        sb.Append("function __sparky_at\n");
        sb.Append("    set -l words (commandline -opc)\n    set -l path\n");
        sb.Append("    contains -- -- $words; and return 1\n");
        sb.Append("    for w in $words[2..-1]\n");
        sb.Append("        if contains -- \"$path $w\" ").Append(string.Join(' ', all.Where(n => n.Path.Length > 0).Select(n => Quote(" " + n.Key)))).Append("\n");
        sb.Append("            set path \"$path $w\"\n        end\n    end\n");
        sb.Append("    test \"$path\" = \"$argv[1]\"\nend\n");
        foreach (var n in all)
        {
            var at = Quote("__sparky_at " + Quote(n.Path.Length == 0 ? "" : " " + n.Key));
            foreach (var c in n.Subcommands)
                sb.Append("complete -c sparky -n ").Append(at).Append(" -a ").Append(Quote(c.Name)).Append(" -d ").Append(Quote(OneLine(c.Description))).Append('\n');
            foreach (var o in OptionsOf(n, all))
            {
                sb.Append("complete -c sparky -n ").Append(at);
                foreach (var a in Names(o))
                    sb.Append(a.StartsWith("--", StringComparison.Ordinal) ? " -l " : " -s ").Append(Quote(a.TrimStart('-')));
                if (!IsFlag(o)) sb.Append(" -r");
                sb.Append(" -d ").Append(Quote(OneLine(o.Description))).Append('\n');
            }
        }
        return sb.ToString();

        static string Quote(string s) => "'" + s.Replace("\\", "\\\\").Replace("'", "\\'") + "'";
    }

    /// <summary>The man page (roff, man macros): every visible command with its options, and the settings as the
    /// environment variables that set them.</summary>
    public static string Man(RootCommand root)
    {
        var all = Walk(root).ToList();
        var version = typeof(CliDocs).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0] ?? "";
        var sb = new StringBuilder();
        sb.Append(".\\\" The man page of sparky, written by `sparky man` from its own command tree.\n");
        sb.Append(".TH SPARKY 1 \"\" \"sparky ").Append(Roff(version)).Append("\" \"User Commands\"\n");
        var what = OneLine(root.Description);
        if (what.StartsWith("Sparky: ", StringComparison.Ordinal)) what = what["Sparky: ".Length..];
        sb.Append(".SH NAME\nsparky \\- ").Append(Roff(what)).Append('\n');
        sb.Append(".SH SYNOPSIS\n.B sparky\n[\\fIOPTIONS\\fR] \\fICOMMAND\\fR [\\fIARGUMENTS\\fR]\n");
        sb.Append(".SH DESCRIPTION\nSparky queues commands (training runs, evaluations, data jobs) and runs them durably: on this machine, ");
        sb.Append("on Slurm, or on workers. A daemon (\\fBsparky serve\\fR) holds the queue; the other commands talk to it over HTTP. ");
        sb.Append("\\fBsparky COMMAND \\-\\-help\\fR says the same as this page about one command.\n");
        sb.Append(".SH OPTIONS\n");
        foreach (var o in root.Options.Where(o => !o.Hidden)) OptionItem(sb, o);
        sb.Append(".SH COMMANDS\n");
        foreach (var n in all.Where(n => n.Path.Length > 0))
        {
            var args = n.Command.Arguments.Where(a => !a.Hidden).Select(a => a.Arity.MinimumNumberOfValues == 0 ? $"[\\fI{Roff(a.Name)}\\fR]" : $"\\fI{Roff(a.Name)}\\fR");
            sb.Append(".SS \"sparky ").Append(Roff(n.Key)).Append("\"\n");
            sb.Append(".B sparky ").Append(Roff(n.Key)).Append('\n');
            if (n.Command.Options.Any(o => !o.Hidden)) sb.Append("[\\fIOPTIONS\\fR]\n");
            foreach (var a in args) sb.Append(a).Append('\n');
            sb.Append(".PP\n").Append(Roff(OneLine(n.Command.Description))).Append('\n');
            foreach (var a in n.Command.Arguments.Where(a => !a.Hidden))
                sb.Append(".TP\n.I ").Append(Roff(a.Name)).Append('\n').Append(Roff(OneLine(a.Description))).Append('\n');
            foreach (var o in n.Command.Options.Where(o => !o.Hidden)) OptionItem(sb, o);
        }
        sb.Append(".SH ENVIRONMENT\nEvery setting of \\fBsparky serve\\fR (and \\fBsparky config\\fR, which shows them) is read from ");
        sb.Append("its command-line flag, then its environment variable, then \\fIsparky.toml\\fR, then its default.\n");
        foreach (var def in SparkyConfig.Catalog)
        {
            sb.Append(".TP\n.B ").Append(Roff(def.EnvName)).Append('\n').Append(Roff(OneLine(def.Help)));
            if (def.EnvAliases.Length > 0) sb.Append(" (also ").Append(Roff(string.Join(", ", def.EnvAliases))).Append(')');
            sb.Append('\n');
        }
        sb.Append(".TP\n.B SPARKY_SERVER\nthe daemon the other commands talk to (default http://127.0.0.1:9097)\n");
        sb.Append(".SH FILES\n.TP\n.I ~/.local/share/sparky\nthe data directory by default: the SQLite store, task logs, the drop directory.\n");
        sb.Append(".SH SEE ALSO\n.BR sbatch (1),\n.BR tsp (1)\n");
        return sb.ToString();

        static void OptionItem(StringBuilder sb, Option o)
        {
            sb.Append(".TP\n.B ").Append(string.Join(", ", Names(o).Select(Roff)));
            if (!IsFlag(o)) sb.Append(" \\fIVALUE\\fR");
            sb.Append('\n').Append(Roff(OneLine(o.Description))).Append('\n');
        }
    }

    /// <summary>Text as roff shows it: backslashes and hyphens escaped, and a line never starts with a control character.</summary>
    private static string Roff(string text)
    {
        var sb = new StringBuilder(text.Length + 8);
        foreach (var c in text)
        {
            if (c == '\\') sb.Append("\\e");
            else if (c == '-') sb.Append("\\-");
            else if (c > 127) sb.Append("\\[u").Append(((int)c).ToString("X4")).Append(']'); // roff input is ASCII
            else sb.Append(c);
        }
        var s = sb.ToString();
        return s.Length > 0 && (s[0] == '.' || s[0] == '\'') ? "\\&" + s : s;
    }

    /// <summary>A flag (no value: --json, --help) rather than an option that takes one.</summary>
    private static bool IsFlag(Option o) => o.ValueType == typeof(bool) || o.Arity.MaximumNumberOfValues == 0;

    public static Command Completions(RootCommand root)
    {
        var shell = new Argument<string>("shell") { Description = "bash, zsh or fish" };
        shell.AcceptOnlyFromAmong("bash", "zsh", "fish");
        var c = new Command("completions", "Print the shell completion script for bash, zsh or fish (written from this CLI's own commands).") { shell };
        c.SetAction(p =>
        {
            Console.Out.Write(p.GetValue(shell) switch { "bash" => Bash(root), "zsh" => Zsh(root), _ => Fish(root) });
            return 0;
        });
        return c;
    }

    public static Command ManVerb(RootCommand root)
    {
        var c = new Command("man", "Print the man page (roff): man -l <(sparky man), or save it as sparky.1.");
        c.SetAction(p =>
        {
            Console.Out.Write(Man(root));
            return 0;
        });
        return c;
    }
}
