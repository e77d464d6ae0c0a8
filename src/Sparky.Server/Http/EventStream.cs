using System.Buffers;
using System.Diagnostics;
using System.Net.ServerSentEvents;
using System.Runtime.CompilerServices;
using System.Text.Json;
using Microsoft.AspNetCore.Http.Features;
using Sparky.Core.Events;
using Sparky.Server.Events;

namespace Sparky.Server.Http;

/// <summary>
/// <c>GET /api/v1/events</c>: every event of the <see cref="EventHub"/> as Server-Sent Events, <c>event: TOPIC</c> and
/// <c>data: {"v":1,"type","ts","body"}</c>, framed by the framework's own <see cref="SseFormatter"/> (what
/// <c>TypedResults.ServerSentEvents</c> writes with).
/// <para>Not <c>TypedResults.ServerSentEvents</c> itself: an <see cref="SseItem{T}"/> cannot be a comment, and the
/// stream needs two. One at once, so the headers reach the client before any event does (a client that waits for the
/// response before it submits would otherwise wait for ever); and one every 15 s while nothing happens, so proxies
/// and clients with a read timeout keep an idle stream open.</para>
/// </summary>
internal static class EventStream
{
    private static readonly TimeSpan KeepAliveEvery = TimeSpan.FromSeconds(15);
    /// <summary>A busy stream writes at most this often, what came in between in one write: each write is a wake-up and
    /// a system call per stream, and a hundred dashboards woken per event cost the daemon more than its tasks do. A
    /// quiet stream's first event still goes out at once.</summary>
    private static readonly TimeSpan WriteGap = TimeSpan.FromMilliseconds(20);
    private static readonly byte[] Opening = ": sparky events\n\n"u8.ToArray(), KeepAlive = ": keep-alive\n\n"u8.ToArray();

    public static IResult Of(EventHub hub) => new Result(hub);

    /// <summary>Each event's data, made once however many streams send it (a hundred dashboards would otherwise
    /// serialise every event a hundred times); dropped with the event.</summary>
    private static readonly ConditionalWeakTable<SparkyEvent, byte[]> Data = new();

    /// <summary>The SSE item of one event: the JSON the stream has always carried, <c>{"v":1,"type","ts","body"}</c>.</summary>
    internal static SseItem<byte[]> Item(SparkyEvent e) => new(Data.GetValue(e, Serialize), e.Topic);

    private static byte[] Serialize(SparkyEvent e)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WriteNumber("v", 1);
            w.WriteString("type", e.Topic);
            w.WriteNumber("ts", e.TsMs);
            w.WritePropertyName("body");
            e.Body.WriteTo(w);
            w.WriteEndObject();
        }
        return buffer.WrittenSpan.ToArray();
    }

    private static void Write(SseItem<byte[]> item, IBufferWriter<byte> to) => to.Write(item.Data);

    private sealed class Result(EventHub hub) : IResult
    {
        public async Task ExecuteAsync(HttpContext ctx)
        {
            var aborted = ctx.RequestAborted;
            ctx.Response.ContentType = "text/event-stream";
            ctx.Response.Headers.CacheControl = "no-cache";
            ctx.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
            using var sub = hub.Subscribe();
            var body = ctx.Response.Body;
            try
            {
                await body.WriteAsync(Opening, aborted);
                await body.FlushAsync(aborted);
                var batch = new List<SseItem<byte[]>>();
                long lastWrite = 0;
                using var framed = new MemoryStream();
                while (!aborted.IsCancellationRequested)
                {
                    using var keepAlive = CancellationTokenSource.CreateLinkedTokenSource(aborted);
                    keepAlive.CancelAfter(KeepAliveEvery);
                    bool any;
                    try { any = await sub.Reader.WaitToReadAsync(keepAlive.Token); }
                    catch (OperationCanceledException) when (!aborted.IsCancellationRequested)
                    {
                        await body.WriteAsync(KeepAlive, aborted);
                        await body.FlushAsync(aborted);
                        continue;
                    }
                    if (!any) break;
                    var since = Stopwatch.GetElapsedTime(lastWrite);
                    if (since < WriteGap) await Task.Delay(WriteGap - since, aborted);
                    // What has come since the last write goes out in one write and one flush (the formatter writes
                    // each item on its own, and each write to the response is a flush).
                    batch.Clear();
                    while (sub.Reader.TryRead(out var e)) batch.Add(Item(e));
                    framed.SetLength(0);
                    await SseFormatter.WriteAsync(batch.ToAsyncEnumerable(), framed, Write, aborted);
                    await body.WriteAsync(framed.GetBuffer().AsMemory(0, (int)framed.Length), aborted);
                    await body.FlushAsync(aborted);
                    lastWrite = Stopwatch.GetTimestamp();
                }
            }
            catch (OperationCanceledException) { }
        }
    }
}
