using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using Sparky.IntegrationTests.Support;

namespace Sparky.IntegrationTests.Deploy;

/// <summary>
/// The systemd units (deploy/systemd) pass `systemd-analyze verify`, and the daemon speaks Type=notify: it sends
/// READY=1 once it serves and STOPPING=1 when it is stopped, to the socket systemd names in NOTIFY_SOCKET (here a
/// socket of the test's own, as systemd's).
/// </summary>
public sealed class SystemdTests
{
    [Theory]
    [InlineData("sparky.service")]
    [InlineData("sparky-user.service")]
    public async Task The_unit_passes_systemd_analyze_verify(string unit)
    {
        var analyze = (Environment.GetEnvironmentVariable("PATH") ?? "/usr/bin").Split(':').Select(d => Path.Combine(d, "systemd-analyze")).FirstOrDefault(File.Exists)
            ?? throw new Xunit.Sdk.XunitException(Environment.GetEnvironmentVariable("CI") == "true"
                ? "systemd-analyze is not installed on this CI machine; test.sh installs it (Debian's systemd) when run as root"
                : "systemd-analyze is not installed: apt-get install systemd");
        // verify checks that ExecStart's program exists: the unit's install path is swapped for a sparky built here.
        var exe = SparkyCli.NativeExe ?? WrapperForTheDll();
        var dir = Path.Combine(Path.GetTempPath(), "sparky-units-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(dir);
        try
        {
            var text = File.ReadAllText(Path.Combine(SlurmCluster.RepoRoot(), "deploy", "systemd", unit));
            Assert.Contains("Type=notify", text);
            var tested = Path.Combine(dir, unit);
            File.WriteAllText(tested, text.Replace("ExecStart=/usr/bin/sparky", "ExecStart=" + exe).Replace("ExecStart=%h/.dotnet/tools/sparky", "ExecStart=" + exe));
            var psi = new ProcessStartInfo(analyze) { RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (var a in new[] { "verify", tested }) psi.ArgumentList.Add(a);
            using var p = Process.Start(psi)!;
            var output = await p.StandardOutput.ReadToEndAsync() + await p.StandardError.ReadToEndAsync();
            await p.WaitForExitAsync();
            Assert.True(p.ExitCode == 0 && output.Trim().Length == 0, $"systemd-analyze verify {unit}: exit {p.ExitCode}\n{output}");
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public async Task The_daemon_tells_systemd_when_it_is_ready_and_when_it_stops()
    {
        var root = TestDaemon.NewRoot();
        var path = Path.Combine(root, "notify.sock");
        using var socket = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        socket.Bind(new UnixDomainSocketEndPoint(path));
        var d = await DaemonProcess.StartAsync(Path.Combine(root, "data"), SparkyCli.FreePort(), 0,
            new Dictionary<string, string> { ["NOTIFY_SOCKET"] = path });
        try
        {
            Assert.Contains("READY=1", await ReceiveAsync(socket));
            using (var ready = await d.Http.GetAsync("readyz")) Assert.True(ready.IsSuccessStatusCode);
            Assert.Equal(0, await d.StopAsync());
            Assert.Contains("STOPPING=1", await ReceiveAsync(socket));
        }
        finally
        {
            await d.DisposeAsync();
            try { Directory.Delete(root, true); } catch (IOException) { }
        }
    }

    private static async Task<string> ReceiveAsync(Socket socket)
    {
        var buffer = new byte[4096];
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        int n = await socket.ReceiveAsync(buffer, SocketFlags.None, cts.Token);
        return Encoding.UTF8.GetString(buffer, 0, n);
    }

    /// <summary>An executable that runs sparky.dll, where no native build is given (verify only needs it to exist).</summary>
    private static string WrapperForTheDll()
    {
        var path = Path.Combine(Path.GetTempPath(), "sparky-dll-wrapper");
        File.WriteAllText(path, $"#!/bin/sh\nexec dotnet '{SparkyCli.Dll}' \"$@\"\n");
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
        return path;
    }
}
