using System.Text;

namespace Sparky.Core.Config;

/// <summary>
/// A command written as one line of words, as a setting holds it (<c>&lt;class&gt;_handler</c>), split into argv.
/// The rules are a small, strict part of the shell's, and nothing more, because no shell ever runs it:
/// <list type="bullet">
/// <item>spaces and tabs separate words;</item>
/// <item><c>'…'</c> keeps everything inside as it is (no escapes inside);</item>
/// <item><c>"…"</c> keeps everything inside as it is, except <c>\"</c> and <c>\\</c>, which stand for <c>"</c> and <c>\</c>;</item>
/// <item>outside quotes, <c>\</c> makes the next character an ordinary one;</item>
/// <item>outside quotes, the characters a shell would act on (<c>| &amp; ; &lt; &gt; ( ) $ ` * ? [ ] { } ~ # !</c>) are
/// refused, since nothing here would pipe, expand or glob them: quote them to pass them as they are, or run
/// <c>sh -c '…'</c> as the handler to have a shell.</item>
/// </list>
/// Newlines and NUL are refused everywhere. An empty or blank line is no command.
/// </summary>
public static class CommandWords
{
    private const string Special = "|&;<>()$`*?[]{}~#!";

    /// <summary>The words of <paramref name="line"/>, or why it cannot be split (Words is then empty).</summary>
    public static (IReadOnlyList<string> Words, string? Error) Split(string line)
    {
        var words = new List<string>();
        var word = new StringBuilder();
        bool inWord = false;
        for (int i = 0; i < line.Length; i++)
        {
            char c = line[i];
            if (c is '\n' or '\r' or '\0') return ([], $"a {(c == '\0' ? "NUL" : "newline")} at position {i + 1}: the command must be one line");
            if (c is ' ' or '\t')
            {
                if (inWord) { words.Add(word.ToString()); word.Clear(); inWord = false; }
                continue;
            }
            inWord = true;
            switch (c)
            {
                case '\'':
                {
                    int end = line.IndexOf('\'', i + 1);
                    if (end < 0) return ([], $"the ' at position {i + 1} is never closed");
                    var inside = line.AsSpan(i + 1, end - i - 1);
                    if (inside.ContainsAny('\n', '\r', '\0')) return ([], "a newline or NUL inside quotes: the command must be one line");
                    word.Append(inside);
                    i = end;
                    break;
                }
                case '"':
                {
                    int j = i + 1;
                    for (; j < line.Length && line[j] != '"'; j++)
                    {
                        if (line[j] is '\n' or '\r' or '\0') return ([], "a newline or NUL inside quotes: the command must be one line");
                        if (line[j] == '\\' && j + 1 < line.Length && line[j + 1] is '"' or '\\') j++;
                        word.Append(line[j]);
                    }
                    if (j >= line.Length) return ([], $"the \" at position {i + 1} is never closed");
                    i = j;
                    break;
                }
                case '\\':
                    if (i + 1 >= line.Length) return ([], "a \\ at the end has nothing to escape");
                    if (line[i + 1] is '\n' or '\r' or '\0') return ([], "a newline or NUL after \\: the command must be one line");
                    word.Append(line[++i]);
                    break;
                default:
                    if (Special.Contains(c))
                        return ([], $"'{c}' at position {i + 1} is not an operator here (the command runs without a shell): quote it to pass it as it is, or use sh -c '...'");
                    word.Append(c);
                    break;
            }
        }
        if (inWord) words.Add(word.ToString());
        return (words, null);
    }

    /// <summary>Why <paramref name="line"/> is no valid command line, or null (an empty one is valid: no command).</summary>
    public static string? Problem(string line)
    {
        var (words, error) = Split(line);
        if (error is not null) return error;
        return words.Count > 0 && words[0].Length == 0 ? "the program (first word) is empty" : null;
    }
}
