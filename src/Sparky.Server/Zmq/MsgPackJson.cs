using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using MessagePack;

namespace Sparky.Server.Zmq;

/// <summary>A MessagePack value that cannot become the JSON the HTTP API would have taken.</summary>
public sealed class MsgPackJsonException(string message) : Exception(message);

/// <summary>
/// MessagePack ⇄ JsonNode, so a ZeroMQ request runs through the very code an HTTP request does, and
/// the same checks hold: maps keyed by strings, no duplicate keys, valid UTF-8, nesting within 64.
/// </summary>
public static class MsgPackJson
{
    public const int MaxDepth = Sparky.Core.Tasks.InputLimits.MaxDepth;

    /// <summary>Reads one value. Throws <see cref="MsgPackJsonException"/> with a reason for anything JSON can't hold,
    /// or MessagePack's own exceptions for bytes that are not MessagePack.</summary>
    public static JsonNode? Read(ref MessagePackReader r, int depth = 0)
    {
        if (depth > MaxDepth) throw new MsgPackJsonException($"nesting deeper than {MaxDepth}");
        switch (r.NextMessagePackType)
        {
            case MessagePackType.Nil:
                r.ReadNil();
                return null;
            case MessagePackType.Boolean:
                return JsonValue.Create(r.ReadBoolean());
            case MessagePackType.Integer:
                if (r.NextCode == MessagePackCode.UInt64)
                {
                    ulong u = r.ReadUInt64();
                    return u <= long.MaxValue ? JsonValue.Create((long)u) : JsonValue.Create(u);
                }
                return JsonValue.Create(r.ReadInt64());
            case MessagePackType.Float:
                double f = r.ReadDouble();
                if (!double.IsFinite(f)) throw new MsgPackJsonException("a number is NaN or infinite");
                return JsonValue.Create(f);
            case MessagePackType.String:
                return JsonValue.Create(ReadText(ref r));
            case MessagePackType.Array:
            {
                int n = r.ReadArrayHeader(); // MessagePack checks n against the bytes left: no allocation bomb
                var a = new JsonArray();
                for (int i = 0; i < n; i++) a.Add(Read(ref r, depth + 1));
                return a;
            }
            case MessagePackType.Map:
            {
                int n = r.ReadMapHeader();
                var o = new JsonObject();
                for (int i = 0; i < n; i++)
                {
                    if (r.NextMessagePackType != MessagePackType.String) throw new MsgPackJsonException("a map key is not a string");
                    var key = ReadText(ref r);
                    if (o.ContainsKey(key)) throw new MsgPackJsonException($"duplicate key '{Clip(key)}'");
                    o[key] = Read(ref r, depth + 1);
                }
                return o;
            }
            case MessagePackType.Binary:
                throw new MsgPackJsonException("binary values are not accepted: send text");
            default:
                throw new MsgPackJsonException("extension types are not accepted");
        }
    }

    /// <summary>Walks one value with the checks <see cref="Read"/> makes, building nothing: a worker's message is read
    /// into its typed record after these, so it meets the same rules as every other request.</summary>
    public static void Check(ref MessagePackReader r, int depth = 0)
    {
        if (depth > MaxDepth) throw new MsgPackJsonException($"nesting deeper than {MaxDepth}");
        switch (r.NextMessagePackType)
        {
            case MessagePackType.Float:
                if (!double.IsFinite(r.ReadDouble())) throw new MsgPackJsonException("a number is NaN or infinite");
                break;
            case MessagePackType.String:
                if (!r.TryReadStringSpan(out var span)) ReadText(ref r);
                else if (!System.Text.Unicode.Utf8.IsValid(span)) throw new MsgPackJsonException("a string is not valid UTF-8");
                break;
            case MessagePackType.Array:
                for (int i = r.ReadArrayHeader(); i > 0; i--) Check(ref r, depth + 1);
                break;
            case MessagePackType.Map:
            {
                int n = r.ReadMapHeader();
                var keys = n > 1 ? new HashSet<string>(StringComparer.Ordinal) : null;
                for (int i = 0; i < n; i++)
                {
                    if (r.NextMessagePackType != MessagePackType.String) throw new MsgPackJsonException("a map key is not a string");
                    var key = ReadText(ref r);
                    if (keys?.Add(key) == false) throw new MsgPackJsonException($"duplicate key '{Clip(key)}'");
                    Check(ref r, depth + 1);
                }
                break;
            }
            case MessagePackType.Binary:
                throw new MsgPackJsonException("binary values are not accepted: send text");
            case MessagePackType.Extension:
                throw new MsgPackJsonException("extension types are not accepted");
            default:
                r.Skip(); // nil, a boolean, an integer
                break;
        }
    }

    /// <summary>Skips one value without building it, within the same depth bound (MessagePack's own Skip recurses unbounded).</summary>
    public static void Skip(ref MessagePackReader r, int depth = 0)
    {
        if (depth > MaxDepth) throw new MsgPackJsonException($"nesting deeper than {MaxDepth}");
        switch (r.NextMessagePackType)
        {
            case MessagePackType.Array:
                for (int i = r.ReadArrayHeader(); i > 0; i--) Skip(ref r, depth + 1);
                break;
            case MessagePackType.Map:
                for (int i = r.ReadMapHeader(); i > 0; i--) { Skip(ref r, depth + 1); Skip(ref r, depth + 1); }
                break;
            default:
                r.Skip(); // a scalar: no recursion
                break;
        }
    }

    /// <summary>A string, refused unless it is valid UTF-8 (as the HTTP API refuses such JSON).</summary>
    public static string ReadText(ref MessagePackReader r)
    {
        if (r.TryReadStringSpan(out var span))
        {
            if (!System.Text.Unicode.Utf8.IsValid(span)) throw new MsgPackJsonException("a string is not valid UTF-8");
            return Encoding.UTF8.GetString(span);
        }
        var seq = r.ReadStringSequence() ?? throw new MsgPackJsonException("a string is nil");
        var bytes = System.Buffers.BuffersExtensions.ToArray(seq);
        if (!System.Text.Unicode.Utf8.IsValid(bytes)) throw new MsgPackJsonException("a string is not valid UTF-8");
        return Encoding.UTF8.GetString(bytes);
    }

    public static void Write(ref MessagePackWriter w, JsonNode? node)
    {
        switch (node)
        {
            case null:
                w.WriteNil();
                break;
            case JsonObject o:
                w.WriteMapHeader(o.Count);
                foreach (var (k, v) in o)
                {
                    w.Write(k);
                    Write(ref w, v);
                }
                break;
            case JsonArray a:
                w.WriteArrayHeader(a.Count);
                foreach (var item in a) Write(ref w, item);
                break;
            case JsonValue v:
                WriteValue(ref w, v);
                break;
        }
    }

    private static void WriteValue(ref MessagePackWriter w, JsonValue v)
    {
        switch (v.GetValueKind())
        {
            // A string, or a value that JSON writes as one (a DateTimeOffset, a Guid): as its JSON text says.
            case JsonValueKind.String: w.Write(v.TryGetValue(out string? s) ? s : JsonDocument.Parse(v.ToJsonString()).RootElement.GetString()); break;
            case JsonValueKind.True: w.Write(true); break;
            case JsonValueKind.False: w.Write(false); break;
            case JsonValueKind.Null: w.WriteNil(); break;
            case JsonValueKind.Number:
                // Integers stay integers; anything else is a double.
                if (v.TryGetValue(out long l)) w.Write(l);
                else if (v.TryGetValue(out int i)) w.Write(i);
                else if (v.TryGetValue(out ulong u)) w.Write(u);
                else if (v.TryGetValue(out double d)) w.Write(d);
                else if (v.TryGetValue(out JsonElement e)) WriteNumber(ref w, e);
                else w.Write(Convert.ToDouble(v.GetValue<object>(), System.Globalization.CultureInfo.InvariantCulture));
                break;
            default: w.WriteNil(); break;
        }
    }

    /// <summary>A number parsed from JSON text (results, unknown fields kept as they came).</summary>
    private static void WriteNumber(ref MessagePackWriter w, JsonElement e)
    {
        if (e.TryGetInt64(out var l)) w.Write(l);
        else if (e.TryGetUInt64(out var u)) w.Write(u);
        else if (e.TryGetDouble(out var d)) w.Write(d);
        else w.Write(e.GetRawText()); // beyond a double (1e400): kept as its text rather than lost
    }

    internal static string Clip(string s) => s.Length <= 60 ? s : s[..60] + "…";
}
