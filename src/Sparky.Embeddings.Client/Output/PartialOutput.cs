using System.Runtime.InteropServices;
using System.Text;

namespace Sparky.Embeddings.Client.Output;

/// <summary>
/// The two files a job appends to while it runs: the .npy-to-be (a <see cref="Npy.HeaderBytes"/> header whose shape is
/// written at the end, then float32 rows) and the ids (one a line, UTF-8). Appends are buffered; <see cref="Sync"/>
/// makes them durable, and only then does the job record them in its checkpoint. On resume both files are cut back to
/// what the checkpoint records, so rows written after it (a kill between a write and its checkpoint) are dropped, never
/// kept twice.
/// </summary>
internal sealed class PartialOutput : IDisposable
{
    private readonly FileStream _data, _ids;

    public long IdsBytes { get; private set; }

    private PartialOutput(FileStream data, FileStream ids) => (_data, _ids) = (data, ids);

    public static PartialOutput Create(string dataPath, string idsPath)
    {
        var data = Open(dataPath, FileMode.Create);
        var ids = Open(idsPath, FileMode.Create);
        data.Write(new byte[Npy.HeaderBytes]); // the header's place; written with the shape at the end
        return new PartialOutput(data, ids);
    }

    /// <summary>The files of a stopped job, cut back to <paramref name="rows"/> rows and <paramref name="idsBytes"/>
    /// bytes of ids; or the reason they cannot be (shorter than that: something else cut them).</summary>
    public static (PartialOutput? Output, string? Error) Resume(string dataPath, string idsPath, long rows, int dims, long idsBytes)
    {
        long dataBytes = Npy.HeaderBytes + rows * dims * 4L;
        var data = Open(dataPath, FileMode.Open);
        var ids = Open(idsPath, FileMode.OpenOrCreate);
        if (data.Length < dataBytes || ids.Length < idsBytes)
        {
            data.Dispose();
            ids.Dispose();
            return (null, $"{dataPath} or {idsPath} is shorter than its checkpoint records ({rows} rows): it was changed by something else");
        }
        data.SetLength(dataBytes);
        ids.SetLength(idsBytes);
        data.Seek(0, SeekOrigin.End);
        ids.Seek(0, SeekOrigin.End);
        return (new PartialOutput(data, ids) { IdsBytes = idsBytes }, null);
    }

    /// <summary>Cuts the files to what a complete job's checkpoint counts and writes the final shape into the header,
    /// on disk. The ids file is null where it was already renamed into place (a kill between the two renames).</summary>
    public static void Seal(string dataPath, string? idsPath, long rows, int dims, long idsBytes)
    {
        using (var data = Open(dataPath, FileMode.Open))
        {
            data.SetLength(Npy.HeaderBytes + rows * dims * 4L);
            data.Write(Npy.Header(rows, dims));
            data.Flush(flushToDisk: true);
        }
        if (idsPath is null) return;
        using var ids = Open(idsPath, FileMode.Open);
        ids.SetLength(idsBytes);
        ids.Flush(flushToDisk: true);
    }

    private static FileStream Open(string path, FileMode mode) =>
        new(path, mode, FileAccess.ReadWrite, FileShare.Read, 1 << 20);

    public void Append(ReadOnlySpan<float> vectors, IEnumerable<string> ids)
    {
        if (BitConverter.IsLittleEndian) _data.Write(MemoryMarshal.AsBytes(vectors));
        else
        {
            var copy = vectors.ToArray();
            Npy.ReverseEach(copy);
            _data.Write(MemoryMarshal.AsBytes(copy.AsSpan()));
        }
        foreach (var id in ids)
        {
            var bytes = Encoding.UTF8.GetBytes(id + "\n");
            _ids.Write(bytes);
            IdsBytes += bytes.Length;
        }
    }

    /// <summary>Everything appended so far, on disk (fsync).</summary>
    public void Sync()
    {
        _data.Flush(flushToDisk: true);
        _ids.Flush(flushToDisk: true);
    }

    public void Dispose()
    {
        _data.Dispose();
        _ids.Dispose();
    }
}
