using System.Diagnostics;

namespace Sparky.IntegrationTests.Support;

/// <summary>Runs the real <c>sparky</c> executable, as a user would: the sparky.dll built beside this test
/// assembly under dotnet, or the native build that <c>SPARKY_TEST_EXE</c> names (test.sh runs part of the suite
/// against it).</summary>
public static class SparkyCli
{
    /// <summary>The sparky.dll built beside this test assembly (the test project references the executable).</summary>
    public static string Dll => Path.Combine(AppContext.BaseDirectory, "sparky.dll");

    /// <summary>The native executable under test, or null for the dll.</summary>
    public static string? NativeExe { get; } = Environment.GetEnvironmentVariable("SPARKY_TEST_EXE") is { Length: > 0 } exe
        ? File.Exists(exe) ? Path.GetFullPath(exe) : throw new FileNotFoundException($"SPARKY_TEST_EXE names no file: {exe}")
        : null;

    /// <summary>How a shell or a job script starts the executable under test.</summary>
    public static string CommandLine => NativeExe ?? $"dotnet {Dll}";

    public static ProcessStartInfo StartInfo(IEnumerable<string> args, IDictionary<string, string>? env = null, string? cwd = null)
    {
        var psi = new ProcessStartInfo(NativeExe ?? "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            WorkingDirectory = cwd ?? Environment.CurrentDirectory,
        };
        if (NativeExe is null) psi.ArgumentList.Add(Dll);
        foreach (var a in args) psi.ArgumentList.Add(a);
        foreach (var (k, v) in env ?? new Dictionary<string, string>()) psi.Environment[k] = v;
        return psi;
    }

    public sealed record Result(int ExitCode, string Stdout, string Stderr);

    public static async Task<Result> RunAsync(IEnumerable<string> args, IDictionary<string, string>? env = null, string? cwd = null, double timeoutSeconds = 120)
    {
        using var p = Process.Start(StartInfo(args, env, cwd))!;
        p.StandardInput.Close();
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(timeoutSeconds));
        try { await p.WaitForExitAsync(cts.Token); }
        catch (OperationCanceledException)
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"sparky {string.Join(' ', args)} did not finish in {timeoutSeconds}s");
        }
        return new Result(p.ExitCode, await stdout, await stderr);
    }

    /// <summary>
    /// A port free now, never handed out before in this process, and below the kernel's ephemeral range (32768 up): test
    /// classes run in parallel, and a port the kernel picked for port 0 could be picked again, for another test's
    /// daemon or for any client socket, between this call and the daemon's bind.
    /// </summary>
    public static int FreePort()
    {
        lock (Given)
        {
            while (true)
            {
                int port = Random.Shared.Next(20000, 32000);
                if (!Given.Add(port)) continue;
                try
                {
                    var l = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, port);
                    l.Start();
                    l.Stop();
                    return port;
                }
                catch (System.Net.Sockets.SocketException) { } // taken: another
            }
        }
    }

    private static readonly HashSet<int> Given = [];
}
