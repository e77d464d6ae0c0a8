using System.Diagnostics;
using System.Text;

namespace Sparky.IntegrationTests.Support;

/// <summary>`sparky worker` as a real process, for tests that kill it.</summary>
public sealed class WorkerProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _stderr = new();

    public string Name { get; }
    public int Pid => _process.Id;
    public bool HasExited => _process.HasExited;
    public int ExitCode => _process.ExitCode;

    private WorkerProcess(Process process, string name)
    {
        _process = process;
        Name = name;
    }

    public static WorkerProcess Start(string endpoint, string name, int slots = 2, params string[] extra)
    {
        var args = new List<string> { "worker", "--connect", endpoint, "--name", name, "--slots", slots.ToString() };
        args.AddRange(extra);
        var p = Process.Start(SparkyCli.StartInfo(args))!;
        var w = new WorkerProcess(p, name);
        p.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (w._stderr) w._stderr.AppendLine(e.Data); };
        p.OutputDataReceived += (_, _) => { };
        p.BeginErrorReadLine();
        p.BeginOutputReadLine();
        return w;
    }

    public string Stderr { get { lock (_stderr) return _stderr.ToString(); } }

    /// <summary>SIGKILL: no bye, no chance to stop its tasks itself.</summary>
    public void KillHard()
    {
        _process.Kill();
        _process.WaitForExit();
    }

    public async Task<bool> WaitForExitAsync(double seconds)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(seconds));
        try { await _process.WaitForExitAsync(cts.Token); return true; }
        catch (OperationCanceledException) { return false; }
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill();
            await _process.WaitForExitAsync();
        }
        _process.Dispose();
    }
}
