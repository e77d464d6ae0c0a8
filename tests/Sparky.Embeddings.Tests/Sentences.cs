namespace Sparky.Embeddings.Tests;

/// <summary>Test sentences of mixed length and kind: plain, numbers, punctuation, long ones. No accented letters nor CJK
/// ideographs: the package whose encoder they are compared with tokenises those unlike Hugging Face (ModelTests).</summary>
public static class Sentences
{
    private static readonly string[] Subjects = ["The cat", "A small team of engineers", "My grandmother", "The GPU cluster", "Resume parsing", "Our cafe in Zurich", "The 2024 budget", "The weather in Tokyo", "Someone on the night shift", "The queue"];
    private static readonly string[] Verbs = ["sleeps on", "carefully reviews", "forgot about", "is waiting for", "doesn't understand", "quickly rebuilt", "was measured against", "loves", "ignored", "scheduled"];
    private static readonly string[] Objects = ["the warm windowsill.", "a 3,000-line pull request!", "the password (again).", "jobs #12-#99 on partition gpu", "naive Bayes classifiers", "the embeddings of 2,000 sentences", "an ONNX model — in C#?", "tea & biscuits", "the Slurm controller's log", "everything"];

    /// <summary>n sentences, the same each time: one of every ten is long (a paragraph of a few dozen words).</summary>
    public static string[] Make(int n)
    {
        var all = new string[n];
        for (int i = 0; i < n; i++)
        {
            var s = $"{Subjects[i % 10]} {Verbs[(i / 10 + i) % 10]} {Objects[(i * 7) % 10]}";
            if (i % 10 == 9) s = string.Join(' ', Enumerable.Range(0, 6).Select(k => $"{Subjects[(i + k) % 10]} {Verbs[(i + 2 * k) % 10]} {Objects[(i + 3 * k) % 10]}"));
            all[i] = s;
        }
        return all;
    }
}
