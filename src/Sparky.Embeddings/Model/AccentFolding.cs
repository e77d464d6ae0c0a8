using System.Collections.Frozen;
using System.Globalization;
using System.Text;

namespace Sparky.Embeddings.Model;

/// <summary>
/// Accents stripped as Hugging Face's uncased BERT tokenizer strips them (NFD, then every non-spacing mark dropped:
/// "naïve" is "naive"). The tokenizer library does this with <see cref="string.Normalize()"/>, which under the invariant
/// globalization Sparky runs with (no ICU) decomposes nothing: accented letters came out as [UNK]. So the letters that
/// decompose are mapped here, from <c>accents.txt</c>: each line a precomposed character and what is left of its NFD
/// without marks, for Latin, Greek, Cyrillic and their extended blocks (written by Python's unicodedata, Unicode 14).
/// </summary>
internal static class AccentFolding
{
    private static readonly FrozenDictionary<char, string> Map = Load();

    private static FrozenDictionary<char, string> Load()
    {
        using var stream = typeof(AccentFolding).Assembly.GetManifestResourceStream("accents.txt")!;
        using var reader = new StreamReader(stream, Encoding.UTF8);
        var map = new Dictionary<char, string>();
        while (reader.ReadLine() is { } line)
            if (line.Length >= 2) map[line[0]] = line[1..];
        return map.ToFrozenDictionary();
    }

    public static string Fold(string text)
    {
        int i = 0;
        while (i < text.Length && text[i] < 0xC0) i++;
        if (i == text.Length) return text; // ASCII and Latin-1 punctuation: nothing to fold, nothing copied
        var sb = new StringBuilder(text.Length);
        sb.Append(text, 0, i);
        for (; i < text.Length; i++)
        {
            char c = text[i];
            if (Map.TryGetValue(c, out var folded)) sb.Append(folded);
            else if (CharUnicodeInfo.GetUnicodeCategory(c) != UnicodeCategory.NonSpacingMark) sb.Append(c);
        }
        return sb.ToString();
    }
}
