using System.Globalization;

namespace Sparky.Embeddings.Client.Input;

/// <summary>
/// One of <see cref="Count"/> parts of the input (<c>--shard i/n</c>, i from 0): a contiguous run of lines, so the
/// parts in order are the input in order. Which lines a shard holds depends only on the input's line count, so shard
/// tasks that run apart (an array of tasks, on other hosts) cover every line exactly once between them.
/// </summary>
public readonly record struct ShardSpec(int Index, int Count)
{
    public const int MaxCount = 100_000;
    public static ShardSpec Whole => new(0, 1);

    public bool IsWhole => Count == 1;

    /// <summary>The output files' name: <c>embeddings</c>, or <c>part-i-of-n</c> for a shard.</summary>
    public string Stem => IsWhole ? "embeddings" : $"part-{Index}-of-{Count}";

    /// <summary>The lines of this shard, 1-based: [First, End).</summary>
    public (long First, long End) Lines(long totalLines) =>
        (1 + (long)((Int128)Index * totalLines / Count), 1 + (long)((Int128)(Index + 1) * totalLines / Count));

    /// <summary>"i/n" with 0 ≤ i &lt; n ≤ <see cref="MaxCount"/>; false with the reason otherwise.</summary>
    public static bool TryParse(string text, out ShardSpec shard, out string? error)
    {
        shard = Whole;
        error = null;
        var parts = text.Split('/');
        if (parts.Length != 2
            || !int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out int i)
            || !int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out int n))
        {
            error = $"--shard wants i/n, such as 0/4 (shards are numbered from 0); got '{text}'";
            return false;
        }
        if (n < 1 || n > MaxCount || i >= n)
        {
            error = $"--shard {text}: i must be below n, and n between 1 and {MaxCount}";
            return false;
        }
        shard = new ShardSpec(i, n);
        return true;
    }

    public override string ToString() => $"{Index}/{Count}";
}
