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
        _watcher = new FileSystemWatcher(_pending) { NotifyFilter = NotifyFilters.FileName, IncludeSubdirectories = false };
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
        foreach (var f in Directory.EnumerateFiles(_pending)) _files.Writer.TryWrite(f);
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
        if (name.StartsWith('.') || name.EndsWith(".tmp", StringComparison.Ordinal) || !File.Exists(path)) return;
        var info = new FileInfo(path);
        if (info.Length > _d.Config.MaxBodyBytes)
        {
            Reject(path, $"the file is {info.Length} bytes; at most {_d.Config.MaxBodyBytes} are accepted");
            return;
        }
        JsonNode? node;
        var bytes = await File.ReadAllBytesAsync(path);
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
        switch (await _d.Engine.SubmitAsync([sub with { Spec = sub.Spec with { DoneFile = true } }]))
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

    private void Reject(string path, string reason)
    {
        var name = Path.GetFileName(path);
        Move(path, Path.Combine(_rejected, name));
        File.WriteAllText(Path.Combine(_rejected, name + ".reason"), reason + "\n");
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
