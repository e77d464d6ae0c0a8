using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Sparky.Execution.Slurm;

/// <summary>
/// A batch script template (<c>&lt;class&gt;_sbatch_template</c>) filled from a task's payload. Pure: no I/O.
/// </summary>
/// <remarks>
/// Placeholders are <c>{{payload.FIELD}}</c> (nested: <c>{{payload.a.b}}</c>; the whole payload: <c>{{payload}}</c>), each
/// with an optional default after a bar, <c>{{payload.model|gpt2}}</c>, used when the field is missing; and
/// <c>{{task_id}}</c>. A value is a string, a number (its JSON text) or a boolean (<c>true</c>/<c>false</c>), and may hold
/// only letters, digits and <c>. _ - + / : = , @ %</c>: no space, newline, quote or anything else a shell or an
/// <c>#SBATCH</c> line would act on. So a value can neither add a directive nor run code, wherever the template puts it,
/// quoted or not. Anything else is refused, naming the field. Any other <c>{{…}}</c> is an error in the template.
/// </remarks>
public static partial class SbatchTemplate
{
    public const string AllowedDescription = "letters, digits and . _ - + / : = , @ %";

    /// <summary>The template with every placeholder filled, or every reason it cannot be (each naming its field).</summary>
    /// <param name="payloadJson">The task's payload as JSON text (any JSON value).</param>
    public static (string? Text, IReadOnlyList<string> Errors) Fill(string template, string payloadJson, string taskId)
    {
        ArgumentNullException.ThrowIfNull(template);
        JsonNode? payload;
        try { payload = JsonNode.Parse(payloadJson); }
        catch (JsonException e) { return (null, [$"the payload is not JSON: {e.Message}"]); }
        var errors = new List<string>();
        var text = Placeholder().Replace(template, m =>
        {
            var name = m.Groups["name"].Value;
            var fallback = m.Groups["default"].Success ? m.Groups["default"].Value.Trim() : null;
            string? value;
            bool fromDefault = false;
            if (name == "task_id") value = taskId;
            else if (!IsPayloadPath(name))
            {
                Add(errors, $"the template holds {{{{{Printable(name)}}}}} at line {LineOf(template, m.Index)}: the placeholders are {{{{payload.FIELD}}}} and {{{{task_id}}}}");
                return m.Value;
            }
            else (value, fromDefault) = Lookup(payload, name, fallback, errors);
            if (value is null) return m.Value;
            if (Unsafe(value) is { } bad)
            {
                Add(errors, fromDefault
                    ? $"the template's default for {name} holds {bad}; a value may hold only {AllowedDescription}"
                    : $"{name} is {Show(value)}, which holds {bad}; a value put in the batch script may hold only {AllowedDescription}");
                return m.Value;
            }
            return value;
        });
        return errors.Count > 0 ? (null, errors) : (text, errors);
    }

    /// <summary>The value at a <c>payload.a.b</c> path as text (or its default, flagged), or null with the reason in <paramref name="errors"/>.</summary>
    private static (string? Value, bool FromDefault) Lookup(JsonNode? payload, string path, string? fallback, List<string> errors)
    {
        JsonNode? node = payload;
        var parts = path.Split('.');
        for (int i = 1; i < parts.Length; i++)
        {
            if (node is not JsonObject o)
            {
                if (fallback is not null) return (fallback, true);
                Add(errors, $"{string.Join('.', parts[..i])} is {Kind(node)}, not an object with the field {parts[i]} that the template's {{{{{path}}}}} needs");
                return (null, false);
            }
            if (!o.TryGetPropertyValue(parts[i], out node))
            {
                if (fallback is not null) return (fallback, true);
                Add(errors, $"the payload has no {string.Join('.', parts[..(i + 1)])}, which the template's {{{{{path}}}}} needs (a default in the template: {{{{{path}|VALUE}}}})");
                return (null, false);
            }
        }
        switch (node)
        {
            case JsonValue v when v.GetValueKind() == JsonValueKind.String: return (v.GetValue<string>(), false);
            case JsonValue v when v.GetValueKind() is JsonValueKind.Number: return (v.ToJsonString(), false);
            case JsonValue v when v.GetValueKind() is JsonValueKind.True or JsonValueKind.False: return (v.GetValueKind() == JsonValueKind.True ? "true" : "false", false);
            default:
                if (node is null && fallback is not null) return (fallback, true);
                Add(errors, $"{path} is {Kind(node)}; a placeholder takes a string, a number or a boolean");
                return (null, false);
        }
    }

    /// <summary>The first character a value may not hold, described; null when every one is allowed.</summary>
    private static string? Unsafe(string value)
    {
        foreach (var c in value)
        {
            if (char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-' or '+' or '/' or ':' or '=' or ',' or '@' or '%') continue;
            return c switch
            {
                '\n' => "a newline",
                '\r' => "a carriage return",
                ' ' => "a space",
                '\t' => "a tab",
                _ when char.IsControl(c) => $"the control character \\u{(int)c:x4}",
                _ => $"'{c}'",
            };
        }
        return null;
    }

    private static void Add(List<string> errors, string e)
    {
        if (!errors.Contains(e)) errors.Add(e);
    }

    private static int LineOf(string text, int index) => text.AsSpan(0, index).Count('\n') + 1;

    private static string Kind(JsonNode? n) => n switch
    {
        null => "null",
        JsonObject => "an object",
        JsonArray => "an array",
        JsonValue v => v.GetValueKind() switch
        {
            JsonValueKind.String => "a string",
            JsonValueKind.Number => "a number",
            _ => "a boolean",
        },
        _ => "something else",
    };

    /// <summary>A refused value as the client sent it, control characters escaped (JSON's way), cut when long.</summary>
    private static string Show(string value) => ((JsonNode)(value.Length > 60 ? value[..60] + "…" : value)).ToJsonString();

    private static string Printable(string s) => SbatchScript.Printable(s);

    /// <summary>
    /// Splits a filled template at the first line that is a command: before it, the shebang, comments, <c>#SBATCH</c>
    /// lines and blank lines (where Slurm reads directives); from it on, the body. The shebang is dropped (the
    /// script Sparky writes is bash).
    /// </summary>
    public static (string Head, string Body) Split(string filled)
    {
        var head = new StringBuilder();
        int pos = 0;
        bool first = true;
        while (pos < filled.Length)
        {
            int nl = filled.IndexOf('\n', pos);
            int end = nl < 0 ? filled.Length : nl + 1;
            var line = filled.AsSpan(pos, end - pos);
            var trimmed = line.Trim();
            if (first && line.StartsWith("#!")) { first = false; pos = end; continue; }
            first = false;
            if (trimmed.Length != 0 && trimmed[0] != '#') break;
            head.Append(line);
            if (nl < 0) head.Append('\n');
            pos = end;
        }
        return (head.ToString(), filled[pos..]);
    }

    [GeneratedRegex(@"\{\{\s*(?<name>[^{}|\r\n]*?)\s*(\|(?<default>[^{}\r\n]*))?\}\}", RegexOptions.CultureInvariant)]
    private static partial Regex Placeholder();

    /// <summary>A placeholder name that is a path into the payload: <c>payload</c>, <c>payload.a</c>, <c>payload.a.b</c>.</summary>
    private static bool IsPayloadPath(string name) => PayloadPath().IsMatch(name);

    [GeneratedRegex(@"\Apayload(\.[A-Za-z0-9_-]+)*\z", RegexOptions.CultureInvariant)]
    private static partial Regex PayloadPath();
}
