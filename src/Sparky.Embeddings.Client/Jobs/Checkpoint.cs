using System.Text.Json;

namespace Sparky.Embeddings.Client.Jobs;

/// <summary>What makes two runs the same job: the input (its size and modification time: a changed input is another
/// job) and how it is read and split. The endpoint is not part of it: a job may resume against another replica.</summary>
public sealed record JobIdentity(long InputBytes, long InputModifiedTicks, string Format, string Field, string? IdField, string Shard);

/// <summary>
/// A job's durable place, written atomically (a temporary file, fsynced, renamed over the last) after the rows it
/// counts are on disk: <see cref="Rows"/> vectors (of <see cref="Dimensions"/>) and <see cref="IdsBytes"/> bytes of
/// ids are committed, and reading goes on at line <see cref="NextLine"/> (byte <see cref="NextOffset"/>). Kept after
/// the job completes, as the record of what the outputs hold.
/// </summary>
public sealed record Checkpoint(JobIdentity Job, string? Model, long Rows, int Dimensions, long IdsBytes, long NextLine, long NextOffset, long Skipped, bool Complete)
{
    public const int Version = 1;

    public byte[] ToJson()
    {
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteNumber("version", Version);
            w.WriteNumber("input_bytes", Job.InputBytes);
            w.WriteNumber("input_modified_ticks", Job.InputModifiedTicks);
            w.WriteString("format", Job.Format);
            w.WriteString("field", Job.Field);
            if (Job.IdField is { } idField) w.WriteString("id_field", idField); else w.WriteNull("id_field");
            w.WriteString("shard", Job.Shard);
            if (Model is { } model) w.WriteString("model", model); else w.WriteNull("model");
            w.WriteNumber("rows", Rows);
            w.WriteNumber("dimensions", Dimensions);
            w.WriteNumber("ids_bytes", IdsBytes);
            w.WriteNumber("next_line", NextLine);
            w.WriteNumber("next_offset", NextOffset);
            w.WriteNumber("skipped", Skipped);
            w.WriteBoolean("complete", Complete);
            w.WriteEndObject();
        }
        return stream.ToArray();
    }

    /// <summary>A checkpoint read back, or null with the reason where the file is not one this version wrote.</summary>
    public static (Checkpoint? Checkpoint, string? Error) Parse(ReadOnlySpan<byte> json)
    {
        try
        {
            using var doc = JsonDocument.Parse(json.ToArray());
            var r = doc.RootElement;
            if (r.GetProperty("version").GetInt32() != Version) return (null, $"version {r.GetProperty("version")}, not {Version}");
            string? Str(string name) => r.GetProperty(name).ValueKind == JsonValueKind.Null ? null : r.GetProperty(name).GetString();
            var job = new JobIdentity(r.GetProperty("input_bytes").GetInt64(), r.GetProperty("input_modified_ticks").GetInt64(),
                Str("format")!, Str("field")!, Str("id_field"), Str("shard")!);
            var c = new Checkpoint(job, Str("model"), r.GetProperty("rows").GetInt64(), r.GetProperty("dimensions").GetInt32(),
                r.GetProperty("ids_bytes").GetInt64(), r.GetProperty("next_line").GetInt64(), r.GetProperty("next_offset").GetInt64(),
                r.GetProperty("skipped").GetInt64(), r.GetProperty("complete").GetBoolean());
            if (c.Rows < 0 || c.Dimensions < 0 || c.IdsBytes < 0 || c.NextLine < 1 || c.NextOffset < 0 || (c.Rows > 0 && c.Dimensions == 0))
                return (null, "its counts are out of range");
            return (c, null);
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
        {
            return (null, "not a checkpoint: " + e.Message.Split(" Path:")[0]);
        }
    }

    /// <summary>Replaces <paramref name="path"/> with this checkpoint so that a crash at any moment leaves the old one or
    /// the new one whole, never a mix.</summary>
    public void Save(string path)
    {
        var tmp = path + ".tmp";
        using (var f = new FileStream(tmp, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            f.Write(ToJson());
            f.Flush(flushToDisk: true);
        }
        File.Move(tmp, path, overwrite: true);
    }
}
