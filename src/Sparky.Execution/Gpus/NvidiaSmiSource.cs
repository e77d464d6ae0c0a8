using System.ComponentModel;
using System.Diagnostics;

namespace Sparky.Execution.Gpus;

/// <summary>
/// Runs nvidia-smi (found on PATH unless a path is given) and parses its CSV. Each Read is one run,
/// a few tens of milliseconds on a real machine: cheap enough to sample every couple of seconds.
/// </summary>
internal sealed class NvidiaSmiSource(string executable, TimeSpan timeout, Func<HostMemory?> host) : IGpuSource
{
    public const string DefaultExecutable = "nvidia-smi";
    private const int ETXTBSY = 26;

    public string Name => "nvidia-smi";

    public IReadOnlyList<GpuInfo> Read()
    {
        var (exitCode, stdout, stderr) = Run();
        if (exitCode != 0)
        {
            // nvidia-smi says why on stdout ("No devices were found", "couldn't communicate with the NVIDIA driver").
            var why = FirstLine(stdout) ?? FirstLine(stderr) ?? "no output";
            throw new GpuException($"nvidia-smi: exit code {exitCode}: {why}");
        }
        return NvidiaSmiCsv.Parse(stdout, host());
    }

    private (int ExitCode, string Stdout, string Stderr) Run()
    {
        var psi = new ProcessStartInfo(executable)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        psi.ArgumentList.Add("--query-gpu=" + NvidiaSmiCsv.Fields);
        psi.ArgumentList.Add("--format=csv,noheader,nounits");

        using var p = new Process { StartInfo = psi };
        for (int tries = 1; ; tries++)
        {
            try { p.Start(); break; }
            // ETXTBSY: the file is open for writing somewhere: being installed, or written a moment ago and its
            // descriptor still held by a child another thread forked before exec closed it. Brief: try again.
            catch (Win32Exception e) when (e.NativeErrorCode == ETXTBSY && tries < 5) { Thread.Sleep(20 * tries); }
            catch (Win32Exception e) { throw new GpuException(e.NativeErrorCode == 2 ? $"nvidia-smi: '{executable}' not found" : $"nvidia-smi: cannot run '{executable}': {e.Message}"); }
        }
        p.StandardInput.Close();
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(timeout))
        {
            // A hung driver makes nvidia-smi hang; kill it (and anything it started) rather than wait.
            try { p.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
            throw new GpuException($"nvidia-smi: no answer within {timeout.TotalSeconds:0.#} s");
        }
        // Exited; its output ends with it (unless a child holds the pipe: bounded too).
        if (!Task.WaitAll([stdout, stderr], TimeSpan.FromSeconds(1)))
            throw new GpuException("nvidia-smi: exited but its output did not end");
        return (p.ExitCode, stdout.Result, stderr.Result);
    }

    private static string? FirstLine(string s) =>
        s.Split('\n').Select(l => l.Trim()).FirstOrDefault(l => l.Length > 0);

    public void Dispose() { }
}
