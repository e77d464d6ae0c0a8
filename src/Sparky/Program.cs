using System.CommandLine;
using System.Text.Json.Nodes;
using Sparky.Cli;

namespace Sparky;

public static class Program
{
    public static async Task<int> Main(string[] args)
    {
        // Piped output still deserves a readable table: don't wrap at 80 columns.
        if (Console.IsOutputRedirected) Spectre.Console.AnsiConsole.Profile.Width = 200;
        var root = Verbs.Build();
        var parse = root.Parse(args);
        if (parse.Errors.Count > 0)
        {
            // One clear line, not a wall of help.
            // The most telling error first: a typo'd flag or verb says more than "command not provided".
            var error = parse.Errors.FirstOrDefault(e => e.Message.StartsWith("Unrecognized", StringComparison.Ordinal)) ?? parse.Errors[0];
            var verb = parse.CommandResult.Command is RootCommand ? "" : parse.CommandResult.Command.Name + " ";
            Console.Error.WriteLine($"sparky: {error.Message} (try `sparky {verb}--help`)");
            return 2;
        }
        try
        {
            return await parse.InvokeAsync(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
        }
        catch (CliException e)
        {
            Console.Error.WriteLine($"sparky: {e.Message}");
            return e.ExitCode;
        }
        catch (OperationCanceledException)
        {
            return 130;
        }
    }
}
