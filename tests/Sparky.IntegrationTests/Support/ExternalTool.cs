using System.Diagnostics;

namespace Sparky.IntegrationTests.Support;

/// <summary>A program of this machine's that a test drives (lintian, fish, man, node…): found on PATH, or a failure that
/// says how to install it (never a skip), and run with its output and exit code.</summary>
internal static class ExternalTool
{
    public sealed record Result(int Code, string Stdout, string Stderr)
    {
        public string Output => Stdout + Stderr;
    }

    /// <param name="package">the Debian package that has it</param>
    public static string Find(string name, string package) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "/usr/bin").Split(':').Select(d => Path.Combine(d, name)).FirstOrDefault(File.Exists)
        ?? throw new Xunit.Sdk.XunitException(Environment.GetEnvironmentVariable("CI") == "true"
            ? $"{name} is not installed on this CI machine; test.sh installs it ({package}) when run as root"
            : $"{name} is not installed: apt-get install {package}");

    /// <summary>What <c>file</c> says a file is, past symbolic links (e.g. "ELF 64-bit LSB pie executable, ARM aarch64, …,
    /// stripped").</summary>
    public static async Task<string> DescribeAsync(string path) =>
        (await RunAsync(Find("file", "file"), ["--brief", "--dereference", path])).Stdout.Trim();

    public static async Task<Result> RunAsync(string program, IEnumerable<string> args, string? cwd = null,
        IDictionary<string, string>? env = null, double timeoutSeconds = 120)
    {
        var psi = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = cwd ?? "" };
        foreach (var a in args) psi.ArgumentList.Add(a);
        foreach (var (k, v) in env ?? new Dictionary<string, string>()) psi.Environment[k] = v;
        using var p = Start(psi);
        var output = p.StandardOutput.ReadToEndAsync();
        var error = p.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(timeoutSeconds));
        await p.WaitForExitAsync(cts.Token);
        return new Result(p.ExitCode, await output, await error);
    }

    private const int ETXTBSY = 26;

    /// <summary>Starts it, again a few times while Linux answers "text file busy": a test that has just written or copied
    /// the executable closed it, but a process that another test forked at that moment holds the writable descriptor
    /// until its own exec (close-on-exec), for a moment, and the kernel refuses to run a file open for writing.</summary>
    private static Process Start(ProcessStartInfo psi)
    {
        for (var tries = 1; ; tries++)
        {
            try { return Process.Start(psi)!; }
            catch (System.ComponentModel.Win32Exception e) when (e.NativeErrorCode == ETXTBSY && tries < 10) { Thread.Sleep(20 * tries); }
        }
    }
}
