using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Sparky.Core.Tasks;
using Sparky.Server.Daemon;

namespace Sparky.Server.Intake;

/// <summary>
/// For producers written against the replaced system: a JSON envelope put into <c>&lt;queue_dir&gt;/pending/</c> is
/// taken (inotify, plus one scan at start), stored, then moved to <c>accepted/</c>, or to <c>rejected/</c> beside a
/// <c>.reason</c> file. Files whose name starts with a dot or ends in <c>.tmp</c> are still being written and are left alone.
/// <para>Written in place (the replaced system's clients <c>open(path, "w")</c> and <c>json.dump</c>: no temporary name,
/// no rename), a file is seen before it is whole. So a file is taken as soon as it parses (an object's text parses
/// only once its last brace is there), and a file that does not parse yet is read again, never rejected while it may
/// still be written: it is rejected only once no writer holds it open (inotify's <c>IN_OPEN</c>, <c>IN_MODIFY</c> and
/// <c>IN_CLOSE_*</c> say so) and it has stayed unchanged for <c>drop_settle</c>. A file renamed in is whole: one that does
/// not parse is rejected at once.</para>
/// <para>Each file is taken once: its identity is stored with its task (<see cref="DroppedFile.Read.Key"/>), so a file
/// found again after a kill -9 between the commit and the move is moved, not stored again. Only a regular file is read,
/// never through a link and never past the size limit (<see cref="DroppedFile.Take"/>); anything else (a link, a FIFO,
/// a directory, a file the daemon cannot read, a name too long for its <c>.reason</c>) is rejected with a reason and
/// keeps no other file waiting.</para>
/// </summary>
internal sealed class DropDirectory : IDisposable
{
    private static readonly TimeSpan TickEvery = TimeSpan.FromMilliseconds(200), RetryAfter = TimeSpan.FromSeconds(1);

    /// <summary>What the worker is told: an inotify event, a scan of pending/ (at start, after an overflow, or in place
    /// of inotify where there is none), or a tick to look at the files that wait.</summary>
    private abstract record Item;
    private sealed record Changed(PendingWatch.Change Change) : Item;
    private sealed record ScanNow : Item;
    private sealed record Tick : Item;

    /// <summary>What is known of a file in pending/ that has not been dealt with yet.</summary>
    private sealed class Tracked
    {
        /// <summary>Opens of it not yet closed, as inotify told them (anyone's: a writer's, a reader's, the daemon's own).</summary>
        public int Opens;
        /// <summary>Written to (<c>IN_MODIFY</c>) since its last <c>IN_CLOSE_WRITE</c>: a writer holds it open.</summary>
        public bool Modified;
        /// <summary>Written to since the daemon last read it.</summary>
        public bool Dirty;
        /// <summary>Renamed into pending/ and not written since: whole.</summary>
        public bool RenamedIn;
        /// <summary>Its size, times and inode when last read, and when they last changed (a <see cref="System.Diagnostics.Stopwatch"/> timestamp).</summary>
        public (ulong Size, long Mtime, long Ctime, ulong Inode)? Seen;
        public long ChangedAt, ReadAt;
        /// <summary>Not before this (a Stopwatch timestamp): the daemon was out of descriptors, or the queue was full.</summary>
        public long? RetryAt;
        public bool Writing => Opens > 0 || Modified;
    }

    private readonly SparkyDaemon _d;
    private readonly string _pending, _accepted, _rejected;
    private readonly TimeSpan _settle;
    private readonly ILogger _log;
    private readonly PendingWatch? _watch;
    private int _wd = -1;
    private long _rewatchAt;
    private readonly Channel<Item> _items = Channel.CreateUnbounded<Item>(new UnboundedChannelOptions { SingleReader = true });
    private readonly Dictionary<string, Tracked> _tracked = new(StringComparer.Ordinal);
    /// <summary>Files read and not whole yet (or to be tried again): looked at on every tick.</summary>
    private readonly HashSet<string> _waiting = new(StringComparer.Ordinal);
    private volatile bool _needTicks;
    private int _tickQueued;
    private readonly Timer _ticker;
    private readonly Task _worker;

    public DropDirectory(SparkyDaemon d)
    {
        _d = d;
        var queue = Path.GetFullPath(d.Config.QueueDir);
        _pending = Path.Combine(queue, "pending");
        _accepted = Path.Combine(queue, "accepted");
        _rejected = Path.Combine(queue, "rejected");
        _settle = d.Config.DropSettle;
        _log = d.Logs.CreateLogger<DropDirectory>();
        foreach (var dir in new[] { _pending, _accepted, _rejected, Path.Combine(queue, "done") }) Directory.CreateDirectory(dir);
        // The watch first, then the scan: a file that comes in between is seen twice, never missed.
        _watch = PendingWatch.Start(c => _items.Writer.TryWrite(new Changed(c)), _log, out var problem);
        if (_watch is not null)
        {
            _wd = _watch.Add(_pending, out problem);
            if (_wd < 0) { _watch.Dispose(); _watch = null; }
        }
        if (_watch is null)
            IntakeLog.NoInotify(_log, problem);
        _items.Writer.TryWrite(new ScanNow());
        _ticker = new Timer(_ => OnTimer(), null, TickEvery, TickEvery);
        _worker = Task.Run(Work);
    }

    private long _lastPoll;

    private void OnTimer()
    {
        if ((_watch is null || _watch.Failed) && System.Diagnostics.Stopwatch.GetElapsedTime(_lastPoll) >= TimeSpan.FromSeconds(1))
        {
            _lastPoll = System.Diagnostics.Stopwatch.GetTimestamp();
            _items.Writer.TryWrite(new ScanNow());
        }
        // One tick in the queue at most: a worker busy with a burst is not handed a pile of them.
        if (_needTicks && Interlocked.Exchange(ref _tickQueued, 1) == 0) _items.Writer.TryWrite(new Tick());
    }

    private async Task Work()
    {
        await foreach (var item in _items.Reader.ReadAllAsync())
        {
            try
            {
                switch (item)
                {
                    case Changed c: await OnChangeAsync(c.Change); break;
                    case ScanNow: await ScanAsync(); break;
                    case Tick:
                        Volatile.Write(ref _tickQueued, 0);
                        await OnTickAsync();
                        break;
                }
            }
            catch (Exception e) { IntakeLog.DropFailed(_log, e.Message); }
            _needTicks = _waiting.Count > 0 || _rewatchAt != 0;
        }
    }

    private async Task ScanAsync()
    {
        // Without events (no inotify, or its reader stopped), opens and writes are unknown: the settle bound decides.
        if (_watch is null || _watch.Failed)
            foreach (var t in _tracked.Values) (t.Opens, t.Modified) = (0, false);
        // Every entry, not only files: a directory or a FIFO dropped here is rejected too, not left unseen.
        var present = new HashSet<string>(StringComparer.Ordinal);
        foreach (var path in Directory.EnumerateFileSystemEntries(_pending))
        {
            var name = Path.GetFileName(path);
            present.Add(name);
            if (_tracked.ContainsKey(name) && _waiting.Contains(name)) continue; // the ticks look at it
            await TryAsync(name, Track(name));
        }
        // Names whose end an overflow hid.
        foreach (var gone in _tracked.Keys.Where(n => !present.Contains(n)).ToList()) Forget(gone);
    }

    private async Task OnChangeAsync(PendingWatch.Change c)
    {
        if (c.Name is null)
        {
            if ((c.Mask & Posix.IN_Q_OVERFLOW) != 0)
            {
                // Events were lost: what was known of opens and writes may be wrong. Forget it (the settle bound
                // still holds for each file) and look at every entry again.
                foreach (var t in _tracked.Values) (t.Opens, t.Modified, t.RenamedIn) = (0, false, false);
                await ScanAsync();
            }
            else if (c.Wd == _wd && (c.Mask & (Posix.IN_IGNORED | Posix.IN_DELETE_SELF | Posix.IN_MOVE_SELF)) != 0)
                await RewatchAsync(moved: (c.Mask & Posix.IN_MOVE_SELF) != 0);
            return;
        }
        var name = c.Name;
        if (Skipped(name)) return;
        uint m = c.Mask;
        if ((m & (Posix.IN_MOVED_FROM | Posix.IN_DELETE)) != 0)
        {
            Forget(name);
            return;
        }
        if ((m & Posix.IN_MOVED_TO) != 0)
        {
            // A new file under this name, whole as it arrives.
            Forget(name);
            var t = Track(name);
            t.RenamedIn = true;
            await TryAsync(name, t);
            return;
        }
        var tracked = Track(name);
        if ((m & Posix.IN_OPEN) != 0) tracked.Opens++;
        if ((m & Posix.IN_MODIFY) != 0) (tracked.Modified, tracked.Dirty, tracked.RenamedIn) = (true, true, false);
        if ((m & Posix.IN_CLOSE_NOWRITE) != 0) tracked.Opens = Math.Max(0, tracked.Opens - 1);
        if ((m & Posix.IN_CLOSE_WRITE) != 0)
        {
            (tracked.Opens, tracked.Modified) = (Math.Max(0, tracked.Opens - 1), false);
            await TryAsync(name, tracked);
        }
        else if ((m & Posix.IN_CREATE) != 0) await TryAsync(name, tracked); // whole already (a link), or not a file at all
    }

    private async Task OnTickAsync()
    {
        long now = System.Diagnostics.Stopwatch.GetTimestamp();
        if (_rewatchAt != 0 && now >= _rewatchAt) await RewatchAsync(moved: false);
        foreach (var name in _waiting.ToList())
        {
            if (!_tracked.TryGetValue(name, out var t)) { _waiting.Remove(name); continue; }
            if (t.RetryAt is { } at)
            {
                if (now < at) continue;
                t.RetryAt = null;
                await TryAsync(name, t);
            }
            // Written to since it was read: it may be whole now (a writer that keeps it open once done, say).
            else if (t.Dirty && System.Diagnostics.Stopwatch.GetElapsedTime(t.ReadAt) >= TickEvery) await TryAsync(name, t);
            // No writer, and the bound has passed: read once more, then take it or reject it.
            else if (!t.Writing && System.Diagnostics.Stopwatch.GetElapsedTime(t.ChangedAt) >= _settle) await TryAsync(name, t);
        }
    }

    /// <summary>pending/ was deleted or moved away: make it again and watch the new one (once a second until that works).</summary>
    private async Task RewatchAsync(bool moved)
    {
        if (_watch is null) return;
        if (moved && _wd >= 0) _watch.Remove(_wd); // the watch follows the moved directory; pending/ is the path
        _wd = -1;
        try { Directory.CreateDirectory(_pending); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            IntakeLog.PendingGone(_log, e.Message);
        }
        _wd = _watch.Add(_pending, out var problem);
        if (_wd < 0)
        {
            if (_rewatchAt == 0) IntakeLog.CannotWatch(_log, problem);
            _rewatchAt = System.Diagnostics.Stopwatch.GetTimestamp() + System.Diagnostics.Stopwatch.Frequency;
            return;
        }
        _rewatchAt = 0;
        await ScanAsync();
    }

    private Tracked Track(string name)
    {
        if (!_tracked.TryGetValue(name, out var t)) _tracked[name] = t = new Tracked { ChangedAt = System.Diagnostics.Stopwatch.GetTimestamp() };
        return t;
    }

    private void Forget(string name)
    {
        _tracked.Remove(name);
        _waiting.Remove(name);
    }

    private static bool Skipped(string name) => name.StartsWith('.') || name.EndsWith(".tmp", StringComparison.Ordinal);

    /// <summary>Reads the file and takes it, rejects it, or leaves it waiting (not whole yet, or to be tried again).</summary>
    private async Task TryAsync(string name, Tracked t)
    {
        if (Skipped(name)) { Forget(name); return; }
        bool waits;
        try { waits = await TakeAsync(name, t); }
        catch (Exception e)
        {
            // The file system's fault (accepted/ or rejected/ cannot take it): one line, and the file stays in pending/
            // until an event or the next start names it again, rather than a line per tick.
            IntakeLog.FileFailed(_log, name, e.Message);
            waits = false;
        }
        if (waits)
        {
            if (_waiting.Add(name)) IntakeLog.NotWholeYet(_log, name, _settle.TotalSeconds.ToString("0.###", System.Globalization.CultureInfo.InvariantCulture));
        }
        else
        {
            if (_waiting.Contains(name)) IntakeLog.DealtWithAfterWaiting(_log, name);
            Forget(name);
        }
    }

    /// <summary>True while the file waits in pending/; false once it is dealt with (taken, rejected, gone).</summary>
    private async Task<bool> TakeAsync(string name, Tracked t)
    {
        var path = Path.Combine(_pending, name);
        if (Encoding.UTF8.GetByteCount(name) > NameMax - ReasonSuffix.Length)
        {
            RejectLongName(path, name);
            return false;
        }
        byte[] bytes;
        string key;
        t.ReadAt = System.Diagnostics.Stopwatch.GetTimestamp();
        t.Dirty = false;
        switch (DroppedFile.Take(path, _d.Config.MaxBodyBytes))
        {
            case DroppedFile.Read read:
                (bytes, key) = (read.Bytes, read.Key);
                var seen = (read.Entry.Size, read.Entry.MtimeNs, read.Entry.CtimeNs, read.Entry.Inode);
                if (t.Seen != seen) (t.Seen, t.ChangedAt) = (seen, t.ReadAt);
                break;
            case DroppedFile.Refused refused:
                Reject(path, refused.Reason);
                return false;
            case DroppedFile.Later later:
                IntakeLog.TryingAgain(_log, name, later.Why);
                t.RetryAt = System.Diagnostics.Stopwatch.GetTimestamp() + (long)(RetryAfter.TotalSeconds * System.Diagnostics.Stopwatch.Frequency);
                return true;
            default:
                return false; // gone: taken already (an event and a scan may both name a file)
        }
        if (_d.Store.IntakeTaskOf(key) is { } taken)
        {
            // Stored before a crash kept it from being moved: it is accepted, once.
            Move(path, Path.Combine(_accepted, taken.Value + ".json"));
            return false;
        }
        JsonNode? node;
        string? incomplete = null;
        if (bytes.Length == 0) incomplete = "the file is empty, not a JSON envelope";
        else if (!System.Text.Unicode.Utf8.IsValid(bytes)) incomplete = "the file is not valid UTF-8 JSON";
        node = null;
        if (incomplete is null)
        {
            try { node = JsonNode.Parse(bytes, documentOptions: new JsonDocumentOptions { MaxDepth = 64 }); }
            catch (Exception e) when (e is JsonException or ArgumentException or DecoderFallbackException) { incomplete = "malformed JSON: " + e.Message; }
        }
        if (incomplete is not null)
        {
            // Whole (renamed in, no writer since): rejected at once. Else it may be half-written: rejected only once
            // no writer holds it and it has not changed for the bound.
            if (t.RenamedIn && !t.Writing)
            {
                Reject(path, incomplete);
                return false;
            }
            if (t.Writing || System.Diagnostics.Stopwatch.GetElapsedTime(t.ChangedAt) < _settle) return true;
            Reject(path, $"{incomplete} (it was written in place, and stayed so for {_settle.TotalSeconds:0.###} s with no writer holding it open)");
            return false;
        }
        if (JsonChecks.FirstProblem(node) is { } problem)
        {
            Reject(path, problem);
            return false;
        }
        var parsed = EnvelopeParser.Parse(node, _d.Engine.KnownClasses, _d.Engine.CompatDoor);
        if (!parsed.Ok)
        {
            Reject(path, parsed.Error);
            return false;
        }
        var sub = parsed.Submission!;
        switch (await _d.Engine.SubmitAsync([sub with { Spec = sub.Spec with { DoneFile = true } }], intakeKey: key))
        {
            case SubmitOutcome.Accepted a:
                Move(path, Path.Combine(_accepted, a.Ids[0].Value + ".json"));
                return false;
            case SubmitOutcome.Invalid i: Reject(path, i.Reason); return false;
            // A file stored before a crash kept it from being moved comes back as Accepted: the store's insert takes the
            // same envelope under its taken id as that task (an idempotent submit). A conflict is another envelope.
            case SubmitOutcome.Conflict c: Reject(path, c.Reason); return false;
            case SubmitOutcome.QueueFull or SubmitOutcome.Unavailable:
                // Left in pending/: taken after this retry, or at the next start.
                t.RetryAt = System.Diagnostics.Stopwatch.GetTimestamp() + (long)(RetryAfter.TotalSeconds * System.Diagnostics.Stopwatch.Frequency);
                return true;
            default:
                return false;
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
        _ticker.Dispose();
        _watch?.Dispose();
        _items.Writer.TryComplete();
        _worker.Wait(TimeSpan.FromSeconds(2));
    }
}
