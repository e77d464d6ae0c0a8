namespace Sparky.Embeddings.Model;

/// <summary>Pooling and normalisation as sentence-transformers does them. Pure: arrays in, arrays out.</summary>
public static class Vectors
{
    /// <summary>
    /// One sentence's vector from its token vectors: <paramref name="hidden"/> holds <paramref name="seqLen"/> rows of
    /// <paramref name="dim"/> floats (the padded batch's row for this sentence), of which the first
    /// <paramref name="tokens"/> are real (the attention mask's ones); padding never counts.
    /// </summary>
    public static float[] Pool(ReadOnlySpan<float> hidden, int seqLen, int dim, int tokens, Pooling pooling)
    {
        if (tokens < 1 || tokens > seqLen || hidden.Length < seqLen * dim) throw new ArgumentException("token count out of range", nameof(tokens));
        var v = new float[dim];
        switch (pooling)
        {
            case Pooling.Cls:
                hidden[..dim].CopyTo(v);
                break;
            case Pooling.Max:
                hidden[..dim].CopyTo(v);
                for (int t = 1; t < tokens; t++)
                {
                    var row = hidden.Slice(t * dim, dim);
                    for (int i = 0; i < dim; i++) if (row[i] > v[i]) v[i] = row[i];
                }
                break;
            default:
                // Summed in double: a 512-token mean in float loses the last digits the reference keeps.
                var sum = new double[dim];
                for (int t = 0; t < tokens; t++)
                {
                    var row = hidden.Slice(t * dim, dim);
                    for (int i = 0; i < dim; i++) sum[i] += row[i];
                }
                for (int i = 0; i < dim; i++) v[i] = (float)(sum[i] / tokens);
                break;
        }
        return v;
    }

    /// <summary>Scales to unit length in place (sentence-transformers' Normalize: divides by max(norm, 1e-12)).</summary>
    public static float[] Normalize(float[] v)
    {
        double norm = 0;
        foreach (var x in v) norm += (double)x * x;
        norm = Math.Max(Math.Sqrt(norm), 1e-12);
        for (int i = 0; i < v.Length; i++) v[i] = (float)(v[i] / norm);
        return v;
    }

    /// <summary>OpenAI's <c>dimensions</c> for a model trained for it (Matryoshka): the first <paramref name="dims"/>
    /// components, made unit length again.</summary>
    public static float[] Shorten(float[] v, int dims) => dims >= v.Length ? v : Normalize(v[..dims]);

    public static double Cosine(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        double dot = 0, na = 0, nb = 0;
        for (int i = 0; i < a.Length; i++) { dot += (double)a[i] * b[i]; na += (double)a[i] * a[i]; nb += (double)b[i] * b[i]; }
        return dot / Math.Max(Math.Sqrt(na) * Math.Sqrt(nb), 1e-24);
    }
}
