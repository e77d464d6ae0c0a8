using System.Diagnostics;

namespace Sparky.IntegrationTests.Support;

/// <summary>
/// A command in a real terminal: a detached tmux session of a given size on a tmux server of its own (its own socket,
/// so tests in parallel and a user's tmux never meet), driven with <c>send-keys</c> and read with <c>capture-pane</c>.
/// </summary>
public sealed class Tmux : IAsyncDisposable
{
    private readonly string _socket = "sparky-test-" + Guid.NewGuid().ToString("N")[..10];
    private const string Session = "t";

    /// <summary>Fails (never skips) where tmux is missing: test.sh installs it.</summary>
    public static void Require()
    {
        if (Run(["-V"], "").ExitCode == 0) return;
        throw new Xunit.Sdk.XunitException(Environment.GetEnvironmentVariable("CI") == "true"
            ? "tmux is not installed on this CI machine; test.sh installs it (apt-get install tmux) when run as root"
            : "tmux is not installed: run test.sh as root, or apt-get install tmux");
    }

    /// <summary>Starts <paramref name="shellCommand"/> in a <paramref name="width"/>×<paramref name="height"/> terminal.</summary>
    public static Tmux Start(string shellCommand, int width = 80, int height = 24)
    {
        var t = new Tmux();
        var r = Run(["new-session", "-d", "-s", Session, "-x", width.ToString(), "-y", height.ToString(), shellCommand], t._socket);
        if (r.ExitCode != 0) throw new InvalidOperationException("tmux new-session: " + r.Output);
        return t;
    }

    /// <summary>What the terminal shows now, one string per row.</summary>
    public string[] Capture() => Run(["capture-pane", "-p", "-t", Session], _socket).Output.Split('\n');

    /// <summary>Keys as tmux names them (<c>Enter</c>, <c>Escape</c>), or <paramref name="literal"/> text.</summary>
    public void Send(string keys, bool literal = false) =>
        Run(literal ? ["send-keys", "-t", Session, "-l", keys] : ["send-keys", "-t", Session, keys], _socket);

    public void Resize(int width, int height) =>
        Run(["resize-window", "-t", Session, "-x", width.ToString(), "-y", height.ToString()], _socket);

    /// <summary>Polls the screen until <paramref name="shows"/> holds; on a timeout, says what the screen showed.</summary>
    public async Task<string[]> UntilAsync(Func<string[], bool> shows, string what, double seconds = 30)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (true)
        {
            var screen = Capture();
            if (shows(screen)) return screen;
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException($"the terminal never showed {what}; it showed:\n{string.Join('\n', screen)}");
            await Task.Delay(50);
        }
    }

    private static (int ExitCode, string Output) Run(IReadOnlyList<string> args, string socket)
    {
        var psi = new ProcessStartInfo("tmux") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (socket.Length > 0) { psi.ArgumentList.Add("-L"); psi.ArgumentList.Add(socket); }
        foreach (var a in args) psi.ArgumentList.Add(a);
        try
        {
            using var p = Process.Start(psi)!;
            var output = p.StandardOutput.ReadToEnd() + p.StandardError.ReadToEnd();
            p.WaitForExit();
            return (p.ExitCode, output);
        }
        catch (System.ComponentModel.Win32Exception) { return (-1, "tmux not found"); }
    }

    public ValueTask DisposeAsync()
    {
        Run(["kill-server"], _socket);
        return ValueTask.CompletedTask;
    }
}
