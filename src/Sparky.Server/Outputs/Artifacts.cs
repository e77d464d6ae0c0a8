using System.Security.Cryptography;
using System.Text.Json.Nodes;
using Sparky.Core.Tasks;
using Sparky.Server.Daemon;

namespace Sparky.Server.Outputs;

/// <summary>
/// A task's declared output artifacts as the API and the done file show them (<c>"artifacts"</c>):
/// <list type="bullet">
/// <item><c>{"state": "pending", "outputs": [{"path", "type", "name"}]}</c> from the end's commit until they are hashed;</item>
/// <item><c>{"state": "recorded", "recorded_at", "outputs": [...]}</c>, each output with <c>size_bytes</c> and
/// <c>checksum</c> (<c>"sha256:&lt;hex&gt;"</c>), the replaced runner's fields, or <c>"missing": true</c> where no file
/// is at its path, or an <c>"error"</c> where one is there and cannot be hashed (a directory, a FIFO, unreadable);</item>
/// <item><c>{"state": "skipped", "reason", "outputs": [...]}</c> where the daemon cannot see the files (a worker on
/// another host, or one gone). Recorded whatever the task's outcome: a failed run's outputs are worth their checksums.</item>
/// </list>
/// <c>path</c> is as declared; a relative one is from the task's working directory.
/// </summary>
public static class ArtifactsJson
{
    public const string Pending = "pending", Recorded = "recorded", Skipped = "skipped";

    public static JsonObject PendingOf(IReadOnlyList<DeclaredOutput> outputs) => new()
    {
        ["state"] = Pending,
        ["outputs"] = new JsonArray(outputs.Select(o => (JsonNode?)Declared(o)).ToArray()),
    };

    public static JsonObject SkippedOf(IReadOnlyList<DeclaredOutput> outputs, string reason) => new()
    {
        ["state"] = Skipped,
        ["reason"] = reason,
        ["outputs"] = new JsonArray(outputs.Select(o => (JsonNode?)Declared(o)).ToArray()),
    };

    public static JsonObject RecordedOf(IEnumerable<JsonObject> outputs, DateTimeOffset at) => new()
    {
        ["state"] = Recorded,
        ["recorded_at"] = at.ToString("O"),
        ["outputs"] = new JsonArray(outputs.Select(o => (JsonNode?)o).ToArray()),
    };

    public static JsonObject Declared(DeclaredOutput o) => new() { ["path"] = o.Path, ["type"] = o.Type, ["name"] = o.Name };

    /// <summary>Where a declared path is: as given when absolute, else under <paramref name="baseDir"/>.</summary>
    public static string Resolve(string path, string baseDir) => Path.IsPathRooted(path) ? path : Path.Combine(baseDir, path);
}

/// <summary>Hashes one declared output. Blocking, and as long as the file: only ever off the engine's loop.</summary>
public static class OutputHasher
{
    private const int Chunk = 1024 * 1024;

    /// <summary>The output's entry: <see cref="ArtifactsJson.Declared"/> plus its size and checksum, or why it has none.</summary>
    public static JsonObject Hash(DeclaredOutput output, string baseDir, CancellationToken stop)
    {
        var entry = ArtifactsJson.Declared(output);
        var path = ArtifactsJson.Resolve(output.Path, baseDir);
        // Opened without waiting on a FIFO, through links (as the runner's fs::metadata followed them); only a regular
        // file is read, and only as many bytes as it held when opened.
        using var handle = Posix.OpenFollowing(path, out int errno);
        if (handle is null)
        {
            if (errno is Posix.ENOENT or Posix.ENOTDIR) entry["missing"] = true;
            else entry["error"] = $"cannot open it: {Posix.Describe(errno)}";
            return entry;
        }
        int statErr = Posix.FStat(handle, out var stat);
        if (statErr != 0)
        {
            entry["error"] = $"cannot stat it: {Posix.Describe(statErr)}";
            return entry;
        }
        if (stat.Kind != Posix.Kind.Regular)
        {
            entry["error"] = $"not a regular file (a {stat.Kind.ToString().ToLowerInvariant()})";
            return entry;
        }
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[Chunk];
        long size = 0, length = (long)stat.Size;
        try
        {
            while (size < length)
            {
                stop.ThrowIfCancellationRequested();
                int n = RandomAccess.Read(handle, buffer.AsSpan(0, (int)Math.Min(Chunk, length - size)), size);
                if (n == 0) break; // it shrank meanwhile: what is there is what is recorded
                sha.AppendData(buffer, 0, n);
                size += n;
            }
        }
        catch (IOException e)
        {
            entry["error"] = $"cannot read it: {e.Message}";
            return entry;
        }
        // "size" as SPEC §3 names it, "size_bytes" as the replaced runner wrote it: readers of either find theirs.
        entry["size"] = size;
        entry["size_bytes"] = size;
        entry["checksum"] = "sha256:" + Convert.ToHexStringLower(sha.GetHashAndReset());
        return entry;
    }
}
