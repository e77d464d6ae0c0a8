using System.Runtime.InteropServices;

namespace Sparky.Cli;

/// <summary>
/// Ctrl-C (SIGINT) and SIGTERM as a cancellation, for a live view: it ends through its own clean-up (the cursor shown
/// again, the terminal's screen given back) instead of being killed in the middle of a frame. The verb then exits 130.
/// </summary>
internal sealed class Interruption : IDisposable
{
    private readonly CancellationTokenSource _cts;
    private readonly PosixSignalRegistration?[] _signals;

    public Interruption(CancellationToken ct)
    {
        _cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        _signals = [On(PosixSignal.SIGINT), On(PosixSignal.SIGTERM)];
    }

    /// <summary>Cancelled by the verb's own token, or by one of the signals.</summary>
    public CancellationToken Token => _cts.Token;

    private PosixSignalRegistration? On(PosixSignal signal)
    {
        try
        {
            return PosixSignalRegistration.Create(signal, ctx =>
            {
                ctx.Cancel = true;
                _cts.Cancel();
            });
        }
        catch (PlatformNotSupportedException) { return null; }
    }

    public void Dispose()
    {
        foreach (var s in _signals) s?.Dispose();
        _cts.Dispose();
    }
}
