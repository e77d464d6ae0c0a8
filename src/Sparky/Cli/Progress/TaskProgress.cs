using System.Globalization;
using System.Text.Json.Nodes;

namespace Sparky.Cli.Progress;

/// <summary>
/// A task's own progress as it last reported it (<c>progress</c> on a task, the body of a <c>task.progress</c> event):
/// <c>{"done", "total", "message"}</c>, any of them.
/// </summary>
internal sealed record TaskProgress(double? Done, double? Total, string? Message)
{
    /// <summary>The progress in <paramref name="node"/>, or null where there is none (or nothing usable in it).</summary>
    public static TaskProgress? Of(JsonNode? node)
    {
        if (node is not JsonObject o) return null;
        double? Number(string key) => JsonRead.Number(o[key]);
        var message = o["message"] is JsonValue m && m.TryGetValue<string>(out var s) && s.Length > 0 ? s : null;
        var p = new TaskProgress(Number("done"), Number("total"), message);
        return p.Done is null && p.Total is null && p.Message is null ? null : p;
    }

    /// <summary>How far along, 0..1, where both done and a positive total are known.</summary>
    public double? Fraction => Done is { } d && Total is { } t && t > 0 ? Math.Clamp(d / t, 0, 1) : null;

    /// <summary>"45/100", "45" (no total), or empty.</summary>
    public string Count => Done is not { } d ? "" : Total is { } t ? $"{Num(d)}/{Num(t)}" : Num(d);

    /// <summary>The count and the message: "45/100 epoch 5".</summary>
    public string Text => string.Join(' ', new[] { Count, Message ?? "" }.Where(x => x.Length > 0));

    private static string Num(double v) => v == Math.Floor(v) && Math.Abs(v) < 1e15
        ? ((long)v).ToString(CultureInfo.InvariantCulture)
        : v.ToString("0.##", CultureInfo.InvariantCulture);
}
