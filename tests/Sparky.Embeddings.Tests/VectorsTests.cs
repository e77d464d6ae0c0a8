using Sparky.Embeddings.Model;

namespace Sparky.Embeddings.Tests;

public class VectorsTests
{
    [Fact]
    public void Mean_pooling_counts_only_the_real_tokens()
    {
        // 3 rows of 2: the last is padding and must not count.
        float[] hidden = [1, 2, 3, 4, 100, 100];
        Assert.Equal([2f, 3f], Vectors.Pool(hidden, seqLen: 3, dim: 2, tokens: 2, Pooling.Mean));
        Assert.Equal([1f, 2f], Vectors.Pool(hidden, 3, 2, 2, Pooling.Cls));
        Assert.Equal([3f, 4f], Vectors.Pool(hidden, 3, 2, 2, Pooling.Max));
    }

    [Fact]
    public void Normalised_vectors_have_unit_length_and_shortened_ones_again()
    {
        var v = Vectors.Normalize([3f, 4f, 12f]);
        Assert.Equal(1.0, Math.Sqrt(v.Sum(x => (double)x * x)), 6);
        var s = Vectors.Shorten(v, 2);
        Assert.Equal(2, s.Length);
        Assert.Equal(0.6f, s[0], 5);
        Assert.Equal(0.8f, s[1], 5);
        Assert.Equal([0f, 0f], Vectors.Normalize([0f, 0f])); // no division by zero
    }
}
