using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Sparky.Execution.Host;
using Sparky.Execution.Slurm;
using static Sparky.Execution.Tests.Slurm.SbatchScriptTests;

namespace Sparky.Execution.Tests.Slurm;

/// <summary>The port a multi-node job's rendezvous gets on its first node (<see cref="SbatchScript.PickPort"/>), run
/// in real bash on this host: ports in use, or closing in TIME_WAIT, are skipped; Slurm's job id is only ever a number.</summary>
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class SbatchPortPickTests
{
    private static (int Code, string Port, string Stderr) Pick(string jobId, string cwd)
    {
        var psi = new ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = cwd };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add(SbatchScript.PickPort + "echo \"$MASTER_PORT\"");
        psi.Environment["SLURM_JOB_ID"] = jobId;
        using var p = Process.Start(psi)!;
        var stderr = p.StandardError.ReadToEndAsync();
        var stdout = p.StandardOutput.ReadToEnd();
        Assert.True(p.WaitForExit(30_000), "bash did not finish");
        return (p.ExitCode, stdout.Trim(), stderr.Result);
    }

    /// <summary>Three ports in a row of the range that nothing on this host uses now.</summary>
    private static int ThreeFree()
    {
        for (int first = SbatchScript.FirstPort + 300; first + 2 <= SbatchScript.LastPort; first++)
            if (PortProbe.IsFree(first) && PortProbe.IsFree(first + 1) && PortProbe.IsFree(first + 2)) return first;
        throw new InvalidOperationException("no three free ports in a row in the range");
    }

    /// <summary>The server side of a connection it closed first: its local port stays in TIME_WAIT for a minute.</summary>
    private static void LeaveInTimeWait(int port)
    {
        var listener = new TcpListener(IPAddress.Loopback, port);
        listener.Start();
        using var client = new TcpClient();
        client.Connect(IPAddress.Loopback, port);
        using (var accepted = listener.AcceptSocket()) accepted.Close();
        Thread.Sleep(50);
        client.Close();
        listener.Stop();
    }

    [Fact]
    public void The_pick_starts_from_the_job_id_and_skips_ports_listening_or_in_time_wait()
    {
        int first = ThreeFree();
        string job = (first - SbatchScript.FirstPort).ToString(System.Globalization.CultureInfo.InvariantCulture);
        var tmp = Path.GetTempPath();
        Assert.Equal((0, first.ToString(System.Globalization.CultureInfo.InvariantCulture)), (Pick(job, tmp).Code, Pick(job, tmp).Port));

        using var listening = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listening.Bind(new IPEndPoint(IPAddress.Loopback, first));
        listening.Listen();
        LeaveInTimeWait(first + 1);
        Assert.Contains(File.ReadLines("/proc/net/tcp"), l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries) is [_, var local, _, "06", ..]
            && local.EndsWith(":" + (first + 1).ToString("X4", System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal));

        var r = Pick(job, tmp);
        Assert.Equal("", r.Stderr);
        Assert.Equal((first + 2).ToString(System.Globalization.CultureInfo.InvariantCulture), r.Port);
    }

    [Theory]
    [InlineData("a[$(touch PWNED)]")]
    [InlineData("$(touch PWNED)12`touch PWNED`")]
    [InlineData("99999999999999999999999999")]
    [InlineData("")]
    [InlineData("0099")]
    public void A_job_id_of_any_text_gives_a_port_in_the_range_and_runs_nothing(string jobId)
    {
        var dir = Directory.CreateTempSubdirectory("sparky-pick-").FullName;
        try
        {
            var r = Pick(jobId, dir);
            Assert.Equal((0, ""), (r.Code, r.Stderr));
            Assert.InRange(int.Parse(r.Port, System.Globalization.CultureInfo.InvariantCulture), SbatchScript.FirstPort, SbatchScript.LastPort);
            Assert.Empty(Directory.GetFiles(dir));
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public void The_rendered_script_picks_its_port_with_the_probe_after_the_first_node_is_known()
    {
        var script = SbatchScript.Render(Request() with { Nodes = new SbatchNodes(2, null, 1, false) });
        int first = script.IndexOf("SPARKY_FIRST_NODE=", StringComparison.Ordinal);
        int pick = script.IndexOf(SbatchScript.PickPort, StringComparison.Ordinal);
        Assert.True(first >= 0 && pick > first, script);
        Assert.DoesNotContain("/dev/tcp", script);
        Assert.True(pick < script.IndexOf("export MASTER_ADDR MASTER_PORT", StringComparison.Ordinal));
    }
}
