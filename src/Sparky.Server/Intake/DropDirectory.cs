using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Threading.Channels;
using Sparky.Core.Tasks;
using Sparky.Server.Daemon;

namespace Sparky.Server.Intake;

/// <summary>
/// For producers written against the replaced system: a JSON envelope renamed into
/// <c>&lt;data&gt;/queue/pending/</c> is taken at once (a watcher, plus one scan at start), stored, then
/// moved to <c>accepted/</c>, or to <c>rejected/</c> beside a <c>.reason</c> file. Files whose name
/// starts with a dot or ends in <c>.tmp</c> are still being written and are left alone.
/// <para>Each file is taken once: its identity is stored with its task (<see cref="DroppedFile.Read.Key"/>), so a file
/// found again after a kill -9 between the commit and the move is moved, not stored again. Only a regular file is read,
/// never through a link and never past the size limit (<see cref="DroppedFile.Take"/>); anything else (a link, a FIFO,
/// a directory, a file the daemon cannot read, a name too long for its <c>.reason</c>) is rejected with a reason and
/// keeps no other file waiting.</para>
/// </summary>
internal sealed class DropDirectory : IDisposable
{
    private readonly SparkyDaemon _d;
    private readonly string _pending, _accepted, _rejected;
    private readonly FileSystemWatcher _watcher;
    private readonly Channel<string> _files = Channel.CreateUnbounded<string>(new UnboundedChannelOptions { SingleReader = true });
    private readonly Task _worker;

    public DropDirectory(SparkyDaemon d)
    {
        _d = d;
        var queue = Path.Combine(d.Config.DataDir, "queue");
        _pending = Path.Combine(queue, "pending");
        _accepted = Path.Combine(queue, "accepted");
        _rejected = Path.Combine(queue, "rejected");
        foreach (var dir in new[] { _pending, _accepted, _rejected, Path.Combine(queue, "done") }) Directory.CreateDirectory(dir);
        _watcher = new FileSystemWatcher(_pending) { NotifyFilter = NotifyFilters.FileName | NotifyFilters.DirectoryName, IncludeSubdirectories = false };
        _watcher.Created += (_, e) => _files.Writer.TryWrite(e.FullPath);
        _watcher.Renamed += (_, e) => _files.Writer.TryWrite(e.FullPath);
        // An overflowing inotify queue (a burst of thousands of files) loses events: scan again.
        _watcher.Error += (_, _) => Scan();
        _watcher.EnableRaisingEvents = true;
        Scan();
        _worker = Task.Run(Work);
    }

    private void Scan()
    {
        // Every entry, not only files: a directory or a FIFO dropped here is rejected too, not left unseen.
        foreach (var f in Directory.EnumerateFileSystemEntries(_pending)) _files.Writer.TryWrite(f);
    }

    private async Task Work()
    {
        await foreach (var path in _files.Reader.ReadAllAsync())
        {
            try { await TakeAsync(path); }
            catch (Exception e) { Console.Error.WriteLine($"sparky: drop directory: {Path.GetFileName(path)}: {e.Message}"); }
        }
    }

    private async Task TakeAsync(string path)
    {
        var name = Path.GetFileName(path);
        if (name.StartsWith('.') || name.EndsWith(".tmp", StringComparison.Ordinal)) return;
        if (Encoding.UTF8.GetByteCount(name) > NameMax - ReasonSuffix.Length)
        {
            RejectLongName(path, name);
            return;
        }
        byte[] bytes;
        string key;
        switch (DroppedFile.Take(path, _d.Config.MaxBodyBytes))
        {
            case DroppedFile.Read read:
                (bytes, key) = (read.Bytes, read.Key);
                break;
            case DroppedFile.Refused refused:
                Reject(path, refused.Reason);
                return;
            case DroppedFile.Later later:
                Console.Error.WriteLine($"sparky: drop directory: {name}: {later.Why}; trying again");
                await Task.Delay(1000);
                _files.Writer.TryWrite(path);
                return;
            default:
                return; // gone: taken already (the watcher and the scan may both name a file)
        }
        if (_d.Store.IntakeTaskOf(key) is { } taken)
        {
            // Stored before a crash kept it from being moved: it is accepted, once.
            Move(path, Path.Combine(_accepted, taken.Value + ".json"));
            return;
        }
        JsonNode? node;
        if (!System.Text.Unicode.Utf8.IsValid(bytes))
        {
            Reject(path, "the file is not valid UTF-8 JSON");
            return;
        }
        try { node = JsonNode.Parse(bytes, documentOptions: new JsonDocumentOptions { MaxDepth = 64 }); }
        catch (Exception e) when (e is JsonException or ArgumentException or DecoderFallbackException)
        {
            Reject(path, "malformed JSON: " + e.Message);
            return;
        }
        if (JsonChecks.FirstProblem(node) is { } problem)
        {
            Reject(path, problem);
            return;
        }
        var parsed = EnvelopeParser.Parse(node, _d.Engine.KnownClasses);
        if (!parsed.Ok)
        {
            Reject(path, parsed.Error);
            return;
        }
        var sub = parsed.Submission!;
        switch (await _d.Engine.SubmitAsync([sub with { Spec = sub.Spec with { DoneFile = true } }], intakeKey: key))
        {
            case SubmitOutcome.Accepted a:
                Move(path, Path.Combine(_accepted, a.Ids[0].Value + ".json"));
                break;
            case SubmitOutcome.Invalid i: Reject(path, i.Reason); break;
            case SubmitOutcome.Conflict when sub.Id is { } id && _d.Store.Get(id)?.EnvelopeJson == sub.Envelope.ToJsonString():
                // This very file was stored before a crash kept it from being moved: it is accepted, once.
                Move(path, Path.Combine(_accepted, id.Value + ".json"));
                break;
            case SubmitOutcome.Conflict c: Reject(path, c.Reason); break;
            case SubmitOutcome.QueueFull or SubmitOutcome.Unavailable:
                // Leave it in pending/: it is taken at the next start, or after this retry.
                await Task.Delay(1000);
                _files.Writer.TryWrite(path);
                break;
        }
    }

    private const int NameMax = 255;
    private const string ReasonSuffix = ".reason";

    private void Reject(string path, string reason) => Reject(path, Path.GetFileName(path), reason);

    /// <summary>
    /// Moves the entry (whatever it is: a link is moved as the link) to <c>rejected/&lt;as&gt;</c> beside its reason.
    /// The reason first, written whole under a temporary name and renamed: a crash between the two leaves the file in
    /// pending/, to be rejected again, never a rejected file without its reason.
    /// </summary>
    private void Reject(string path, string @as, string reason)
    {
        var target = Path.Combine(_rejected, @as);
        // A directory cannot replace a file nor a file a directory (nor one directory another that holds files):
        // such a name is taken already, and the entry goes beside it under a name of its own.
        if (Posix.LStat(target, out var there) == 0 && Posix.LStat(path, out var moving) == 0
            && (there.Kind == Posix.Kind.Directory || moving.Kind == Posix.Kind.Directory))
        {
            @as = Fit($"{@as}~{DateTime.UtcNow:yyyyMMddHHmmssfff}");
            target = Path.Combine(_rejected, @as);
        }
        var tmp = Path.Combine(_rejected, ".reason.tmp");
        File.WriteAllText(tmp, reason + "\n");
        File.Move(tmp, target + ReasonSuffix, overwrite: true);
        int err = Posix.Rename(path, target);
        if (err != 0 && err != Posix.ENOENT) throw new IOException($"cannot move it to rejected/: {Posix.Describe(err)}");
    }

    /// <summary>A name with no room for <c>.reason</c> beside it (NAME_MAX is 255 bytes) is rejected under a shorter one:
    /// its start, a hash of the whole, and its extension; the reason gives the name it came in under.</summary>
    private void RejectLongName(string path, string name)
    {
        var shorter = Fit(name);
        Reject(path, shorter, $"the name is {Encoding.UTF8.GetByteCount(name)} bytes long: at most {NameMax - ReasonSuffix.Length} leave room for " +
            $"its {ReasonSuffix} file, so it is moved here as {shorter}. The name it came in under: {name}");
    }

    /// <summary>The name, or where it is too long for its <c>.reason</c>, its first bytes + "~" + a hash of it + its extension.</summary>
    private static string Fit(string name)
    {
        const int Room = NameMax - 7; // ".reason"
        if (Encoding.UTF8.GetByteCount(name) <= Room) return name;
        var ext = Path.GetExtension(name);
        if (ext.Length > 16) ext = "";
        var hash = "~" + Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(Encoding.UTF8.GetBytes(name)))[..12];
        var stem = name[..^ext.Length];
        int budget = Room - Encoding.UTF8.GetByteCount(hash + ext);
        var kept = new StringBuilder();
        foreach (var rune in stem.EnumerateRunes())
        {
            if (Encoding.UTF8.GetByteCount(kept.ToString()) + rune.Utf8SequenceLength > budget) break;
            kept.Append(rune.ToString());
        }
        return kept + hash + ext;
    }

    private static void Move(string from, string to)
    {
        try { File.Move(from, to, overwrite: true); }
        catch (FileNotFoundException) { }
    }

    public void Dispose()
    {
        _watcher.Dispose();
        _files.Writer.TryComplete();
        _worker.Wait(TimeSpan.FromSeconds(2));
    }
}
