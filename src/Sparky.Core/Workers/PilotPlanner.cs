namespace Sparky.Core.Workers;

/// <summary>
/// Decides how many pilot allocations (worker jobs on Slurm) to ask for. Pure: the engine tells it the backlog and
/// what is on its way, it answers a number. Pilots end themselves when idle, so it only ever scales up; it holds off
/// after pilots end without ever connecting (a broken command, a node that cannot reach the daemon), doubling the wait
/// each time, so a bad setup costs a few jobs, not thousands.
/// </summary>
public sealed class PilotPlanner(int maxPilots, int slotsPerPilot)
{
    private int _failuresInARow;
    private DateTimeOffset _holdUntil = DateTimeOffset.MinValue;

    public int MaxPilots { get; } = Math.Max(0, maxPilots);
    public int SlotsPerPilot { get; } = Math.Max(1, slotsPerPilot);
    public DateTimeOffset HoldUntil => _holdUntil;

    /// <summary>
    /// Pilots to submit now. <paramref name="backlog"/>: tasks of the pilot classes ready to run and not yet on a worker;
    /// <paramref name="freeCredits"/>: what connected workers can still take; <paramref name="pending"/>: pilots submitted
    /// and not yet connected; <paramref name="connected"/>: pilots connected and not draining (draining ones are leaving
    /// and do not count against the cap, so a replacement can start before they end).
    /// </summary>
    public int ToSubmit(int backlog, int freeCredits, int pending, int connected, DateTimeOffset now)
    {
        if (now < _holdUntil) return 0;
        long uncovered = (long)backlog - freeCredits - (long)pending * SlotsPerPilot;
        if (uncovered <= 0) return 0;
        long wanted = (uncovered + SlotsPerPilot - 1) / SlotsPerPilot;
        return (int)Math.Clamp(wanted, 0, Math.Max(0, MaxPilots - pending - connected));
    }

    /// <summary>A pilot connected: the setup works.</summary>
    public void Connected() => _failuresInARow = 0;

    /// <summary>A pilot's job ended (or could not be submitted) before its worker ever connected.</summary>
    public void EndedUnconnected(DateTimeOffset now)
    {
        _failuresInARow++;
        var wait = TimeSpan.FromSeconds(Math.Min(300, 2 * Math.Pow(2, Math.Min(_failuresInARow - 1, 8))));
        _holdUntil = now + wait;
    }
}
