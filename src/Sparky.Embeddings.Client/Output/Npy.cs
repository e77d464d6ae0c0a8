using System.Buffers.Binary;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;

namespace Sparky.Embeddings.Client.Output;

/// <summary>
/// NumPy's .npy format, version 1.0, for float32 matrices: the magic <c>\x93NUMPY</c>, the version 1.0, a
/// little-endian uint16 header length, then an ASCII dict <c>{'descr': '&lt;f4', 'fortran_order': False, 'shape':
/// (rows, dims), }</c> padded with spaces and ended by '\n' so the data starts at a multiple of 64; the data follows
/// row after row (C order). The header written here is always <see cref="HeaderBytes"/> long, whatever the shape, so
/// the rows can be appended before the final shape is known and the header rewritten in place at the end.
/// </summary>
public static class Npy
{
    /// <summary>The whole header, magic to '\n': room for any shape of two 64-bit counts.</summary>
    public const int HeaderBytes = 128;

    private static ReadOnlySpan<byte> Magic => [0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y'];

    public static byte[] Header(long rows, int dims)
    {
        var dict = string.Create(CultureInfo.InvariantCulture, $"{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {dims}), }}");
        int pad = HeaderBytes - 10 - dict.Length - 1;
        if (rows < 0 || dims < 0 || pad < 0) throw new ArgumentOutOfRangeException(nameof(rows), "no such shape");
        var header = new byte[HeaderBytes];
        Magic.CopyTo(header);
        header[6] = 1; // version 1.0
        header[7] = 0;
        BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(8), HeaderBytes - 10);
        Encoding.ASCII.GetBytes(dict, header.AsSpan(10));
        header.AsSpan(10 + dict.Length, pad).Fill((byte)' ');
        header[^1] = (byte)'\n';
        return header;
    }

    /// <summary>Reads a float32 C-order 2-D .npy (version 1.0 or 2.0) whole: its shape and its values. For tests and
    /// tools that check what a job wrote; anything else is refused with the reason.</summary>
    public static (long Rows, int Dims, float[] Values) Read(string path)
    {
        var bytes = File.ReadAllBytes(path);
        if (bytes.Length < 10 || !bytes.AsSpan(0, 6).SequenceEqual(Magic)) throw new InvalidDataException($"{path}: not a .npy file");
        int major = bytes[6];
        int headerLength = major == 1 ? BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(8))
            : major is 2 or 3 ? (int)BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(8)) : throw new InvalidDataException($"{path}: .npy version {major}");
        int start = (major == 1 ? 10 : 12) + headerLength;
        var dict = Encoding.ASCII.GetString(bytes, major == 1 ? 10 : 12, headerLength).Replace(" ", "");
        if (!dict.Contains("'descr':'<f4'", StringComparison.Ordinal) || !dict.Contains("'fortran_order':False", StringComparison.Ordinal))
            throw new InvalidDataException($"{path}: not little-endian float32 in C order: {dict.Trim()}");
        int open = dict.IndexOf("'shape':(", StringComparison.Ordinal) + "'shape':(".Length;
        var shape = dict[open..dict.IndexOf(')', open)].Split(',', StringSplitOptions.RemoveEmptyEntries);
        if (shape.Length != 2) throw new InvalidDataException($"{path}: not a matrix: {dict.Trim()}");
        long rows = long.Parse(shape[0], CultureInfo.InvariantCulture);
        int dims = int.Parse(shape[1], CultureInfo.InvariantCulture);
        if (start % 64 != 0) throw new InvalidDataException($"{path}: the data starts at {start}, not a multiple of 64");
        if (bytes.Length - start != rows * dims * 4) throw new InvalidDataException($"{path}: {bytes.Length - start} data bytes for shape ({rows}, {dims})");
        var values = MemoryMarshal.Cast<byte, float>(bytes.AsSpan(start)).ToArray();
        if (!BitConverter.IsLittleEndian) ReverseEach(values);
        return (rows, dims, values);
    }

    /// <summary>Swaps each value's bytes: little-endian to this machine's order and back, where this machine is big-endian.</summary>
    public static void ReverseEach(Span<float> values)
    {
        var ints = MemoryMarshal.Cast<float, int>(values);
        BinaryPrimitives.ReverseEndianness(ints, ints);
    }
}
