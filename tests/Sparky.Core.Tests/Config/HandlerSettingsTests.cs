using Sparky.Core.Config;

namespace Sparky.Core.Tests.Config;

/// <summary><c>&lt;class&gt;_handler</c> and <c>&lt;class&gt;_sbatch_template</c>: how a command line setting is split into argv,
/// what it refuses, and which classes a setting gives a handler.</summary>
public sealed class HandlerSettingsTests
{
    private static readonly SettingContext Ctx = new(8, "/data");
    private static Dictionary<string, string> D(params (string, string)[] kv) => kv.ToDictionary(x => x.Item1, x => x.Item2);

    [Theory]
    [InlineData("python3 /opt/h.py", new[] { "python3", "/opt/h.py" })]
    [InlineData("  python3\t-u   h.py  ", new[] { "python3", "-u", "h.py" })]
    [InlineData("run 'a b' \"c d\" e\\ f", new[] { "run", "a b", "c d", "e f" })]
    [InlineData("run 'it''s' \"say \\\"hi\\\" \\\\ there\"", new[] { "run", "its", "say \"hi\" \\ there" })]
    [InlineData("sh -c 'cat | wc -c > /tmp/n; echo $HOME'", new[] { "sh", "-c", "cat | wc -c > /tmp/n; echo $HOME" })]
    [InlineData("run \"$HOME\" '*.py' \\;", new[] { "run", "$HOME", "*.py", ";" })]
    [InlineData("run '' x", new[] { "run", "", "x" })]
    [InlineData("", new string[0])]
    [InlineData("   ", new string[0])]
    public void A_command_line_splits_into_words_as_a_shell_would_without_expanding_anything(string line, string[] words)
    {
        var (got, error) = CommandWords.Split(line);
        Assert.Null(error);
        Assert.Equal(words, got);
    }

    [Theory]
    [InlineData("python3 h.py | tee log", "'|'")]
    [InlineData("python3 h.py > out", "'>'")]
    [InlineData("python3 h.py; rm -rf /", "';'")]
    [InlineData("python3 $HOME/h.py", "'$'")]
    [InlineData("python3 `which h`", "'`'")]
    [InlineData("python3 *.py", "'*'")]
    [InlineData("python3 ~/h.py", "'~'")]
    [InlineData("python3 h.py &", "'&'")]
    [InlineData("python3 'h.py", "never closed")]
    [InlineData("python3 \"h.py", "never closed")]
    [InlineData("python3 h.py\\", "nothing to escape")]
    [InlineData("python3 h.py\nrm -rf /", "newline")]
    [InlineData("python3 'h\n.py'", "newline")]
    public void What_a_shell_would_act_on_is_refused_with_where_it_is(string line, string expected)
    {
        var (words, error) = CommandWords.Split(line);
        Assert.Empty(words);
        Assert.NotNull(error);
        Assert.Contains(expected, error);
    }

    [Fact]
    public void A_bad_handler_setting_stops_the_load_naming_the_setting()
    {
        var (c, errors) = SparkyConfig.Resolve(D(("cpu_short_handler", "python3 h.py | tee x")), D(), D(), "f", Ctx);
        Assert.Null(c);
        var e = Assert.Single(errors);
        Assert.StartsWith("cpu_short_handler = ", e);
        Assert.Contains("'|'", e);
        Assert.NotNull(SparkyConfig.Resolve(D(("gpu_slurm_sbatch_template", "/a\nb")), D(), D(), "f", Ctx).Errors.SingleOrDefault(x => x.StartsWith("gpu_slurm_sbatch_template", StringComparison.Ordinal)));
    }

    [Fact]
    public void A_class_has_a_handler_where_its_setting_is_set_and_a_template_only_where_it_runs_on_slurm()
    {
        var (c, errors) = SparkyConfig.Resolve(
            D(("cpu_short_handler", "python3 '/opt/my handler.py' --json"), ("gpu_sbatch_template", "/t/gpu.sbatch"), ("gpu_slurm_sbatch_template", "/t/train.sbatch")),
            D(), D(), "f", Ctx);
        Assert.Empty(errors);
        Assert.Equal(["python3", "/opt/my handler.py", "--json"], c!.HandlerFor("cpu_short"));
        Assert.Null(c.HandlerFor("cpu_long"));
        Assert.Equal("/t/train.sbatch", c.SbatchTemplateFor("gpu_slurm"));
        // gpu runs here in laptop mode: its template does not apply.
        Assert.Null(c.SbatchTemplateFor("gpu"));
        var (cluster, _) = SparkyConfig.Resolve(D(("mode", "cluster"), ("gpu_sbatch_template", "/t/gpu.sbatch")), D(), D(), "f", Ctx);
        Assert.Equal("/t/gpu.sbatch", cluster!.SbatchTemplateFor("gpu"));
        Assert.Equal(TimeSpan.FromSeconds(10), c.SlurmSubmitWait);
    }
}
