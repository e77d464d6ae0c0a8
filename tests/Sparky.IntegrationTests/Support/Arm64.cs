using System.Runtime.InteropServices;

namespace Sparky.IntegrationTests.Support;

/// <summary>
/// The linux-arm64 native build (<c>./native.sh --rid linux-arm64</c>: cross-compiled where this machine is x64; test.sh
/// builds it before the tests) and how to run an aarch64 executable here: directly on aarch64, else under qemu-user
/// with Debian's arm64 C library and OpenSSL (multiarch: <c>libssl3:arm64</c>, which .NET's crypto loads at run time).
/// </summary>
internal static class Arm64
{
    private static readonly Lazy<Task<string>> Built = new(BuildAsync);

    /// <summary>The arm64 sparky, built when a source is newer than it.</summary>
    public static Task<string> ExeAsync() => Built.Value;

    /// <summary>The command that runs <paramref name="exe"/> (an aarch64 executable) on this machine.</summary>
    public static IReadOnlyList<string> Command(string exe)
    {
        if (RuntimeInformation.OSArchitecture == Architecture.Arm64) return [exe];
        var qemu = ExternalTool.Find("qemu-aarch64", "qemu-user");
        foreach (var lib in new[] { "/lib/ld-linux-aarch64.so.1", "/usr/lib/aarch64-linux-gnu/libssl.so.3", "/usr/lib/aarch64-linux-gnu/libstdc++.so.6" })
            if (!File.Exists(lib))
                throw new Xunit.Sdk.XunitException($"{lib} is missing: the arm64 sparky runs under qemu with Debian's arm64 libraries " +
                    "(dpkg --add-architecture arm64; apt-get update; apt-get install libssl3:arm64 libstdc++6:arm64); test.sh installs them as root");
        return [qemu, exe];
    }

    public static Task<ExternalTool.Result> RunAsync(string exe, IEnumerable<string> args, string? cwd = null, double timeoutSeconds = 120,
        IDictionary<string, string>? env = null)
    {
        var command = Command(exe);
        return ExternalTool.RunAsync(command[0], command.Skip(1).Concat(args), cwd, env, timeoutSeconds);
    }

    private static async Task<string> BuildAsync()
    {
        var built = await ExternalTool.RunAsync(Path.Combine(SlurmCluster.RepoRoot(), "native.sh"), ["--rid", "linux-arm64"], timeoutSeconds: 900);
        if (built.Code != 0) throw new Xunit.Sdk.XunitException("./native.sh --rid linux-arm64 failed:\n" + built.Output);
        return built.Stdout.Trim();
    }
}
