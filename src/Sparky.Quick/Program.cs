using System.Runtime.InteropServices;
using System.Text;
using Sparky.Cli;
using Sparky.Cli.Submit;

namespace Sparky;

/// <summary>
/// The quick client. Runs a <c>sparky submit</c> line that <see cref="QuickSubmit"/> takes, exactly as sparky itself
/// would (same request, output, errors and exit codes); any other line goes back to the sparky beside it, which runs it
/// with its command tree (and does not hand it here again, nor try the quick path again: <see cref="QuickSubmit.DeclinedVariable"/>).
/// </summary>
public static partial class Program
{
    public static int Main(string[] args)
    {
        try
        {
            if (QuickSubmit.TryRun(args) is { } exit) return exit;
        }
        catch (CliException e)
        {
            WriteStderr($"sparky: {e.Message}\n");
            return e.ExitCode;
        }
        catch (OperationCanceledException)
        {
            return 130;
        }
        return HandBack(args);
    }

    /// <summary>Replaces this process with the sparky beside this executable, with the same arguments.</summary>
    private static int HandBack(string[] args)
    {
        var sparky = Path.Combine(AppContext.BaseDirectory, "sparky");
        var argv = new string?[args.Length + 2];
        argv[0] = "sparky";
        args.CopyTo(argv, 1);
        if (setenv(QuickSubmit.DeclinedVariable, "1", 1) == 0) execv(sparky, argv);
        WriteStderr($"sparky: cannot run {sparky} ({Marshal.GetLastPInvokeErrorMessage()}); sparky-quick runs only beside it\n");
        return 127;
    }

    private static void WriteStderr(string text) => Libc.WriteAll(2, Encoding.UTF8.GetBytes(text));

    [LibraryImport("libc", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int execv(string path, string?[] argv);

    [LibraryImport("libc", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int setenv(string name, string value, int overwrite);
}
