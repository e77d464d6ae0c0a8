using System.CommandLine;
using System.Text.Json.Nodes;
using Sparky.Cli;
using Sparky.Cli.Submit;

namespace Sparky;

public static class Program
{
    public static async Task<int> Main(string[] args)
    {
        // `sparky submit` in a shell loop: no command tree, no HttpClient, no console set-up (see QuickSubmit). Not
        // again for a line sparky-quick has just declined and handed back (Native/quick.c): the tree runs it.
        try
        {
            if (!QuickSubmit.HandedBack() && QuickSubmit.TryRun(args) is { } exit) return exit;
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
        var root = Verbs.Build();
        var parse = root.Parse(args);
        if (parse.Errors.Count > 0)
        {
            // One clear line, not a wall of help.
            // The most telling error first: a typo'd flag or verb says more than "command not provided".
            var error = parse.Errors.FirstOrDefault(e => e.Message.StartsWith("Unrecognized", StringComparison.Ordinal)) ?? parse.Errors[0];
            var verb = parse.CommandResult.Command is RootCommand ? "" : parse.CommandResult.Command.Name + " ";
            var message = error.Message
                .Replace("System.Nullable`1[System.Int32]", "an integer").Replace("System.Int32", "an integer")
                .Replace("System.Nullable`1[System.Double]", "a number").Replace("System.Double", "a number")
                .Replace("expected type 'an integer'", "an integer").Replace("expected type 'a number'", "a number");
            Console.Error.WriteLine($"sparky: {message} (try `sparky {verb}--help`)");
            return 2;
        }
        // Piped output still deserves a readable table: don't wrap at 80 columns. (Help draws no table: it is spared
        // setting up Spectre's console.)
        if (parse.Action is not System.CommandLine.Help.HelpAction && Console.IsOutputRedirected) Spectre.Console.AnsiConsole.Profile.Width = 200;
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
