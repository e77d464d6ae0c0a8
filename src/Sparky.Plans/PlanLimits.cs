using Sparky.Core.Tasks;
using YamlDotNet.Core;
using YamlDotNet.Core.Events;

namespace Sparky.Plans;

/// <summary>
/// Bounds on a plan file, checked on the parser's events before YamlDotNet builds its tree. Building the tree
/// recurses once per level: 100,000 nested <c>[</c> (200 KB over <c>POST /api/v1/plans</c>) overflowed the
/// daemon's stack, and 50,000 cost 29 s of CPU (the scanner looks back over every open flow level at each token).
/// The events come one at a time, so stopping at <see cref="InputLimits.MaxDepth"/> reads a few hundred bytes.
/// Aliases are counted as the nodes they stand for: a few lines of anchors can stand for billions of nodes
/// that the plan reader would walk one by one.
/// </summary>
public static class PlanLimits
{
    /// <summary>The largest plan text, in characters: far above any plan written by hand or generated.</summary>
    public const int MaxChars = 4 * 1024 * 1024;
    /// <summary>Nodes (scalars, sequences, mappings) with every alias expanded.</summary>
    public const long MaxNodes = 250_000;

    /// <summary>Reads a plan file, refusing one over <see cref="MaxChars"/> bytes before reading it all (a file
    /// may be a device or a pipe that never ends).</summary>
    /// <exception cref="IOException">Unreadable, or too large (the message says so).</exception>
    public static string ReadFile(string path)
    {
        using var f = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        var buffer = new byte[MaxChars + 1L > int.MaxValue ? int.MaxValue : MaxChars + 1];
        int got = 0, n;
        while (got < buffer.Length && (n = f.Read(buffer, got, buffer.Length - got)) > 0) got += n;
        if (got > MaxChars) throw new IOException($"the file is over {MaxChars} bytes; a plan may be at most {MaxChars}");
        using var reader = new StreamReader(new MemoryStream(buffer, 0, got)); // as File.ReadAllText: a BOM is dropped
        return reader.ReadToEnd();
    }

    /// <summary>The first bound the text breaks, as an error with its position, or null. Malformed YAML is left to
    /// the loader, which reports it with its position (it gets no deeper than this scan did).</summary>
    public static PlanError? FirstProblem(string text, string file)
    {
        if (text.Length > MaxChars)
            return new PlanError(file, 1, 1, $"the plan is {text.Length} characters; at most {MaxChars} are accepted");
        var parser = new Parser(new StringReader(text));
        var anchors = new Dictionary<string, long>(StringComparer.Ordinal);
        var open = new Stack<(string? Anchor, long NodesBefore)>();
        long nodes = 0;
        try
        {
            while (parser.MoveNext())
            {
                var e = parser.Current!;
                switch (e)
                {
                    case SequenceStart or MappingStart:
                        if (open.Count >= InputLimits.MaxDepth)
                            return new PlanError(file, (int)e.Start.Line, (int)e.Start.Column, InputLimits.DepthMessage("the plan", "lists and mappings inside each other"));
                        open.Push((AnchorOf((NodeEvent)e), nodes));
                        nodes++;
                        break;
                    case SequenceEnd or MappingEnd:
                        var (anchor, before) = open.Pop();
                        if (anchor is not null) anchors[anchor] = nodes - before;
                        break;
                    case Scalar s:
                        nodes++;
                        if (AnchorOf(s) is { } a) anchors[a] = 1;
                        break;
                    case AnchorAlias alias:
                        nodes += anchors.GetValueOrDefault(alias.Value.Value, 1);
                        break;
                }
                if (nodes > MaxNodes)
                    return new PlanError(file, (int)e.Start.Line, (int)e.Start.Column,
                        $"the plan has more than {MaxNodes} values once its aliases (*name) are expanded; at most {MaxNodes} are accepted");
            }
        }
        catch (YamlException) { }
        return null;
    }

    private static string? AnchorOf(NodeEvent e) => e.Anchor.IsEmpty ? null : e.Anchor.Value;
}
