using System.Text;
using System.Text.Json;

namespace Sparky.Embeddings.Client.Input;

/// <summary>One text to embed: its id (as written to the ids file) and the input line it came from.</summary>
public readonly record struct InputRecord(long Line, string Id, string Text);

/// <summary>What one input line holds: a record, nothing (a blank line), or a reason it cannot be read.</summary>
public readonly record struct ParsedLine(InputRecord? Record, string? Error)
{
    public bool IsBlank => Record is null && Error is null;
    public static ParsedLine Blank => default;
    public static ParsedLine Bad(string error) => new(null, error);
}

/// <summary>
/// Reads one input line into a record. Pure: the line's bytes and number in, a value out. A line that cannot be read
/// (not UTF-8, not a JSON object, no text field, a text that is not a non-empty string, an id with a line break) is a
/// value with the reason; the caller stops or skips it. Blank lines hold nothing and are passed over in both formats.
/// </summary>
public static class LineParser
{
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    public static ParsedLine Parse(ReadOnlySpan<byte> line, long lineNumber, InputSpec spec)
    {
        if (line.Length > 0 && line[^1] == (byte)'\r') line = line[..^1];
        if (lineNumber == 1 && line.StartsWith("\uFEFF"u8)) line = line[3..]; // a byte-order mark
        if (line.Trim(" \t"u8).IsEmpty) return ParsedLine.Blank;
        return spec.Format == InputFormat.Text ? Text(line, lineNumber) : Json(line, lineNumber, spec);
    }

    private static ParsedLine Text(ReadOnlySpan<byte> line, long lineNumber)
    {
        string text;
        try { text = StrictUtf8.GetString(line); }
        catch (DecoderFallbackException) { return ParsedLine.Bad("not valid UTF-8"); }
        return new ParsedLine(new InputRecord(lineNumber, LineId(lineNumber), text), null);
    }

    private static ParsedLine Json(ReadOnlySpan<byte> line, long lineNumber, InputSpec spec)
    {
        JsonDocument doc;
        try { doc = JsonDocument.Parse(line.ToArray(), new JsonDocumentOptions { MaxDepth = 64 }); }
        catch (JsonException e) { return ParsedLine.Bad("not valid JSON: " + FirstSentence(e.Message)); }
        catch (ArgumentException) { return ParsedLine.Bad("not valid UTF-8"); }
        using (doc)
        {
            // A string of broken UTF-8 or with a lone surrogate (\ud800) parses, and throws when read.
            try { return FromObject(doc.RootElement, lineNumber, spec); }
            catch (InvalidOperationException) { return ParsedLine.Bad("a string in it is not valid UTF-8 or Unicode"); }
        }
    }

    private static ParsedLine FromObject(JsonElement root, long lineNumber, InputSpec spec)
    {
        if (root.ValueKind != JsonValueKind.Object) return ParsedLine.Bad($"not a JSON object (a {Kind(root)})");
        if (!root.TryGetProperty(spec.Field, out var field)) return ParsedLine.Bad($"no field '{spec.Field}'");
        if (field.ValueKind != JsonValueKind.String) return ParsedLine.Bad($"field '{spec.Field}' is a {Kind(field)}, not a string");
        var text = field.GetString()!;
        if (string.IsNullOrWhiteSpace(text)) return ParsedLine.Bad($"field '{spec.Field}' is empty");
        var id = LineId(lineNumber);
        if (spec.IdField is { } idField)
        {
            if (!root.TryGetProperty(idField, out var idValue)) return ParsedLine.Bad($"no field '{idField}'");
            if (idValue.ValueKind == JsonValueKind.String) id = idValue.GetString()!;
            else if (idValue.ValueKind == JsonValueKind.Number) id = idValue.GetRawText();
            else return ParsedLine.Bad($"field '{idField}' is a {Kind(idValue)}, not a string or a number");
            // The ids file has one id a line: an id must fit on one.
            if (id.Length == 0) return ParsedLine.Bad($"field '{idField}' is empty");
            if (id.AsSpan().IndexOfAny('\n', '\r') >= 0) return ParsedLine.Bad($"field '{idField}' holds a line break");
        }
        return new ParsedLine(new InputRecord(lineNumber, id, text), null);
    }

    /// <summary>The id of a record without an id field: its line number, 1-based.</summary>
    public static string LineId(long lineNumber) => lineNumber.ToString(System.Globalization.CultureInfo.InvariantCulture);

    private static string Kind(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.Array => "array", JsonValueKind.Object => "object", JsonValueKind.Number => "number",
        JsonValueKind.True or JsonValueKind.False => "boolean", JsonValueKind.Null => "null", _ => "string",
    };

    /// <summary>A JSON error without its position within the line (the line number is what the user needs).</summary>
    private static string FirstSentence(string message)
    {
        foreach (var tail in new[] { " Path:", " LineNumber:" })
            if (message.IndexOf(tail, StringComparison.Ordinal) is > 0 and var cut) message = message[..cut];
        return message.TrimEnd('.', ' ', '|');
    }
}
