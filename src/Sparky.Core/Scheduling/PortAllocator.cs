namespace Sparky.Core.Scheduling;

/// <summary>
/// Ports reserved for running tasks (<c>MASTER_PORT</c>, <c>SPARKY_PORT</c>): each held by one task until its attempt
/// ends, never by two at once. Ports are handed out in turn through the range, so a port just released is the last to
/// come back (a rendezvous that lingers in TIME_WAIT is not reused at once); one that something outside Sparky holds
/// is skipped, as <c>isFree</c> (binding it, in the executor) says. Pure but for that probe.
/// </summary>
public sealed class PortAllocator
{
    /// <summary>torchrun's default, 29500, is left to tasks that start it by hand; Sparky's ports are the next 499.</summary>
    public const int DefaultFirst = 29501, DefaultLast = 29999;

    private readonly int _first, _last;
    private readonly Func<int, bool> _isFree;
    private readonly Dictionary<string, int> _byHolder = new(StringComparer.Ordinal);
    private readonly HashSet<int> _held = new();
    private int _next;

    public PortAllocator(int first, int last, Func<int, bool> isFree)
    {
        if (first < 1 || last > 65535 || first > last) throw new ArgumentException($"a port range is 1 to 65535, first to last; got {first}-{last}");
        (_first, _last, _isFree, _next) = (first, last, isFree, first);
    }

    public int HeldCount => _held.Count;

    /// <summary>The port <paramref name="holder"/> holds, if any.</summary>
    public int? PortOf(string holder) => _byHolder.TryGetValue(holder, out var p) ? p : null;

    /// <summary>A free port for <paramref name="holder"/> (the one it already holds, if it holds one); null when every
    /// port in the range is held or in use.</summary>
    public int? Reserve(string holder)
    {
        if (_byHolder.TryGetValue(holder, out var mine)) return mine;
        int size = _last - _first + 1;
        for (int i = 0; i < size; i++)
        {
            int port = _next;
            _next = port == _last ? _first : port + 1;
            if (_held.Contains(port) || !_isFree(port)) continue;
            _held.Add(port);
            _byHolder[holder] = port;
            return port;
        }
        return null;
    }

    /// <summary>A port a task already has (found running after a restart): held again, so no other task gets it.
    /// False when another holder has it.</summary>
    public bool Hold(string holder, int port)
    {
        if (_byHolder.TryGetValue(holder, out var mine)) return mine == port;
        if (!_held.Add(port)) return false;
        _byHolder[holder] = port;
        return true;
    }

    /// <summary>The holder's attempt ended: its port may go to another task. Nothing when it holds none.</summary>
    public void Release(string holder)
    {
        if (_byHolder.Remove(holder, out var port)) _held.Remove(port);
    }
}
