using System.Text;
using Sparky.Embeddings.Client.Output;

namespace Sparky.Embeddings.Client.Tests.Output;

public sealed class NpyTests : IDisposable
{
    private readonly string _path = Path.GetTempFileName();

    public void Dispose() => File.Delete(_path);

    [Theory]
    [InlineData(0L, 0)]
    [InlineData(3L, 384)]
    [InlineData(long.MaxValue, int.MaxValue)]
    public void The_header_is_numpys_v1_for_any_shape_in_128_bytes(long rows, int dims)
    {
        var h = Npy.Header(rows, dims);
        Assert.Equal(128, h.Length);
        Assert.Equal([0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', 1, 0], h[..8]);
        Assert.Equal(118, h[8] | h[9] << 8); // the dict's length, little-endian
        var dict = Encoding.ASCII.GetString(h, 10, 118);
        Assert.StartsWith($"{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {dims}), }}", dict);
        Assert.Matches(@"^\{[^\n]*\} *\n$", dict); // padded with spaces, ended by a newline
    }

    [Fact]
    public void What_is_written_reads_back()
    {
        float[] values = [1, -2.5f, float.Epsilon, 3e38f, 0, -0f];
        File.WriteAllBytes(_path, [.. Npy.Header(3, 2), .. System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan())]);
        var (rows, dims, read) = Npy.Read(_path);
        Assert.Equal((3L, 2), (rows, dims));
        Assert.Equal(values, read);
    }

    [Fact]
    public void A_file_whose_data_does_not_fit_its_shape_is_refused()
    {
        File.WriteAllBytes(_path, [.. Npy.Header(3, 2), .. new byte[20]]);
        Assert.Contains("20 data bytes for shape (3, 2)", Assert.Throws<InvalidDataException>(() => Npy.Read(_path)).Message);
    }
}
