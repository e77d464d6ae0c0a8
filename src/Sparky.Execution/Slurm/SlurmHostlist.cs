using System.Globalization;
using System.Text;

namespace Sparky.Execution.Slurm;

/// <summary>
/// Slurm's compressed node lists (<c>node[1-2]</c>, <c>gpu[01-03,07],login1</c>, <c>r[1-2]n[1-2]</c>) expanded into
/// every node, as <c>scontrol show hostnames</c> lists them: ranges keep the width of their first number (<c>01</c>),
/// several bracket groups in one name multiply. Pure, and without a process per poll.
/// </summary>
public static class SlurmHostlist
{
    /// <summary>The most nodes a Sparky task asks for (<see cref="SbatchScript.MaxNodes"/>): a list that would expand
    /// past it is kept as Slurm gave it.</summary>
    public const int MaxNodes = SbatchScript.MaxNodes;

    /// <summary>Every node of <paramref name="list"/>, in Slurm's order (a name listed twice is kept once); null when
    /// it is not a node list Slurm writes (an unbalanced bracket, a range running backwards, too many nodes).</summary>
    public static IReadOnlyList<string>? Expand(string list)
    {
        var nodes = new List<string>();
        foreach (var entry in TopLevel(list))
        {
            if (entry.Length == 0) continue;
            var expanded = ExpandOne(entry, MaxNodes - nodes.Count);
            if (expanded is null) return null;
            nodes.AddRange(expanded);
        }
        return nodes.Distinct(StringComparer.Ordinal).ToList();
    }

    /// <summary>The nodes of <paramref name="list"/> comma-separated (<c>node1,node2</c>); the list as given where it
    /// does not expand.</summary>
    public static string Join(string list) => Expand(list) is { Count: > 0 } nodes ? string.Join(',', nodes) : list;

    /// <summary>The list split at commas outside brackets (an unbalanced bracket stays in its entry, which then fails
    /// to expand).</summary>
    private static IEnumerable<string> TopLevel(string list)
    {
        int depth = 0, start = 0;
        for (int i = 0; i < list.Length; i++)
        {
            if (list[i] == '[') depth++;
            else if (list[i] == ']') depth--;
            else if (list[i] == ',' && depth == 0)
            {
                yield return list[start..i].Trim();
                start = i + 1;
            }
        }
        yield return list[start..].Trim();
    }

    /// <summary>One name with zero or more bracket groups; null where it is malformed or past <paramref name="room"/>.</summary>
    private static List<string>? ExpandOne(string entry, int room)
    {
        var names = new List<string> { "" };
        int i = 0;
        while (i < entry.Length)
        {
            int open = entry.IndexOf('[', i);
            int closeBefore = entry.IndexOf(']', i);
            if (open < 0)
            {
                if (closeBefore >= 0) return null;
                Append(names, entry[i..]);
                break;
            }
            if (closeBefore >= 0 && closeBefore < open) return null;
            Append(names, entry[i..open]);
            int close = entry.IndexOf(']', open);
            if (close < 0) return null;
            var inner = entry[(open + 1)..close];
            if (inner.Contains('[')) return null;
            var parts = Range(inner, room);
            if (parts is null || (long)names.Count * parts.Count > room) return null;
            names = names.SelectMany(n => parts.Select(p => n + p)).ToList();
            i = close + 1;
        }
        return names.Count == 1 && names[0].Length == 0 ? null : names;
    }

    private static void Append(List<string> names, string text)
    {
        for (int k = 0; k < names.Count; k++) names[k] += text;
    }

    /// <summary><c>1-3,07,10-11</c> as its numbers, each as wide as the number it was written from.</summary>
    private static List<string>? Range(string inner, int room)
    {
        var result = new List<string>();
        foreach (var part in inner.Split(','))
        {
            var ends = part.Split('-');
            if (ends.Length is < 1 or > 2 || ends.Any(e => e.Length is 0 or > 9 || !e.All(char.IsAsciiDigit))) return null;
            int lo = int.Parse(ends[0], CultureInfo.InvariantCulture), hi = ends.Length == 2 ? int.Parse(ends[1], CultureInfo.InvariantCulture) : lo;
            if (hi < lo || result.Count + (long)(hi - lo) + 1 > room) return null;
            int width = ends[0].Length;
            for (int n = lo; n <= hi; n++) result.Add(n.ToString(CultureInfo.InvariantCulture).PadLeft(width, '0'));
        }
        return result;
    }
}
