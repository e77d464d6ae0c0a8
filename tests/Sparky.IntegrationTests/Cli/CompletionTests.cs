using Sparky.IntegrationTests.Support;

namespace Sparky.IntegrationTests.Cli;

/// <summary>
/// `sparky completions bash|zsh|fish` and `sparky man`, written from the CLI's own command tree: every command and
/// option `--help` lists is completed by each shell (driven for real: bash's completion function, fish's `complete -C`)
/// and documented by the man page, which renders without a warning.
/// </summary>
public sealed class CompletionTests
{
    [Fact]
    public async Task Bash_completes_every_command_and_the_options_of_a_command()
    {
        var script = await WriteAsync("completions", "bash");
        foreach (var command in await CommandsAsync([]))
            Assert.Contains(command, await BashAsync(script, ["sparky", command[..2]]));
        foreach (var command in await CommandsAsync(["plan"]))
            Assert.Contains(command, await BashAsync(script, ["sparky", "plan", ""]));
        var submitOptions = await OptionsAsync(["submit"]);
        Assert.Contains("--after", submitOptions);
        foreach (var option in submitOptions)
            Assert.Contains(option, await BashAsync(script, ["sparky", "submit", option[..3]]));
        // Past `--` (a task's command) nothing of sparky's is offered.
        Assert.DoesNotContain("--class", await BashAsync(script, ["sparky", "submit", "--", "--cl"]));
    }

    [Fact]
    public async Task Fish_completes_every_command_with_its_description()
    {
        var script = await WriteAsync("completions", "fish");
        var fish = Tool("fish");
        Assert.Equal(0, (await RunAsync(fish, ["-n", script])).Code);
        foreach (var command in await CommandsAsync([]))
        {
            var offered = await RunAsync(fish, ["-c", $"source {script}; complete -C 'sparky {command[..2]}'"]);
            Assert.Contains(offered.Output.Split('\n'), l => l.StartsWith(command + "\t", StringComparison.Ordinal));
        }
        var plan = await RunAsync(fish, ["-c", $"source {script}; complete -C 'sparky plan '"]);
        foreach (var command in await CommandsAsync(["plan"])) Assert.Contains(command + "\t", plan.Output);
        var option = await RunAsync(fish, ["-c", $"source {script}; complete -C 'sparky submit --cl'"]);
        Assert.StartsWith("--class\t", option.Output);
    }

    [Fact]
    public async Task Zsh_parses_the_script_and_offers_what_the_command_line_is_at()
    {
        var script = await WriteAsync("completions", "zsh");
        var zsh = Tool("zsh");
        var syntax = await RunAsync(zsh, ["-n", script]);
        Assert.True(syntax.Code == 0, syntax.Output);
        // compsys itself needs a terminal: its _describe is stood in for by one that prints what it is given.
        var probe = $"compdef() {{ : }}; _files() {{ : }}; _describe() {{ print -l -- \"${{(@P)4}}\" }}; source {script}; words=(sparky plan ''); CURRENT=3; _sparky";
        var offered = await RunAsync(zsh, ["-c", probe]);
        Assert.True(offered.Code == 0, offered.Output);
        foreach (var command in await CommandsAsync(["plan"])) Assert.Contains(command + ":", offered.Output);
        Assert.Contains("--server:", offered.Output);
    }

    [Fact]
    public async Task The_man_page_documents_every_command_and_renders_without_a_warning()
    {
        var page = await WriteAsync("man");
        var man = await RunAsync(Tool("man"), ["--warnings=w", "-l", page], new Dictionary<string, string> { ["MANWIDTH"] = "100", ["MANPAGER"] = "cat" });
        Assert.True(man.Code == 0 && man.Stderr.Length == 0, $"exit {man.Code}, warnings:\n{man.Stderr}");
        foreach (var command in await CommandsAsync([])) Assert.Contains("sparky " + command, man.Output);
        foreach (var command in await CommandsAsync(["plan"])) Assert.Contains("sparky plan " + command, man.Output);
        Assert.Contains("SPARKY_HTTP", man.Output);
    }

    /// <summary>The commands `sparky [path] --help` lists.</summary>
    private static async Task<List<string>> CommandsAsync(string[] path) => Section(await HelpAsync(path), "Commands:");

    private static async Task<List<string>> OptionsAsync(string[] path) =>
        Section(await HelpAsync(path), "Options:").Where(o => o.StartsWith("--", StringComparison.Ordinal)).ToList();

    private static async Task<string> HelpAsync(string[] path)
    {
        var r = await SparkyCli.RunAsync([.. path, "--help"]);
        Assert.Equal(0, r.ExitCode);
        return r.Stdout;
    }

    /// <summary>The first word of each entry of a help section (an option's first name, before a comma).</summary>
    private static List<string> Section(string help, string header)
    {
        var lines = help.Split('\n');
        int start = Array.FindIndex(lines, l => l.TrimEnd() == header);
        Assert.True(start >= 0, $"no {header} in:\n{help}");
        var words = new List<string>();
        foreach (var line in lines.Skip(start + 1))
        {
            if (line.Trim().Length == 0) break;
            if (!line.StartsWith("  ", StringComparison.Ordinal) || line.StartsWith("    ", StringComparison.Ordinal)) continue; // a wrapped description
            words.Add(line.Trim().Split(' ', ',')[0]);
        }
        Assert.NotEmpty(words);
        return words;
    }

    private static async Task<string> WriteAsync(params string[] args)
    {
        var r = await SparkyCli.RunAsync(args);
        Assert.True(r.ExitCode == 0, r.Stderr);
        var path = Path.Combine(Path.GetTempPath(), $"sparky-{string.Join('-', args)}-{Guid.NewGuid():N}");
        await File.WriteAllTextAsync(path, r.Stdout);
        return path;
    }

    /// <summary>What bash's completion function offers for the line <paramref name="words"/> (the last word being typed).</summary>
    private static async Task<string[]> BashAsync(string script, string[] words)
    {
        var quoted = string.Join(' ', words.Select(w => "'" + w.Replace("'", "'\\''") + "'"));
        var r = await RunAsync("/bin/bash", ["-c", $"source {script}; COMP_WORDS=({quoted}); COMP_CWORD={words.Length - 1}; _sparky; printf '%s\\n' \"${{COMPREPLY[@]}}\""]);
        Assert.True(r.Code == 0, r.Output);
        return r.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
    }

    private static string Tool(string name) => ExternalTool.Find(name, name == "man" ? "man-db" : name);

    private static Task<ExternalTool.Result> RunAsync(string program, string[] args, Dictionary<string, string>? env = null) =>
        ExternalTool.RunAsync(program, args, env: env);
}
