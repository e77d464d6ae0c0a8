using System.Buffers;
using System.Text.Json.Nodes;
using MessagePack;

namespace Sparky.Server.Zmq;

/// <summary>The requests the command socket knows: clients' first, then workers' (see <c>docs/workers.md</c>).</summary>
public enum RequestType { Submit, Status, Cancel, List, Ping, Hello, Heartbeat, Credit, Finished, Draining, Bye }

/// <summary>
/// A request's envelope <c>{"v":1, "type", "corr", "ts", "body"}</c>, read in place: <see cref="Corr"/> and
/// <see cref="Body"/> are slices of the received frame, so nothing is copied until a request leaves the socket thread.
/// </summary>
/// <see cref="Auth"/> is the envelope's <c>auth</c> as sent (empty where absent): read only where keys are checked.
public readonly record struct Request(RequestType Type, ReadOnlyMemory<byte> Corr, ReadOnlyMemory<byte> Body, ReadOnlyMemory<byte> Auth = default);

/// <summary>The MessagePack envelope of SPEC §6: reading requests, writing replies and events.</summary>
public static class Wire
{
    public const int Version = Sparky.Workers.Protocol.WorkerWire.Version;
    public static readonly string[] TypeNames = ["submit", "status", "cancel", "list", "ping", "hello", "heartbeat", "credit", "finished", "draining", "bye"];
    private static readonly string[] OkNames = TypeNames.Select(t => t + ".ok").ToArray();

    /// <summary>Reads an envelope. On a problem, returns why; <paramref name="corr"/> is still the request's
    /// corr where it was read, so even the error reply can carry it.</summary>
    public static string? TryRead(ReadOnlyMemory<byte> frame, out Request request, out ReadOnlyMemory<byte> corr)
    {
        request = default;
        corr = default;
        try
        {
            var r = new MessagePackReader(frame);
            if (r.End || r.NextMessagePackType != MessagePackType.Map) return "the message is not a MessagePack map";
            int n = r.ReadMapHeader();
            int? version = null;
            RequestType? type = null;
            string? unknownType = null;
            ReadOnlyMemory<byte> body = default, auth = default;
            for (int i = 0; i < n; i++)
            {
                if (r.NextMessagePackType != MessagePackType.String) return "a key of the message's map is not a string";
                if (!r.TryReadStringSpan(out var key)) return "a key of the message's map is not a string";
                if (key.SequenceEqual("v"u8))
                {
                    if (r.NextMessagePackType != MessagePackType.Integer) { MsgPackJson.Skip(ref r); version = -1; continue; }
                    version = r.ReadInt64() == Version ? Version : -1;
                }
                else if (key.SequenceEqual("type"u8))
                {
                    if (r.NextMessagePackType != MessagePackType.String) return "type must be a string";
                    if (!r.TryReadStringSpan(out var t)) return "type must be a string";
                    type = TypeOf(t);
                    if (type is null) unknownType = MsgPackJson.Clip(System.Text.Encoding.UTF8.GetString(t));
                }
                else if (key.SequenceEqual("corr"u8))
                {
                    var kind = r.NextMessagePackType;
                    if (kind is not (MessagePackType.String or MessagePackType.Integer or MessagePackType.Nil))
                        return "corr must be a string or an integer";
                    var start = r.Position;
                    r.Skip();
                    corr = Slice(r.Sequence.Slice(start, r.Position));
                }
                else if (key.SequenceEqual("body"u8))
                {
                    var start = r.Position;
                    MsgPackJson.Skip(ref r);
                    body = Slice(r.Sequence.Slice(start, r.Position));
                }
                else if (key.SequenceEqual("auth"u8))
                {
                    var start = r.Position;
                    MsgPackJson.Skip(ref r);
                    auth = Slice(r.Sequence.Slice(start, r.Position));
                }
                else MsgPackJson.Skip(ref r); // ts, and fields a later version may add
            }
            if (!r.End) return "extra bytes after the message's map";
            if (version != Version) return version is null ? "v is missing: this daemon speaks v 1" : "unsupported v: this daemon speaks v 1";
            if (unknownType is not null) return $"unknown type '{unknownType}' (known: {string.Join(", ", TypeNames)})";
            if (type is null) return "type is missing";
            request = new Request(type.Value, corr, body, auth);
            return null;
        }
        catch (MsgPackJsonException e)
        {
            return e.Message;
        }
        catch (Exception e) when (e is MessagePackSerializationException or EndOfStreamException or OverflowException or InvalidOperationException or ArgumentException)
        {
            return "the message is not valid MessagePack";
        }
    }

    private static RequestType? TypeOf(ReadOnlySpan<byte> t) =>
        t.SequenceEqual("submit"u8) ? RequestType.Submit
        : t.SequenceEqual("status"u8) ? RequestType.Status
        : t.SequenceEqual("cancel"u8) ? RequestType.Cancel
        : t.SequenceEqual("list"u8) ? RequestType.List
        : t.SequenceEqual("ping"u8) ? RequestType.Ping
        : t.SequenceEqual("hello"u8) ? RequestType.Hello
        : t.SequenceEqual("heartbeat"u8) ? RequestType.Heartbeat
        : t.SequenceEqual("credit"u8) ? RequestType.Credit
        : t.SequenceEqual("finished"u8) ? RequestType.Finished
        : t.SequenceEqual("draining"u8) ? RequestType.Draining
        : t.SequenceEqual("bye"u8) ? RequestType.Bye
        : null;

    /// <summary>An envelope's <c>auth</c>: <c>{"key": public key (Z85), "proof": hex}</c> (see <see cref="ZmqAuth"/>); nulls where it is not that.</summary>
    public static (string? Key, string? Proof) ReadAuth(ReadOnlyMemory<byte> auth)
    {
        if (auth.IsEmpty) return (null, null);
        try
        {
            var r = new MessagePackReader(auth);
            if (r.NextMessagePackType != MessagePackType.Map) return (null, null);
            int n = r.ReadMapHeader();
            string? key = null, proof = null;
            for (int i = 0; i < n && i < 8; i++)
            {
                if (r.NextMessagePackType != MessagePackType.String) return (null, null);
                var k = r.ReadString();
                if (r.NextMessagePackType != MessagePackType.String) { r.Skip(); continue; }
                var v = r.ReadString();
                if (v is null || v.Length > 128) return (null, null);
                if (k == "key") key = v;
                else if (k == "proof") proof = v;
            }
            return (key, proof);
        }
        catch (Exception e) when (e is MessagePackSerializationException or EndOfStreamException or InvalidOperationException) { return (null, null); }
    }

    /// <summary>Whether a request comes from a worker, and so goes to the engine's loop.</summary>
    public static bool IsWorkerType(RequestType t) => t >= RequestType.Hello;

    /// <summary>The reader runs over one contiguous frame, so a slice of its sequence is one piece of memory.</summary>
    private static ReadOnlyMemory<byte> Slice(ReadOnlySequence<byte> part) => part.First;

    /// <summary>A request's body as JSON, as the HTTP API would have parsed it; null when absent.</summary>
    public static JsonNode? ReadBody(ReadOnlyMemory<byte> body)
    {
        if (body.IsEmpty) return null;
        var r = new MessagePackReader(body);
        return MsgPackJson.Read(ref r);
    }

    public static void WriteOk(IBufferWriter<byte> buffer, RequestType type, ReadOnlySpan<byte> corr, JsonNode? body)
    {
        var w = Head(buffer, OkNames[(int)type], corr);
        MsgPackJson.Write(ref w, body);
        w.Flush();
    }

    /// <summary>An error reply: <c>{"status": &lt;HTTP-like code&gt;, "detail": "…"}</c>.</summary>
    public static void WriteError(IBufferWriter<byte> buffer, ReadOnlySpan<byte> corr, int status, string detail)
    {
        var w = Head(buffer, "error", corr);
        w.WriteMapHeader(2);
        w.Write("status");
        w.Write(status);
        w.Write("detail");
        w.Write(detail);
        w.Flush();
    }

    /// <summary>The pong: the daemon's clock, in unix ms.</summary>
    /// <param name="eventsKey">The event socket's public key, for an authenticated client (docs/security.md); null: not sent.</param>
    public static void WritePong(IBufferWriter<byte> buffer, ReadOnlySpan<byte> corr, string? eventsKey = null)
    {
        var w = Head(buffer, OkNames[(int)RequestType.Ping], corr, out long now);
        w.WriteMapHeader(eventsKey is null ? 2 : 3);
        w.Write("pong");
        w.Write(true);
        w.Write("time_ms");
        w.Write(now);
        if (eventsKey is not null)
        {
            w.Write("events_key");
            w.Write(eventsKey);
        }
        w.Flush();
    }

    /// <summary>An event's body frame: <c>{"v":1, "type": topic, "ts", "body"}</c>, as SSE sends it.</summary>
    public static void WriteEvent(IBufferWriter<byte> buffer, string topic, long ts, JsonNode body)
    {
        var w = new MessagePackWriter(buffer);
        w.WriteMapHeader(4);
        w.Write("v");
        w.Write(Version);
        w.Write("type");
        w.Write(topic);
        w.Write("ts");
        w.Write(ts);
        w.Write("body");
        MsgPackJson.Write(ref w, body);
        w.Flush();
    }

    private static MessagePackWriter Head(IBufferWriter<byte> buffer, string type, ReadOnlySpan<byte> corr) => Head(buffer, type, corr, out _);

    /// <summary>The envelope up to its <c>body</c> key, as the worker protocol writes it; the body follows.</summary>
    private static MessagePackWriter Head(IBufferWriter<byte> buffer, string type, ReadOnlySpan<byte> corr, out long now)
    {
        now = Sparky.Workers.Protocol.WorkerWire.WriteHead(buffer, type, corr);
        return new MessagePackWriter(buffer);
    }
}
