using System.Text.Json.Nodes;
using System.Threading.Channels;
using Spectre.Console;
using Sparky.Cli.Progress;

namespace Sparky.Cli;

/// <summary>
/// Waits for tasks to finish. It follows the daemon's events (a task's end is read the moment it is announced) and
/// reads the tasks afresh on every (re)connection and every <see cref="SafetyRead"/>; without events, it polls.
/// Shows progress where asked: live on a terminal, else plain lines on stderr (see <see cref="LineThrottle"/>).
/// </summary>
internal static class Waiter
{
    /// <summary>With events flowing, the tasks are read again this often anyway (an event lost to a slow reader).</summary>
    private static readonly TimeSpan SafetyRead = TimeSpan.FromSeconds(5);
    /// <summary>Without events: the first poll's delay, and the slowest.</summary>
    private static readonly TimeSpan FirstPoll = TimeSpan.FromMilliseconds(50), SlowestPoll = TimeSpan.FromMilliseconds(500);

    public static async Task<Dictionary<string, JsonNode>> WaitAsync(DaemonClient client, IReadOnlyList<string> ids, bool progress, string title, CancellationToken ct)
    {
        var watch = new TaskSetProgress(ids, title, DateTimeOffset.Now);
        if (progress && !Console.IsOutputRedirected && AnsiConsole.Profile.Capabilities.Interactive)
        {
            using var interruption = new Interruption(ct);
            await AnsiConsole.Live(new Text("")).AutoClear(false).StartAsync(async ctx =>
                await FollowAsync(client, watch, now => ctx.UpdateTarget(Rows(watch.LiveLines(now, AnsiConsole.Profile.Width))), interruption.Token));
            return watch.Final;
        }
        var lines = new LineThrottle();
        void Print(DateTimeOffset now, bool final = false)
        {
            if (progress && lines.Next(watch.PlainKey(), watch.PlainLine(now), now, final) is { } line) Console.Error.WriteLine(line);
        }
        await FollowAsync(client, watch, now => Print(now), ct);
        Print(DateTimeOffset.Now, final: true);
        return watch.Final;
    }

    private static Rows Rows(IEnumerable<string> lines) => new(lines.Select(l => new Markup(l)));

    /// <summary>Until every task ended: events in, reads where due, <paramref name="show"/> after each change and each second.</summary>
    private static async Task FollowAsync(DaemonClient client, TaskSetProgress watch, Action<DateTimeOffset> show, CancellationToken ct)
    {
        var inbox = Channel.CreateUnbounded<FeedItem>(new UnboundedChannelOptions { SingleReader = true });
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var feed = EventFeed.RunAsync(client, t => t.StartsWith("task.", StringComparison.Ordinal), item => inbox.Writer.TryWrite(item), stop.Token);
        try
        {
            bool following = false;
            var poll = FirstPoll;
            var nextRead = DateTimeOffset.MinValue;
            while (true)
            {
                var now = DateTimeOffset.Now;
                if (now >= nextRead)
                {
                    foreach (var id in watch.Pending.ToList()) watch.Saw(await client.GetAsync(TaskPath(id), ct), DateTimeOffset.Now);
                    nextRead = DateTimeOffset.Now + (following ? SafetyRead : poll);
                    if (!following) poll = TimeSpan.FromMilliseconds(Math.Min(SlowestPoll.TotalMilliseconds, poll.TotalMilliseconds * 1.5));
                }
                show(DateTimeOffset.Now);
                if (watch.Done) return;

                var wait = new[] { nextRead - DateTimeOffset.Now, TimeSpan.FromSeconds(1) }.Min();
                if (wait > TimeSpan.Zero)
                {
                    using var timer = CancellationTokenSource.CreateLinkedTokenSource(ct);
                    timer.CancelAfter(wait);
                    try { await inbox.Reader.WaitToReadAsync(timer.Token); }
                    catch (OperationCanceledException) when (!ct.IsCancellationRequested) { }
                }
                while (inbox.Reader.TryRead(out var item))
                {
                    switch (item)
                    {
                        case FeedItem.Connected:
                            // Read everything again: an end may have come before the stream was open.
                            (following, nextRead) = (true, DateTimeOffset.MinValue);
                            break;
                        case FeedItem.Lost:
                            (following, poll) = (false, FirstPoll);
                            nextRead = DateTimeOffset.Now + poll;
                            break;
                        case FeedItem.Event e when watch.Apply(e.Topic, e.Body, DateTimeOffset.Now):
                            // Announced once stored: the read gives the end.
                            watch.Saw(await client.GetAsync(TaskPath(JsonRead.Str(e.Body, "id")!), ct), DateTimeOffset.Now);
                            break;
                    }
                }
            }
        }
        finally
        {
            stop.Cancel();
            try { await feed; } catch (OperationCanceledException) { }
        }
    }

    private static string TaskPath(string id) => $"api/v1/tasks/{Uri.EscapeDataString(id)}";

    /// <summary>The exit code `sparky wait` returns: the task's own, 1 if it failed without one, 130 if cancelled.</summary>
    public static int ExitCodeOf(JsonNode t) => (string?)t["state"] switch
    {
        "succeeded" => 0,
        "cancelled" => 130,
        _ => t["exit_code"] is { } e && (int)e != 0 ? (int)e : 1,
    };
}
