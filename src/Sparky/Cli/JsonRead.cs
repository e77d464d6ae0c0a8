using System.Globalization;
using System.Text.Json.Nodes;

namespace Sparky.Cli;

/// <summary>Lenient reads of the daemon's JSON: a missing or mistyped field is null, never an exception.</summary>
internal static class JsonRead
{
    public static string? Str(JsonNode? n, string key) => n is JsonObject o && o[key] is JsonValue v && v.TryGetValue<string>(out var s) ? s : null;

    public static long? Long(JsonNode? n, string key) =>
        Number(n is JsonObject o ? o[key] : null) is { } d && Math.Abs(d) < 9e18 ? (long)d : null;

    /// <summary>A number, whether it came parsed from the wire or was built in memory (as an int, a long, a double).</summary>
    public static double? Number(JsonNode? n)
    {
        if (n is not JsonValue v) return null;
        double? d = v.TryGetValue<double>(out var x) ? x : v.TryGetValue<long>(out var l) ? l : v.TryGetValue<int>(out var i) ? i
            : v.TryGetValue<float>(out var f) ? f : v.TryGetValue<decimal>(out var m) ? (double)m : null;
        return d is { } value && double.IsFinite(value) ? value : null;
    }

    public static DateTimeOffset? Time(JsonNode? n, string key) =>
        Str(n, key) is { } s && DateTimeOffset.TryParse(s, CultureInfo.InvariantCulture, DateTimeStyles.None, out var t) ? t : null;
}
