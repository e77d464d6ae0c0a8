using Microsoft.AspNetCore.Http;
using Sparky.Core.Tasks;
using Sparky.Server.Daemon;

namespace Sparky.Server.Http;

/// <summary>Sends a task's output; with follow, keeps sending as it grows, across retries, until the task ends.
/// Followers of one log share one poller (<see cref="LogFeeds"/>), which wakes them when something changed.</summary>
internal static class LogStreamer
{
    public static async Task StreamAsync(HttpContext ctx, SparkyDaemon d, TaskId id, bool stderr, bool follow, int? attemptWanted, long? tail = null)
    {
        ctx.Response.ContentType = "text/plain; charset=utf-8";
        var ct = ctx.RequestAborted;
        using var feed = follow ? d.LogFeeds.Join(id, stderr) : null;
        var task = feed?.Snapshot ?? d.Store.Get(id)!;
        int n = attemptWanted ?? Math.Max(1, task.Attempts);
        long offset = 0;
        var buffer = new byte[65536];
        try
        {
            while (!ct.IsCancellationRequested)
            {
                var changed = feed?.Changed;
                var path = d.Engine.LogPath(id, n, stderr);
                if (File.Exists(path))
                {
                    await using var f = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
                    // The tail is of the first file read; a later attempt's log is read from its start.
                    if (tail is { } last) { offset = Math.Max(0, f.Length - last); tail = null; }
                    f.Seek(offset, SeekOrigin.Begin);
                    int read;
                    while ((read = await f.ReadAsync(buffer, ct)) > 0)
                    {
                        await ctx.Response.Body.WriteAsync(buffer.AsMemory(0, read), ct);
                        offset += read;
                    }
                    await ctx.Response.Body.FlushAsync(ct);
                }
                if (feed is null) return;
                task = feed.Snapshot ?? task;
                var attempt = task.AttemptList.FirstOrDefault(a => a.N == n);
                // A finished task with no such attempt (cancelled while queued, a failed dependency, an
                // attempt number that never ran) has nothing more to show.
                if (attempt is null && task.State.IsTerminal()) return;
                bool attemptOver = attempt?.EndedAt is not null || task.Attempts > n;
                if (attemptOver)
                {
                    // Drain what the attempt wrote after our previous read before moving on or ending.
                    if (File.Exists(path) && new FileInfo(path).Length > offset) continue;
                    if (attemptWanted is null && task.Attempts > n) { n++; offset = 0; continue; }
                    if (task.State.IsTerminal() || attemptWanted is not null) return;
                }
                if (feed.Stopped) return;
                await changed!.WaitAsync(ct);
            }
        }
        catch (OperationCanceledException) { }
    }
}
