using System.Text;
using System.Text.Json.Nodes;
using Microsoft.ML.Tokenizers;

namespace Sparky.Embeddings.Model;

/// <summary>
/// WordPiece tokenisation as the model was trained with (Microsoft.ML.Tokenizers' <see cref="BertTokenizer"/>: basic
/// tokenisation, lower case and accents stripped for an uncased vocabulary, CJK characters split, [CLS] … [SEP]).
/// Thread-safe: requests tokenise on their own threads, before they queue.
/// </summary>
public sealed class TextTokenizer
{
    private readonly BertTokenizer _bert;
    private readonly bool _stripAccents;

    /// <summary>The most tokens one input may have, [CLS] and [SEP] included.</summary>
    public int MaxTokens { get; }

    public TextTokenizer(ModelInfo model)
    {
        MaxTokens = model.MaxTokens;
        _stripAccents = model.LowerCase;
        // Hugging Face's BertTokenizer strips accents wherever it lower-cases (strip_accents unset follows do_lower_case).
        var options = new BertOptions { LowerCaseBeforeTokenization = model.LowerCase, RemoveNonSpacingMarks = model.LowerCase };
        if (model.VocabPath is { } vocab) _bert = BertTokenizer.Create(vocab, options);
        else
        {
            using var stream = VocabFromTokenizerJson(model.TokenizerJsonPath!);
            _bert = BertTokenizer.Create(stream, options);
        }
    }

    /// <summary>A text longer than this many characters is over <see cref="MaxTokens"/> for any text a person writes (a
    /// WordPiece token covers at most 100 characters, as a word longer than that is one [UNK]): refused, or cut to this
    /// length, before it is tokenised, so a huge input costs no more than a long one.</summary>
    public int MaxChars => MaxTokens * 100;

    /// <summary>The ids of <paramref name="text"/> with [CLS] and [SEP]. Longer than <see cref="MaxTokens"/>: with
    /// <paramref name="truncate"/>, cut to it with [SEP] kept last (as sentence-transformers truncates); without, null,
    /// and <paramref name="count"/> says how many tokens it has (at least, for a text over <see cref="MaxChars"/>).</summary>
    public int[]? Encode(string text, bool truncate, out int count)
    {
        if (text.Length > MaxChars)
        {
            if (!truncate) { count = text.Length / 100; return null; }
            text = text[..MaxChars];
        }
        if (_stripAccents) text = AccentFolding.Fold(text);
        var ids = _bert.EncodeToIds(text, addSpecialTokens: true);
        count = ids.Count;
        if (ids.Count <= MaxTokens) return [.. ids];
        if (!truncate) return null;
        var cut = new int[MaxTokens];
        for (int i = 0; i < MaxTokens - 1; i++) cut[i] = ids[i];
        cut[^1] = _bert.SeparatorTokenId;
        count = MaxTokens;
        return cut;
    }

    /// <summary>A WordPiece <c>tokenizer.json</c>'s vocabulary as the lines of a <c>vocab.txt</c>, in id order.</summary>
    private static MemoryStream VocabFromTokenizerJson(string path)
    {
        var root = JsonNode.Parse(File.ReadAllText(path)) as JsonObject;
        if (root?["model"] is not JsonObject model || model["vocab"] is not JsonObject vocab
            || (model["type"] is JsonValue type && type.GetValue<string>() != "WordPiece"))
            throw new InvalidOperationException($"{path}: only a WordPiece (BERT) tokenizer is supported");
        var sb = new StringBuilder();
        foreach (var (token, _) in vocab.OrderBy(kv => kv.Value!.GetValue<long>())) sb.Append(token).Append('\n');
        return new MemoryStream(Encoding.UTF8.GetBytes(sb.ToString()));
    }
}
