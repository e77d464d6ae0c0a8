using System.Text.RegularExpressions;

namespace Sparky.Core.Tasks;

/// <summary>A task's id: short, URL-safe, and safe as a file name (it names log and done files).</summary>
public readonly partial record struct TaskId
{
    public string Value { get; }

    private TaskId(string value) => Value = value;

    public const string Pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$";

    [GeneratedRegex(Pattern, RegexOptions.CultureInvariant)]
    private static partial Regex Valid();

    public static bool TryParse(string? text, out TaskId id)
    {
        // ".." alone would match the pattern's tail rules only if it started with a dot, which the first
        // character class forbids; so any match is a plain file name with no path in it.
        if (text is not null && Valid().IsMatch(text) && !text.Contains('\n'))
        {
            id = new TaskId(text);
            return true;
        }
        id = default;
        return false;
    }

    public static TaskId Parse(string text) =>
        TryParse(text, out var id) ? id : throw new FormatException($"invalid task id (must match {Pattern})");

    public override string ToString() => Value;
}

/// <summary>Makes fresh ids: time-ordered and unique within a daemon, 11 characters of Crockford base32.</summary>
public sealed class TaskIdGenerator(TimeProvider clock)
{
    private const string Alphabet = "0123456789abcdefghjkmnpqrstvwxyz";
    private readonly Lock _gate = new();
    private long _last;

    public TaskId Next()
    {
        // 43 bits of milliseconds and 12 bits of sequence: strictly increasing even when the clock stalls.
        long candidate = clock.GetUtcNow().ToUnixTimeMilliseconds() << 12;
        long value;
        lock (_gate)
        {
            value = _last = Math.Max(candidate, _last + 1);
        }
        Span<char> chars = stackalloc char[11];
        for (int i = chars.Length - 1; i >= 0; i--)
        {
            chars[i] = Alphabet[(int)(value & 31)];
            value >>= 5;
        }
        return TaskId.Parse(new string(chars));
    }
}
