using System.Buffers;
using System.Security.Cryptography;
using Nerdbank.MessagePack;
using PolyType;
using PolyType.Abstractions;

namespace Sparky.Workers.Protocol;

/// <summary>A message as a worker reads it: its type, its corr where it is an integer (a worker's own are), its body.</summary>
public readonly record struct Incoming(string Type, long? Corr, ReadOnlyMemory<byte> Body);

/// <summary>
/// The envelope <c>{"v": 1, "type", "corr", "ts", "body"}</c> (SPEC §6, docs/workers.md) around the typed messages:
/// writing any of them, reading one, and saying clearly why a body is not the message it claims to be.
/// </summary>
public static class WorkerWire
{
    public const int Version = 1;

    /// <summary>Defaults and nulls are left out unless a record says a key is <c>required</c>; a missing key is
    /// left null when read (the records' own checks say what is missing).</summary>
    private static readonly MessagePackSerializer Serializer = new()
    {
        SerializeDefaultValues = SerializeDefaultValuesPolicy.Required,
        DeserializeDefaultValues = DeserializeDefaultValuesPolicy.AllowMissingValuesForRequiredProperties,
    };

    /// <summary>Writes a whole message; <paramref name="corr"/> is the raw MessagePack of the corr (empty: nil).</summary>
    public static void Write<T>(IBufferWriter<byte> buffer, ReadOnlySpan<byte> corr, T body, (string Key, string Proof)? auth = null)
        where T : IMessage<T>, IShapeable<T>
    {
        var w = new MessagePackWriter(buffer);
        WriteHead(ref w, T.Type, corr, auth);
        Serializer.Serialize(ref w, body);
        w.Flush();
    }

    /// <summary>A message with no body (nil): <c>draining.ok</c>.</summary>
    public static void WriteEmpty(IBufferWriter<byte> buffer, string type, ReadOnlySpan<byte> corr)
    {
        var w = new MessagePackWriter(buffer);
        WriteHead(ref w, type, corr, null);
        w.WriteNil();
        w.Flush();
    }

    /// <summary>Writes the envelope up to the key <c>body</c>, whose value the caller writes next; returns its <c>ts</c>.
    /// The daemon's replies to clients share it (their bodies are JSON, written by the daemon's own MessagePack writer).</summary>
    public static long WriteHead(IBufferWriter<byte> buffer, string type, ReadOnlySpan<byte> corr, (string Key, string Proof)? auth = null)
    {
        var w = new MessagePackWriter(buffer);
        long now = WriteHead(ref w, type, corr, auth);
        w.Flush();
        return now;
    }

    private static long WriteHead(ref MessagePackWriter w, string type, ReadOnlySpan<byte> corr, (string Key, string Proof)? auth)
    {
        long now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        w.WriteMapHeader(auth is null ? 5 : 6);
        if (auth is { } a)
        {
            w.Write("auth");
            w.WriteMapHeader(2);
            w.Write("key");
            w.Write(a.Key);
            w.Write("proof");
            w.Write(a.Proof);
        }
        w.Write("v");
        w.Write(Version);
        w.Write("type");
        w.Write(type);
        w.Write("corr");
        if (corr.IsEmpty) w.WriteNil();
        else w.WriteRaw(corr); // echoed byte for byte: a peer's corr comes back as the type it sent
        w.Write("ts");
        w.Write(now);
        w.Write("body");
        return now;
    }

    /// <summary>A corr as MessagePack: what a worker numbers its messages with.</summary>
    public static byte[] Corr(long n)
    {
        var buffer = new ArrayBufferWriter<byte>(9);
        var w = new MessagePackWriter(buffer);
        w.Write(n);
        w.Flush();
        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>Reads an envelope leniently (a worker trusts its daemon's framing, and skips what it cannot read).</summary>
    public static bool TryRead(ReadOnlyMemory<byte> frame, out Incoming message)
    {
        message = default;
        try
        {
            var r = new MessagePackReader(frame);
            if (r.NextMessagePackType != MessagePackType.Map) return false;
            int n = r.ReadMapHeader();
            string? type = null;
            long? corr = null;
            ReadOnlyMemory<byte> body = default;
            for (int i = 0; i < n; i++)
            {
                var key = r.NextMessagePackType == MessagePackType.String ? r.ReadString() : null;
                if (key == "type" && r.NextMessagePackType == MessagePackType.String) type = r.ReadString();
                else if (key == "corr" && r.NextMessagePackType == MessagePackType.Integer) corr = r.ReadInt64();
                else if (key == "body")
                {
                    var start = r.Position;
                    r.Skip(Serializer.StartingContext);
                    body = frame.Slice((int)r.Sequence.Slice(0, start).Length, (int)r.Sequence.Slice(start, r.Position).Length);
                }
                else r.Skip(Serializer.StartingContext);
            }
            if (type is null) return false;
            message = new Incoming(type, corr, body);
            return true;
        }
        catch (Exception e) when (e is MessagePackSerializationException or EndOfStreamException or OverflowException or InvalidOperationException)
        {
            return false;
        }
    }

    /// <summary>Reads a body as <typeparamref name="T"/>: null and the message (null where the body is nil or absent),
    /// or why it is not one, naming the key and what it must be (<c>slots must be an integer</c>).</summary>
    public static string? TryRead<T>(ReadOnlyMemory<byte> body, out T? message) where T : IShapeable<T>
    {
        message = default;
        if (body.IsEmpty) return null;
        try
        {
            message = Serializer.Deserialize<T>(body);
            return null;
        }
        catch (Exception e) when (e is MessagePackSerializationException or EndOfStreamException or OverflowException or InvalidOperationException)
        {
            return Explain<T>(body);
        }
    }

    /// <summary>A message from a worker, by its envelope's type: what the daemon's command socket hands its engine.</summary>
    public static string? TryReadFromWorker(string type, ReadOnlyMemory<byte> body, out IFromWorker? message)
    {
        string? problem;
        (problem, message) = type switch
        {
            "hello" => Read<Hello>(body),
            "heartbeat" => Read<Heartbeat>(body),
            "credit" => Read<Credit>(body),
            "finished" => Read<Finished>(body),
            "draining" => Read<Draining>(body),
            "bye" => Read<Bye>(body),
            _ => ($"'{type}' is not a message a worker sends", null),
        };
        return problem;

        static (string?, IFromWorker?) Read<T>(ReadOnlyMemory<byte> body) where T : class, IFromWorker, IShapeable<T> =>
            (TryRead<T>(body, out var m), m);
    }

    /// <summary>Why <paramref name="body"/> did not read as <typeparamref name="T"/>: the first key whose value does not
    /// read alone (each is tried as a one-key map), and what the record says that key holds.</summary>
    private static string Explain<T>(ReadOnlyMemory<byte> body) where T : IShapeable<T>
    {
        try
        {
            var r = new MessagePackReader(body);
            if (r.NextMessagePackType != MessagePackType.Map) return "the body must be a map";
            int n = r.ReadMapHeader();
            var one = new ArrayBufferWriter<byte>();
            for (int i = 0; i < n; i++)
            {
                var start = r.Position;
                if (r.NextMessagePackType != MessagePackType.String) return "a key of the body is not a string";
                var key = r.ReadString()!;
                var kind = r.NextMessagePackType;
                r.Skip(Serializer.StartingContext);
                one.ResetWrittenCount();
                var w = new MessagePackWriter(one);
                w.WriteMapHeader(1);
                w.WriteRaw(r.Sequence.Slice(start, r.Position));
                w.Flush();
                try { Serializer.Deserialize<T>(one.WrittenMemory); }
                catch (Exception e) when (e is MessagePackSerializationException or OverflowException or InvalidOperationException)
                {
                    var property = ((IObjectTypeShape)T.GetTypeShape()).Properties.FirstOrDefault(p => p.Name == key);
                    if (property is null) return $"{key} cannot be read";
                    var expected = Describe(property.PropertyType);
                    return kind == MessagePackType.Integer && expected == "an integer" ? $"{key} is out of range" : $"{key} must be {expected}";
                }
            }
        }
        catch (Exception e) when (e is MessagePackSerializationException or EndOfStreamException or InvalidOperationException) { }
        return "the body is not valid MessagePack";
    }

    private static string Describe(ITypeShape shape) => shape switch
    {
        IOptionalTypeShape o => Describe(o.ElementType),
        IDictionaryTypeShape => "a map",
        IEnumerableTypeShape e => "a list of " + Plural(e.ElementType is IOptionalTypeShape o ? o.ElementType : e.ElementType),
        _ when shape.Type == typeof(string) => "a string",
        _ when shape.Type == typeof(bool) => "true or false",
        _ when shape.Type == typeof(double) || shape.Type == typeof(float) => "a number",
        IObjectTypeShape o when o.Properties.Count > 0 => "a map " + Fields(o),
        _ => "an integer",
    };

    /// <summary>A list's items: <c>strings</c>, <c>{id, attempt}</c>.</summary>
    private static string Plural(ITypeShape item) =>
        item is IObjectTypeShape o && o.Properties.Count > 0 && item.Type != typeof(string) ? Fields(o) : Describe(item).Split(' ', 2)[1] + "s";

    private static string Fields(IObjectTypeShape o) => "{" + string.Join(", ", o.Properties.Select(p => p.Name)) + "}";

    /// <summary>The proof a peer sends in its envelope's <c>auth</c> (docs/security.md): hex HMAC-SHA256 of a fixed label
    /// under the X25519 secret it shares with the daemon (which each side computes with its CURVE keys).</summary>
    public static string Proof(ReadOnlySpan<byte> sharedSecret) =>
        Convert.ToHexStringLower(HMACSHA256.HashData(sharedSecret, "sparky-zmq-auth-v1"u8));
}
