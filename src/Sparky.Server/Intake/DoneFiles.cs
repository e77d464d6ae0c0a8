using Sparky.Core.Events;
using Sparky.Core.Tasks;
using Sparky.Server.Daemon;
using Sparky.Server.Events;
using Sparky.Server.Http;

namespace Sparky.Server.Intake;

/// <summary>Writes <c>&lt;data&gt;/queue/done/&lt;id&gt;.json</c> for each finished task that asked for one
/// (<see cref="TaskSpec.DoneFile"/>), off the engine's loop.</summary>
internal sealed class DoneFiles : IDisposable
{
    private readonly EventHub.Subscription _sub;
    private readonly Task _worker;

    public DoneFiles(SparkyDaemon d)
    {
        var dir = Path.Combine(d.Config.DataDir, "queue", "done");
        Directory.CreateDirectory(dir);
        _sub = d.Events.Subscribe(capacity: 1_000_000, filter: e => e.Topic == SparkyEvent.TaskFinished && e.Body["done_file"] is not null);
        _worker = Task.Run(async () =>
        {
            await foreach (var e in _sub.Reader.ReadAllAsync())
            {
                if (!TaskId.TryParse((string?)e.Body["id"], out var id)) continue;
                try { await WriteAsync(d, dir, id); }
                catch (Exception ex) { Console.Error.WriteLine($"sparky: done file for {id}: {ex.Message}"); }
            }
        });
    }

    private static async Task WriteAsync(SparkyDaemon d, string dir, TaskId id)
    {
        // The engine's write may still be in the group commit: wait (up to 10 s) for it to land.
        for (int i = 0; i < 500; i++)
        {
            var t = d.Store.Get(id);
            if (t is not null && t.State.IsTerminal())
            {
                var tmp = Path.Combine(dir, "." + id.Value + ".json.tmp");
                await File.WriteAllTextAsync(tmp, TaskJson.DoneFile(t).ToJsonString());
                File.Move(tmp, Path.Combine(dir, id.Value + ".json"), overwrite: true);
                return;
            }
            await Task.Delay(20);
        }
    }

    public void Dispose()
    {
        _sub.Dispose();
        _worker.Wait(TimeSpan.FromSeconds(5));
    }
}
