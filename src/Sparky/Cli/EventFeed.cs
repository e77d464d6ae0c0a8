using System.Net.ServerSentEvents;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Sparky.Cli;

/// <summary>What the daemon's event stream tells a follower.</summary>
internal abstract record FeedItem
{
    /// <summary>The stream is open (again): events from here on arrive; what happened before must be read afresh.</summary>
    public sealed record Connected : FeedItem;

    /// <summary>The stream broke or could not be opened; the feed tries again by itself.</summary>
    public sealed record Lost(string Why) : FeedItem;

    /// <summary>One event: its topic (<c>task.started</c>…), the daemon's time of it (unix ms) and its body.</summary>
    public sealed record Event(string Topic, long TsMs, JsonObject Body) : FeedItem;
}

/// <summary>
/// Follows <c>GET /api/v1/events</c> (Server-Sent Events) for a client verb, reconnecting with a backoff (0.5 s
/// doubling to 5 s) whenever the stream breaks, as when the daemon restarts.
/// </summary>
internal static class EventFeed
{
    private static readonly TimeSpan FirstRetry = TimeSpan.FromMilliseconds(500), LastRetry = TimeSpan.FromSeconds(5);

    /// <param name="wanted">The topics to parse; the rest are skipped unread (a busy daemon sends thousands a second).</param>
    /// <param name="post">Called with each item, on the feed's own task.</param>
    public static async Task RunAsync(DaemonClient client, Func<string, bool> wanted, Action<FeedItem> post, CancellationToken ct)
    {
        var retry = FirstRetry;
        while (!ct.IsCancellationRequested)
        {
            string why;
            try
            {
                await using var stream = await client.StreamAsync("api/v1/events", ct);
                post(new FeedItem.Connected());
                retry = FirstRetry;
                var parser = SseParser.Create(stream, (type, data) => wanted(type) ? Parse(type, data) : null);
                await foreach (var item in parser.EnumerateAsync(ct))
                    if (item.Data is { } e) post(e);
                why = "the daemon closed the event stream";
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested) { return; }
            catch (CliException e) { why = e.Message; }
            catch (Exception e) when (e is IOException or HttpRequestException) { why = e.Message; }
            post(new FeedItem.Lost(why));
            try { await Task.Delay(retry, ct); }
            catch (OperationCanceledException) { return; }
            retry = TimeSpan.FromTicks(Math.Min(retry.Ticks * 2, LastRetry.Ticks));
        }
    }

    /// <summary>An event's data, <c>{"v":1,"type","ts","body"}</c>; null for one that is not of that shape.</summary>
    private static FeedItem.Event? Parse(string type, ReadOnlySpan<byte> data)
    {
        try
        {
            if (JsonNode.Parse(data) is not JsonObject o || o["body"] is not JsonObject body) return null;
            long ts = o["ts"] is JsonValue v && v.TryGetValue<long>(out var t) ? t : 0;
            o.Remove("body");
            return new FeedItem.Event(type, ts, body);
        }
        catch (JsonException) { return null; }
    }
}
