using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Sparky.Plans;

/// <summary>One check's outcome; <see cref="Output"/> is what a report shows (a run check's output tail).</summary>
public sealed record CheckResult(bool Passed, string Output);

/// <summary>
/// The gate checks that need no process, as pure functions over what the caller read: the file's text for a
/// metric, whether the file exists and its size for a file check. <c>run</c> checks are executed by the daemon.
/// </summary>
public static partial class Gates
{
    /// <param name="fileText">The metric file's contents, or null when it does not exist.</param>
    public static CheckResult EvaluateMetric(MetricCheck check, string? fileText)
    {
        if (fileText is null) return new(false, $"{check.File}: no such file");
        JsonNode? root;
        try { root = JsonNode.Parse(fileText); }
        catch (JsonException e) { return new(false, $"{check.File} is not JSON: {e.Message}"); }

        if (ParsePath(check.Path) is not { } steps) return new(false, $"metric path '{check.Path}' is malformed");
        JsonNode? node = root;
        var walked = "";
        foreach (var step in steps)
        {
            switch (step)
            {
                case string key when node is JsonObject o && o.TryGetPropertyValue(key, out var next):
                    node = next;
                    walked += walked.Length == 0 ? key : "." + key;
                    break;
                case int index when node is JsonArray a && index < a.Count:
                    node = a[index];
                    walked += $"[{index}]";
                    break;
                default:
                    return new(false, $"{check.File}: no {check.Path} (found {(walked.Length == 0 ? "the top" : walked)}, but not {Step(step)} under it)");
            }
        }

        var shown = node?.ToJsonString() ?? "null";
        if (check.Min is not null || check.Max is not null)
        {
            if (node is not JsonValue v || v.GetValueKind() != JsonValueKind.Number)
                return new(false, $"{check.Path} = {shown} in {check.File}, not a number");
            double x = v.GetValue<double>();
            if (check.Min is { } min && x < min) return new(false, $"{check.Path} = {Num(x)}, below the minimum {Num(min)}");
            if (check.Max is { } max && x > max) return new(false, $"{check.Path} = {Num(x)}, above the maximum {Num(max)}");
        }
        if (check.EqualsValue is { } want && !Same(node, want))
            return new(false, $"{check.Path} = {shown}, not {want}");
        return new(true, $"{check.Path} = {shown} ({check.Condition})");
    }

    /// <param name="exists">Whether the path exists (as a file).</param>
    /// <param name="size">Its size in bytes, when it exists.</param>
    public static CheckResult EvaluateFile(FileCheck check, bool exists, long size)
    {
        if (!exists) return new(false, $"{check.Path}: no such file");
        if (check.NonEmpty && size == 0) return new(false, $"{check.Path} is empty");
        return new(true, $"{check.Path} exists ({size} bytes)");
    }

    /// <summary>The result of a run check from its exit code and the tail of its output.</summary>
    public static CheckResult FromRun(int exitCode, string outputTail, bool timedOut = false) =>
        timedOut ? new(false, $"timed out\n{outputTail}".TrimEnd())
        : new(exitCode == 0, exitCode == 0 ? outputTail : $"exit code {exitCode}\n{outputTail}".TrimEnd());

    /// <summary><c>a.b[0].c</c> → ["a", "b", 0, "c"]; null when malformed (empty key, bad index, stray bracket).</summary>
    public static IReadOnlyList<object>? ParsePath(string path)
    {
        if (!PathShape().IsMatch(path)) return null;
        var steps = new List<object>();
        foreach (Match m in PathStep().Matches(path))
        {
            if (m.Groups[1].Success)
            {
                if (!int.TryParse(m.Groups[1].Value, NumberStyles.None, CultureInfo.InvariantCulture, out var index)) return null;
                steps.Add(index);
            }
            else steps.Add(m.Value);
        }
        return steps;
    }

    [GeneratedRegex(@"^(?:[^.\[\]]+|\[\d+\])(?:\[\d+\])*(?:\.[^.\[\]]+(?:\[\d+\])*)*$")]
    private static partial Regex PathShape();

    [GeneratedRegex(@"[^.\[\]]+|\[(\d+)\]")]
    private static partial Regex PathStep();

    private static bool Same(JsonNode? node, string want)
    {
        if (node is null) return want is "null" or "~";
        if (node is not JsonValue v) return false;
        return v.GetValueKind() switch
        {
            JsonValueKind.Number => double.TryParse(want, NumberStyles.Float, CultureInfo.InvariantCulture, out var w) && v.GetValue<double>() == w,
            JsonValueKind.String => v.GetValue<string>() == want,
            JsonValueKind.True => want is "true" or "True",
            JsonValueKind.False => want is "false" or "False",
            _ => false,
        };
    }

    private static string Step(object step) => step is int i ? $"[{i}]" : $"'{step}'";

    internal static string Num(double d) => d.ToString("R", CultureInfo.InvariantCulture);
}
