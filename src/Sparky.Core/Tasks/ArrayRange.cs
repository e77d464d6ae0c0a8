namespace Sparky.Core.Tasks;

/// <summary>An array of tasks, <c>0-99</c> or <c>0-99:2</c> (step) or <c>3</c>, as in Slurm's <c>--array</c>.</summary>
public readonly record struct ArrayRange(int First, int Last, int Step)
{
    public const int MaxCount = 100_000;
    public const int MaxIndex = 99_999_999;

    public int Count => (Last - First) / Step + 1;

    public IEnumerable<int> Indices()
    {
        // By count, not by `i += Step`, which would overflow past int.MaxValue and never end.
        for (int k = 0; k < Count; k++) yield return First + k * Step;
    }

    public static bool TryParse(string? text, out ArrayRange range, out string error)
    {
        range = default;
        error = "";
        if (string.IsNullOrWhiteSpace(text)) { error = "array range is empty"; return false; }
        var stepParts = text.Split(':');
        int step = 1;
        if (stepParts.Length > 2 || (stepParts.Length == 2 && (!int.TryParse(stepParts[1], out step) || step < 1)))
        {
            error = $"array range '{text}' has a bad step (want FIRST-LAST[:STEP] with STEP >= 1)";
            return false;
        }
        var bounds = stepParts[0].Split('-');
        if (bounds.Length is < 1 or > 2
            || !int.TryParse(bounds[0], out int first)
            || first < 0)
        {
            error = $"array range '{text}' is not FIRST-LAST[:STEP] with non-negative integers";
            return false;
        }
        int last = first;
        if (bounds.Length == 2 && (!int.TryParse(bounds[1], out last) || last < first))
        {
            error = $"array range '{text}' is not FIRST-LAST[:STEP] with FIRST <= LAST";
            return false;
        }
        if (last > MaxIndex)
        {
            error = $"array range '{text}' goes past {MaxIndex}, the largest index";
            return false;
        }
        range = new ArrayRange(first, last, step);
        if (range.Count > MaxCount)
        {
            error = $"array range '{text}' has {range.Count} elements; at most {MaxCount} are allowed";
            return false;
        }
        return true;
    }

    public override string ToString() => Step == 1 ? $"{First}-{Last}" : $"{First}-{Last}:{Step}";
}
