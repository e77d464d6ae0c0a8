namespace Sparky.Core.Tasks;

/// <summary>
/// Bounds on what a client may send, checked before anything recursive sees it. A parser or tree walk that
/// recurses once per level dies of a stack overflow on 100,000 nested brackets (200 KB): the process ends with
/// nothing logged, whatever catches the caller has. Every door (HTTP, ZeroMQ, drop directory, CLI, plan files)
/// refuses past <see cref="MaxDepth"/> with this message, after a linear scan.
/// </summary>
public static class InputLimits
{
    /// <summary>Nesting of arrays and objects (JSON, MessagePack) or of sequences and mappings (YAML). A task
    /// envelope needs 4, a plan about 8.</summary>
    public const int MaxDepth = 64;

    /// <summary>The one wording used everywhere, so a user sees the same refusal whatever the door.</summary>
    public static string DepthMessage(string what, string where) =>
        $"{what} nests deeper than {MaxDepth} levels ({where}); at most {MaxDepth} are accepted";

    /// <summary>
    /// The first place where JSON text nests past <see cref="MaxDepth"/>, as a message, or null. Linear and
    /// allocation-free; strings are skipped (a bracket inside one is text), and anything else malformed is left to
    /// the parser, which runs after this and reports it.
    /// </summary>
    public static string? JsonDepthProblem(ReadOnlySpan<byte> utf8)
    {
        int depth = 0;
        bool inString = false;
        for (int i = 0; i < utf8.Length; i++)
        {
            byte b = utf8[i];
            if (inString)
            {
                if (b == (byte)'\\') i++;
                else if (b == (byte)'"') inString = false;
                continue;
            }
            switch (b)
            {
                case (byte)'"': inString = true; break;
                case (byte)'[' or (byte)'{':
                    if (++depth > MaxDepth) return DepthMessage("the JSON", $"at byte {i}");
                    break;
                case (byte)']' or (byte)'}':
                    if (depth > 0) depth--;
                    break;
            }
        }
        return null;
    }
}
