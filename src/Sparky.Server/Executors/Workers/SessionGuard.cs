using Sparky.Core.Tasks;

namespace Sparky.Server.Executors.Workers;

/// <summary>
/// What binds a session to its worker: the key its hello proved (a hello under a live session's name from another
/// key is refused), the attempts it ended lately (an end sent again is acknowledged, not counted), and how many
/// messages it sent about attempts it was never given: past <see cref="WorkerExecutor.MaxBogusEnds"/> the session is closed.
/// </summary>
internal sealed class SessionGuard(string? key)
{
    /// <summary>Ends a session remembers (for ends sent again); bounded, however long the session lives.</summary>
    private const int RecentEnds = 4096;

    public string? Key { get; } = key;
    public int Bogus;
    private readonly Queue<(TaskId, int)> _order = new();
    private readonly HashSet<(TaskId, int)> _recent = new();

    public bool Recent(TaskId id, int attempt) => _recent.Contains((id, attempt));

    public void Remember(TaskId id, int attempt)
    {
        if (!_recent.Add((id, attempt))) return;
        _order.Enqueue((id, attempt));
        if (_order.Count > RecentEnds) _recent.Remove(_order.Dequeue());
    }
}
