namespace Sparky.Embeddings.Client.Input;

/// <summary>How the corpus is written: JSON Lines (one object per line, the text in a field) or plain text (one text per line).</summary>
public enum InputFormat { Jsonl, Text }

/// <summary>What to read from each line: the format, the field that holds the text and the one that holds the id
/// (null: the line's number, 1-based, is the id).</summary>
public sealed record InputSpec(InputFormat Format, string Field = "text", string? IdField = null)
{
    /// <summary>The format a file's name suggests: .jsonl, .ndjson and .json are JSON Lines, anything else plain text.</summary>
    public static InputFormat FormatOf(string path) =>
        Path.GetExtension(path).ToLowerInvariant() is ".jsonl" or ".ndjson" or ".json" ? InputFormat.Jsonl : InputFormat.Text;
}
