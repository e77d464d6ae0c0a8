using System.Text.Json;
using System.Text.Json.Nodes;

namespace Sparky.Core.Tasks;

/// <summary>
/// System.Text.Json decodes strings and builds object dictionaries lazily, so a duplicate key, a lone
/// surrogate escape or invalid UTF-8 in a string only throws when read. Reading the whole tree once,
/// up front, turns those into a refusal with a reason instead of an exception deep in the daemon.
/// </summary>
public static class JsonChecks
{
    public static string? FirstProblem(JsonNode? node)
    {
        try
        {
            Walk(node);
            return null;
        }
        catch (ArgumentException)
        {
            return "the JSON has a duplicate key";
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException or JsonException)
        {
            return "the JSON holds a string that is not valid UTF-8 / Unicode";
        }
    }

    private static void Walk(JsonNode? node)
    {
        switch (node)
        {
            case JsonObject o:
                foreach (var (key, value) in o)
                {
                    CheckText(key);
                    Walk(value);
                }
                break;
            case JsonArray a:
                foreach (var item in a) Walk(item);
                break;
            case JsonValue v when v.GetValueKind() == JsonValueKind.String:
                CheckText(v.GetValue<string>());
                break;
        }
    }

    /// <summary>A string that decoded with replacement characters or holds a lone surrogate is not text we can keep.</summary>
    private static void CheckText(string s)
    {
        for (int i = 0; i < s.Length; i++)
        {
            char c = s[i];
            if (char.IsHighSurrogate(c) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1])) { i++; continue; }
            if (char.IsSurrogate(c)) throw new InvalidOperationException("lone surrogate");
        }
    }
}
