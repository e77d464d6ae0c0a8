using System.CommandLine;
using Sparky.Cli.Submit;

namespace Sparky.Cli.Tests.Submit;

/// <summary>The quick reader of <c>sparky submit</c> must read every line it takes exactly as the command tree does,
/// and give every other line to the tree.</summary>
public sealed class QuickSubmitArgsTests
{
    public static TheoryData<string[]> Taken => new()
    {
        new[] { "submit", "--", "true" },
        new[] { "submit", "true" },
        new[] { "submit", "--retries", "1", "--env", "WHO=cli", "echo hello $WHO > hello.txt" },
        new[] { "submit", "echo", "hi", "--name", "after-the-command" },
        new[] { "submit", "--name", "n", "--cpus", "0.5", "--env", "A=1", "--env", "B=2", "--after", "a,b", "--after", "c", "--json", "--port", "--", "sh", "-c", "exit 3" },
        new[] { "submit", "--server", "127.0.0.1:1", "--gpus", "2", "--nodes", "3", "--gpus-per-node", "1", "--procs-per-node", "4", "--exclusive",
            "--mem", "4G", "--gpu-mem", "20G", "--timeout", "5m", "--cwd", "/tmp", "--array", "0-3", "--id", "mine", "--class", "cpu_long", "--", "x" },
        new[] { "submit", "--", "--not-an-option", "-x", "/h", "--help", "true" },
        new[] { "submit", "--name", "[bold]n[/]", "--", "true", "\u001b[2J", "[red]x[/]" },
    };

    [Theory]
    [MemberData(nameof(Taken))]
    public void A_line_it_takes_reads_as_the_command_tree_reads_it(string[] args)
    {
        var quick = QuickSubmitArgs.TryParse(args);
        Assert.NotNull(quick);
        var tree = TreeRead(args);
        Assert.Equal(System.Text.Encoding.UTF8.GetString(tree.Body()), System.Text.Encoding.UTF8.GetString(quick.Body()));
        Assert.Equal(tree.Server, quick.Server);
        Assert.Equal(tree.Json, quick.Json);
        Assert.False(quick.Wait);
    }

    [Theory]
    [InlineData("submit")]
    [InlineData("submit", "--wait", "--", "true")]
    [InlineData("submit", "--help")]
    [InlineData("submit", "-h")]
    [InlineData("submit", "true", "/h")]
    [InlineData("submit", "--name=x", "--", "true")]
    [InlineData("submit", "--name", "a", "--name", "b", "--", "true")]
    [InlineData("submit", "--name", "-x", "--", "true")]
    [InlineData("submit", "--name")]
    [InlineData("submit", "--cpus", "abc", "--", "true")]
    [InlineData("submit", "--gpus", "1.5", "--", "true")]
    [InlineData("submit", "--json", "true", "--", "x")]
    [InlineData("submit", "--unknown", "--", "true")]
    [InlineData("submit", "true", "-x")]
    [InlineData("submit", "@args.rsp")]
    [InlineData("submit", "--", "curl", "-d", "@body.json")]
    [InlineData("--json", "submit", "--", "true")]
    [InlineData("ls")]
    public void Any_other_line_is_left_to_the_tree(params string[] args) => Assert.Null(QuickSubmitArgs.TryParse(args));

    /// <summary>What the tree's submit verb reads from a line, by its options' names.</summary>
    private static SubmitRequest TreeRead(string[] args)
    {
        var p = Verbs.Build().Parse(args);
        Assert.Empty(p.Errors);
        return new SubmitRequest
        {
            Command = p.GetValue<string[]>("command")!, Server = p.GetValue<string?>("--server"), Json = p.GetValue<bool>("--json"),
            Wait = p.GetValue<bool>("--wait"), Class = p.GetValue<string?>("--class"), Name = p.GetValue<string?>("--name"),
            Id = p.GetValue<string?>("--id"), Cpus = p.GetValue<double?>("--cpus"), Mem = p.GetValue<string?>("--mem"),
            Gpus = p.GetValue<int?>("--gpus"), GpuMem = p.GetValue<string?>("--gpu-mem"), Port = p.GetValue<bool>("--port"),
            Nodes = p.GetValue<int?>("--nodes"), GpusPerNode = p.GetValue<int?>("--gpus-per-node"),
            ProcsPerNode = p.GetValue<int?>("--procs-per-node"), Exclusive = p.GetValue<bool>("--exclusive"),
            After = p.GetValue<string[]>("--after") ?? [], Retries = p.GetValue<int?>("--retries"), Timeout = p.GetValue<string?>("--timeout"),
            Env = p.GetValue<string[]>("--env") ?? [], Cwd = p.GetValue<string?>("--cwd"), Array = p.GetValue<string?>("--array"),
        };
    }
}
