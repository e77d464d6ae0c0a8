using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Sparky.Core.Tasks;

/// <summary>
/// How far a task says it is: the last <c>__SPARKY_PROGRESS__:{"done", "total", "message"}</c> line of its stdout
/// (SPEC §3), any of the three given. A task's output is not trusted: a line that is not exactly that (not JSON, not an
/// object, a number that is not finite, negative, a <c>total</c> of 0, past <see cref="MaxNumber"/>, a field of the
/// wrong type, none of the three fields, a line over <see cref="MaxLineBytes"/>) is not progress and is ignored. A
/// message keeps its text but loses control characters and is cut to <see cref="MaxMessageChars"/>; it is never markup.
/// </summary>
public sealed record TaskProgress(double? Done, double? Total, string? Message)
{
    public const string Marker = "__SPARKY_PROGRESS__:";
    /// <summary>A longer line (the marker included) is not read: progress is a short line, and a task's output is not trusted.</summary>
    public const int MaxLineBytes = 4096;
    public const int MaxMessageChars = 200;
    /// <summary>Counts past this (10^15, below 2^53) are not counts: the line is ignored.</summary>
    public const double MaxNumber = 1e15;

    internal static readonly byte[] MarkerBytes = Encoding.ASCII.GetBytes(Marker);

    /// <summary>done / total, within 0..1, where both are given.</summary>
    public double? Fraction => Done is { } d && Total is { } t ? Math.Clamp(d / t, 0, 1) : null;

    /// <summary>The progress of one stdout line (its <c>\n</c> left out; a <c>\r</c> before it is allowed), or null when
    /// it is not a progress line.</summary>
    public static TaskProgress? ParseLine(ReadOnlySpan<byte> line)
    {
        if (line.Length > MaxLineBytes || !line.StartsWith(MarkerBytes)) return null;
        var json = line[MarkerBytes.Length..];
        if (json.Length > 0 && json[^1] == (byte)'\r') json = json[..^1];
        try { return ParseObject(json); }
        // Broken UTF-8 or a lone surrogate in a string, or broken JSON: not progress.
        catch (Exception e) when (e is JsonException or InvalidOperationException or ArgumentException) { return null; }
    }

    /// <inheritdoc cref="ParseLine(ReadOnlySpan{byte})"/>
    public static TaskProgress? ParseLine(string line) => ParseLine(Encoding.UTF8.GetBytes(line));

    private static TaskProgress? ParseObject(ReadOnlySpan<byte> json)
    {
        var reader = new Utf8JsonReader(json, new JsonReaderOptions { MaxDepth = 64 });
        if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject) return null;
        double? done = null, total = null;
        string? message = null;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            string name = reader.GetString()!;
            reader.Read();
            if (reader.TokenType == JsonTokenType.Null) continue; // as if not given
            switch (name)
            {
                case "done":
                    if (Count(ref reader) is not { } d) return null;
                    done = d;
                    break;
                case "total":
                    if (Count(ref reader) is not ({ } t and > 0)) return null;
                    total = t;
                    break;
                case "message":
                    if (reader.TokenType != JsonTokenType.String) return null;
                    message = Clean(reader.GetString()!);
                    break;
                default:
                    reader.Skip(); // other fields are allowed and ignored
                    break;
            }
        }
        // The object must end the line: nothing after it but white space.
        if (reader.TokenType != JsonTokenType.EndObject || reader.CurrentDepth != 0 || reader.Read()) return null;
        if (message is { Length: 0 }) message = null;
        return done is null && total is null && message is null ? null : new TaskProgress(done, total, message);
    }

    private static double? Count(ref Utf8JsonReader reader) =>
        reader.TokenType == JsonTokenType.Number && reader.TryGetDouble(out var v) && double.IsFinite(v) && v is >= 0 and <= MaxNumber ? v : null;

    /// <summary>A message as it is kept and shown: line breaks and tabs made spaces, other control characters and
    /// direction overrides dropped (so it cannot move a terminal's cursor or reorder what follows it), trimmed, and cut
    /// to <see cref="MaxMessageChars"/> (an ellipsis says so), never within a surrogate pair.</summary>
    public static string Clean(string text)
    {
        var sb = new StringBuilder(Math.Min(text.Length, MaxMessageChars + 1));
        foreach (char c in text)
        {
            if (sb.Length > MaxMessageChars) break;
            if (sb.Length == 0 && char.IsWhiteSpace(c)) continue; // leading white space does not use up the bound
            if (c is '\n' or '\r' or '\t') sb.Append(' ');
            else if (char.IsControl(c) || IsDirectionControl(c)) continue;
            else sb.Append(c);
        }
        var s = sb.ToString().Trim();
        if (s.Length <= MaxMessageChars) return s;
        int cut = MaxMessageChars - 1;
        if (char.IsHighSurrogate(s[cut - 1])) cut--;
        return s[..cut] + "…";
    }

    private static bool IsDirectionControl(char c) => c is '\u200E' or '\u200F' or (>= '\u202A' and <= '\u202E') or (>= '\u2066' and <= '\u2069');

    /// <summary>The object every task's JSON and <c>task.progress</c> carry: <c>{"done", "total", "message",
    /// "updated_at"}</c>, each field there only when given.</summary>
    public JsonObject ToJson(DateTimeOffset updatedAt)
    {
        var o = new JsonObject();
        if (Done is { } d) o["done"] = Number(d);
        if (Total is { } t) o["total"] = Number(t);
        if (Message is { } m) o["message"] = m;
        o["updated_at"] = updatedAt.ToUniversalTime().ToString("O", CultureInfo.InvariantCulture);
        return o;
    }

    /// <summary>A whole count as an integer (<c>5</c>, not <c>5.0</c>), a fraction as it is.</summary>
    private static JsonNode Number(double v) => v == Math.Floor(v) ? JsonValue.Create((long)v) : JsonValue.Create(v);
}
