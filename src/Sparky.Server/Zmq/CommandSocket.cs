using Microsoft.Extensions.Logging;
using System.Buffers;
using System.Text.Json.Nodes;
using NetMQ;
using Sparky.Core.Tasks;
using Sparky.Server.Daemon;
using Sparky.Server.Zmq.Transport;
using Sparky.Workers.Protocol;

namespace Sparky.Server.Zmq;

/// <summary>
/// The ZeroMQ command channel: a ROUTER socket taking <c>[identity][empty][body]</c> and answering the same way.
/// One thread owns the socket (libzmq's where it is installed, else NetMQ's: see <see cref="Routers"/>). Requests
/// that need the store or the engine run elsewhere and hand their reply back through a queue that wakes that thread,
/// so it never waits on them; a ping (and the counters) are answered on the socket thread itself. Bad input gets an
/// <c>error</c> reply where one can be routed, and never ends the thread.
/// </summary>
public sealed class CommandSocket : IDisposable, IRouterHandler
{
    /// <summary>Requests taken and not yet answered, per connection and in all: past either, a request gets 429 at
    /// once. A client that sends and never reads cannot make the daemon queue work (and replies) for it without end.</summary>
    public const int PerPeerLimit = 64, TotalLimit = 1024;
    /// <summary>Replies queued for one peer that has not read them (beyond what the kernel's socket buffers hold):
    /// past this a reply is dropped, and the peer is <em>stalled</em> for <see cref="StallMs"/>: its reads (list, status
    /// of a task) meanwhile are dropped, not computed. So a client that never reads costs a bounded amount of memory and work.</summary>
    public const int SendHighWatermark = 128, StallMs = 1000;
    /// <summary>The most bytes of tasks one <c>list</c> reply carries: a longer page is cut (its <c>next_cursor</c> goes on from there).</summary>
    public const int MaxListReplyBytes = 1 << 20;

    private readonly SparkyDaemon _d;
    private readonly ILogger _log;
    private readonly IRouter _router;
    private readonly System.Collections.Concurrent.ConcurrentQueue<Outgoing> _replies = new();
    private readonly long _maxBody;
    private readonly ArrayBufferWriter<byte> _buffer = new(4096); // the socket thread's
    [ThreadStatic] private static ArrayBufferWriter<byte>? t_buffer;
    private int _inFlight;
    private volatile bool _stopping;
    private readonly ZmqAuth? _auth;
    private readonly string? _eventsKey;
    /// <summary>Per connection (routing id): requests taken and not yet answered. The socket thread's.</summary>
    private readonly Dictionary<byte[], int> _perPeer = new(ByteArrayComparer.Instance);
    private int _taken; // the socket thread's: the sum of _perPeer
    /// <summary>List and status-by-id read the store and build JSON: at most this many at once, so a flood of them
    /// leaves threads for the HTTP API (and everything else) instead of filling the thread pool.</summary>
    private readonly SemaphoreSlim _reads = new(Math.Max(1, Environment.ProcessorCount / 2));
    /// <summary>List and status requests run on threads of their own, not the thread pool: a flood of them queued on
    /// the pool (up to the in-flight bound) put every HTTP request behind it (a /healthz waited up to a second).</summary>
    private readonly System.Collections.Concurrent.BlockingCollection<Work> _readQueue = new();
    private readonly Thread[] _readers;
    private long _refused, _unauthenticated;
    /// <summary>Peers whose replies could not be queued (over the high-water mark): until when their requests are dropped.</summary>
    private readonly System.Collections.Concurrent.ConcurrentDictionary<byte[], long> _stalled = new(ByteArrayComparer.Instance);
    private long _nextPrune;

    /// <summary>Requests answered 429 (too many in flight), and messages dropped unanswered for want of a listed key.</summary>
    public long Refused => Interlocked.Read(ref _refused);
    public long Unauthenticated => Interlocked.Read(ref _unauthenticated);

    public string Endpoint => _router.Endpoint;

    /// <summary>A reply computed off the socket thread: the peer's identity and the encoded body, its first
    /// <paramref name="Length"/> bytes (a buffer from <see cref="ArrayPool{T}.Shared"/> where <paramref name="Pooled"/>).
    /// A null body: nothing to send (the peer stalled).</summary>
    /// <param name="Counted">An answer to a request counted in <see cref="_perPeer"/> (not a message the engine sends unasked).</param>
    private readonly record struct Outgoing(byte[] Identity, byte[]? Body, int Length, bool Counted = false, bool Pooled = false);

    private CommandSocket(SparkyDaemon d, IRouter router, ZmqAuth? auth, string? eventsKey)
    {
        _d = d;
        _log = d.Logs.CreateLogger<CommandSocket>();
        _auth = auth;
        _eventsKey = eventsKey;
        _router = router;
        _maxBody = d.Config.MaxBodyBytes;
        _readers = new Thread[Math.Max(1, Environment.ProcessorCount / 2)];
        for (int i = 0; i < _readers.Length; i++)
        {
            _readers[i] = new Thread(() =>
            {
                // Each read runs to its end here: the semaphore is free for as many readers as there are threads.
                foreach (var w in _readQueue.GetConsumingEnumerable()) w.RunAsync().GetAwaiter().GetResult();
            }) { IsBackground = true, Name = "sparky-zmq-reads" };
            _readers[i].Start();
        }
    }

    /// <summary>Binds (port 0: a free port; with CURVE where a certificate is given) and starts the socket thread. Throws InvalidOperationException with one line if it can't bind.</summary>
    /// <param name="eventsKey">The event socket's own public key, told to authenticated clients in their ping's answer.</param>
    public static CommandSocket Start(SparkyDaemon d, string endpoint, NetMQCertificate? curve = null, ZmqAuth? auth = null, string? eventsKey = null)
    {
        var options = new RouterOptions(
            ReceiveHighWatermark: 10_000,
            // With RouterMandatory on (both transports), a reply to a peer over this fails the send instead of
            // vanishing, so the peer can be stalled.
            SendHighWatermark: SendHighWatermark,
            // Up to twice the limit is read and answered with 413; past that ZeroMQ drops the peer's connection,
            // so a huge message never sits in memory.
            MaxMessageSize: 2 * d.Config.MaxBodyBytes,
            Curve: curve); // a peer without the server's public key never completes the handshake
        var router = Routers.Bind(endpoint, options, out var why);
        var s = new CommandSocket(d, router, auth, eventsKey);
        if (why is null) ZmqLog.CommandOnLibZmq(s._log, router.Library);
        else ZmqLog.CommandOnNetMq(s._log, why);
        router.Start(s);
        return s;
    }

    // ---------- the socket thread ----------

    // The router logs what the handler throws and goes on: bad input never ends the socket thread.
    void IRouterHandler.OnError(Exception e) => ZmqLog.CommandSocketFailed(_log, e.GetType().Name, e.Message);

    void IRouterHandler.OnWake() => SendQueued();

    void IRouterHandler.OnMessage(ReadOnlySpan<byte> identity, int frames, int delimiterSize, ReadOnlyMemory<byte> body)
    {
        // Where keys are checked, a peer that has not shown one gets no answer at all, not even an error.
        bool answerErrors = _auth is null;
        if (frames != 3 || delimiterSize != 0)
        {
            string why = frames == 3
                ? "the frame before the body must be empty (the delimiter REQ sends; a DEALER must send it too)"
                : $"expected an empty delimiter frame then one body frame; got {frames - 1} frame(s)";
            if (answerErrors) ReplyNow(identity, Error(default, 400, why));
            return;
        }
        if (body.Length > _maxBody)
        {
            if (answerErrors) ReplyNow(identity, Error(default, 413, $"the body is {body.Length} bytes; at most {_maxBody} are accepted"));
            return;
        }
        var frame = body;
        if (Wire.TryRead(frame, out var req, out var corr) is { } problem)
        {
            if (answerErrors) ReplyNow(identity, Error(corr.Span, 400, problem));
            return;
        }
        ZmqPeer? peer = null;
        if (_auth is not null)
        {
            var (key, proof) = Wire.ReadAuth(req.Auth);
            peer = _auth.Check(key, proof);
            if (peer is null) { Interlocked.Increment(ref _unauthenticated); return; }
            // A worker key cannot submit, a client key cannot pose as a worker; both may ping.
            bool workerMessage = Wire.IsWorkerType(req.Type);
            if (req.Type != RequestType.Ping && workerMessage != (peer.Role == PeerRole.Worker))
            {
                ReplyNow(identity, Error(req.Corr.Span, 403, $"a {(peer.Role == PeerRole.Worker ? "worker" : "client")} key ('{peer.Name}') may not send {Wire.TypeNames[(int)req.Type]}"));
                return;
            }
        }
        switch (req.Type)
        {
            case RequestType.Ping:
                _buffer.ResetWrittenCount();
                // An authenticated client learns the event socket's key here (a worker has no use for it).
                Wire.WritePong(_buffer, req.Corr.Span, peer?.Role == PeerRole.Client ? _eventsKey : null);
                ReplyNow(identity, _buffer.WrittenSpan);
                return;
            case RequestType.Status when IsEmpty(req.Body):
                // The counters live in memory: no need to leave the socket thread.
                ReplyNow(identity, Ok(req, Commands.QueueStatus(_d)));
                return;
            case var t when Wire.IsWorkerType(t):
                // A worker's message goes to the engine's loop, which owns every task; its answers come back by Send.
                // Read into its record here, off the loop: the engine sees only well-formed messages.
                try
                {
                    var check = new MessagePack.MessagePackReader(req.Body);
                    if (!req.Body.IsEmpty) MsgPackJson.Check(ref check);
                }
                catch (Exception ex) when (ex is MsgPackJsonException or MessagePack.MessagePackSerializationException or EndOfStreamException)
                {
                    ReplyNow(identity, Error(req.Corr.Span, 400, "body: " + ex.Message));
                    return;
                }
                if (WorkerWire.TryReadFromWorker(Wire.TypeNames[(int)t], req.Body, out var message) is { } unreadable)
                {
                    ReplyNow(identity, Error(req.Corr.Span, 400, $"{Wire.TypeNames[(int)t]}: {unreadable}"));
                    return;
                }
                _d.Engine.OnWorkerMessage(identity.ToArray(), req.Type, req.Corr.ToArray(), message, peer?.PublicKey);
                return;
            default:
                if (_stopping) { ReplyNow(identity, Error(req.Corr.Span, 503, "the daemon is stopping")); return; }
                // Copies: the frame's buffer is reused when this returns.
                var id = identity.ToArray();
                if (req.Type is RequestType.List or RequestType.Status && IsStalled(id)) { Interlocked.Increment(ref _refused); return; } // it reads nothing: no work for it
                int mine = _perPeer.GetValueOrDefault(id);
                if (mine >= PerPeerLimit || _taken >= TotalLimit)
                {
                    Interlocked.Increment(ref _refused);
                    ReplyNow(identity, Error(req.Corr.Span, 429, mine >= PerPeerLimit
                        ? $"{PerPeerLimit} requests of this connection are in flight: read the replies before sending more"
                        : $"{TotalLimit} requests are in flight on the daemon: try again shortly"));
                    return;
                }
                _perPeer[id] = mine + 1;
                _taken++;
                var work = new Work(this, id, req.Type, req.Corr.ToArray(), req.Body.ToArray());
                Interlocked.Increment(ref _inFlight);
                if (req.Type is RequestType.List or RequestType.Status) _readQueue.Add(work);
                else ThreadPool.UnsafeQueueUserWorkItem(static w => _ = w.RunAsync(), work, preferLocal: false);
                return;
        }
    }

    /// <summary>No body, nil, or an empty map.</summary>
    private static bool IsEmpty(ReadOnlyMemory<byte> body) =>
        body.IsEmpty || (body.Length == 1 && body.Span[0] is 0xc0 or 0x80);

    private ReadOnlySpan<byte> Ok(Request req, JsonNode body)
    {
        _buffer.ResetWrittenCount();
        Wire.WriteOk(_buffer, req.Type, req.Corr.Span, body);
        return _buffer.WrittenSpan;
    }

    private ReadOnlySpan<byte> Error(ReadOnlySpan<byte> corr, int status, string detail)
    {
        _buffer.ResetWrittenCount();
        Wire.WriteError(_buffer, corr, status, detail);
        return _buffer.WrittenSpan;
    }

    /// <summary>Replies on the socket thread. A send never blocks: a peer over its high-water mark fails it (and
    /// is stalled); one that is gone loses its reply.</summary>
    private void ReplyNow(ReadOnlySpan<byte> identity, ReadOnlySpan<byte> reply)
    {
        if (_router.Send(identity, reply) == SendResult.Full) Stall(identity.ToArray());
    }

    /// <summary>Sends what other threads queued. All of it: one wake-up may stand for many replies.</summary>
    private void SendQueued()
    {
        while (_replies.TryDequeue(out var o))
        {
            if (o.Counted) Answered(o.Identity);
            if (o.Body is null) continue; // dropped: its peer was stalled
            try { ReplyNow(o.Identity, o.Body.AsSpan(0, o.Length)); }
            finally { if (o.Pooled) ArrayPool<byte>.Shared.Return(o.Body); }
        }
    }

    private void Stall(byte[] identity) => _stalled[identity] = Environment.TickCount64 + StallMs;

    /// <summary>Whether a peer's replies are being dropped (from any thread). Forgets peers whose stall ended, now and then.</summary>
    private bool IsStalled(byte[] identity)
    {
        long now = Environment.TickCount64;
        if (_stalled.IsEmpty) return false;
        if (now > Volatile.Read(ref _nextPrune))
        {
            Volatile.Write(ref _nextPrune, now + 10 * StallMs);
            foreach (var (k, until) in _stalled) if (until <= now) _stalled.TryRemove(k, out _);
        }
        return _stalled.TryGetValue(identity, out var u) && u > now;
    }

    /// <summary>A counted request's answer is on its way (or dropped by ZeroMQ if the peer reads nothing): its slot frees.</summary>
    private void Answered(byte[] identity)
    {
        _taken--;
        if (!_perPeer.TryGetValue(identity, out int n)) return;
        if (n <= 1) _perPeer.Remove(identity);
        else _perPeer[identity] = n - 1;
    }

    private sealed class ByteArrayComparer : IEqualityComparer<byte[]>
    {
        public static readonly ByteArrayComparer Instance = new();
        public bool Equals(byte[]? a, byte[]? b) => a.AsSpan().SequenceEqual(b);
        public int GetHashCode(byte[] a)
        {
            var h = new HashCode();
            h.AddBytes(a);
            return h.ToHashCode();
        }
    }

    // ---------- off the socket thread ----------

    private sealed class Work(CommandSocket s, byte[] identity, RequestType type, byte[] corr, byte[] body)
    {
        public async Task RunAsync()
        {
            if (type is RequestType.List or RequestType.Status && s.IsStalled(identity)) { s.Post(new Outgoing(identity, null, 0, Counted: true)); return; } // its reply would be dropped
            Outgoing reply;
            try
            {
                var a = await AnswerAsync();
                if (ReferenceEquals(a.Detail, Dropped.Detail)) { s.Post(new Outgoing(identity, null, 0, Counted: true)); return; }
                reply = Encode(a);
            }
            catch (Exception e)
            {
                ZmqLog.RequestFailed(s._log, Wire.TypeNames[(int)type], e);
                reply = Encode(Answer.Error(500, "internal error"));
            }
            s.Post(reply);
        }

        private async Task<Answer> AnswerAsync()
        {
            Answer a;
            try { a = await s.ExecuteAsync(type, body, identity); }
            catch (Exception e) when (e is MsgPackJsonException or MessagePack.MessagePackSerializationException or EndOfStreamException)
            {
                a = Answer.Error(400, "body: " + e.Message);
            }
            catch (Exception e)
            {
                ZmqLog.RequestFailed(s._log, Wire.TypeNames[(int)type], e);
                a = Answer.Error(500, "internal error: " + e.Message.Split('\n')[0]);
            }
            return a;
        }

        /// <summary>The reply in a pooled buffer, which the socket thread returns once it is sent.</summary>
        private Outgoing Encode(Answer a)
        {
            var buffer = t_buffer ??= new ArrayBufferWriter<byte>(4096);
            buffer.ResetWrittenCount();
            if (a.Ok) Wire.WriteOk(buffer, type, corr, a.Body);
            else Wire.WriteError(buffer, corr, a.Status, a.Detail ?? "");
            var pooled = ArrayPool<byte>.Shared.Rent(buffer.WrittenCount);
            buffer.WrittenSpan.CopyTo(pooled);
            return new Outgoing(identity, pooled, buffer.WrittenCount, Counted: true, Pooled: true);
        }
    }

    private async Task<Answer> ExecuteAsync(RequestType type, byte[] raw, byte[] identity)
    {
        var body = Wire.ReadBody(raw);
        if (JsonChecks.FirstProblem(body) is { } problem) return Answer.Error(400, problem);
        var args = body as JsonObject;
        if (type != RequestType.Submit && body is not null && args is null) return Answer.Error(400, "body must be a map");
        switch (type)
        {
            case RequestType.Submit:
                return await Commands.SubmitAsync(_d, body);
            case RequestType.Status:
                if (args?["id"] is null) return Answer.Of(Commands.QueueStatus(_d));
                if (Text(args, "id", out var sid) is { } bad) return bad;
                await _reads.WaitAsync();
                try { return IsStalled(identity) ? Dropped : Commands.Get(_d, sid!); }
                finally { _reads.Release(); }
            case RequestType.Cancel:
                if (args?["id"] is null) return Answer.Error(400, "cancel needs {\"id\": \"<task id>\"}");
                return Text(args, "id", out var cid) is { } bad2 ? bad2 : await Commands.CancelAsync(_d, cid!);
            case RequestType.List:
                if (Text(args, "state", out var state) is { } e1) return e1;
                if (Text(args, "class", out var cls) is { } e2) return e2;
                if (Text(args, "order", out var order) is { } e3) return e3;
                if (Integer(args, "limit", out var limit) is { } e4) return e4;
                if (Integer(args, "cursor", out var cursor) is { } e5) return e5;
                if (Text(args, "q", out var q) is { } e6) return e6;
                await _reads.WaitAsync();
                try { return IsStalled(identity) ? Dropped : BoundedList(state, cls, q, limit, cursor, order); }
                finally { _reads.Release(); }
            default:
                return Answer.Error(400, $"{Wire.TypeNames[(int)type]} is not handled here");
        }
    }

    /// <summary>What a read comes to when its peer stalled while it waited for its turn: nothing is sent.</summary>
    private static readonly Answer Dropped = Answer.Error(429, "stalled");

    /// <summary>A page of tasks whose reply stays under <see cref="MaxListReplyBytes"/>: a page over it is asked again
    /// at half the size (rare: tasks with very long commands or environments).</summary>
    private Answer BoundedList(string? state, string? cls, string? q, long? limit, long? cursor, string? order)
    {
        var a = Commands.List(_d, state, cls, q, limit, cursor, order);
        long lim = Math.Clamp(limit ?? TaskQuery.DefaultLimit, 1, TaskQuery.MaxLimit);
        var buffer = t_buffer ??= new ArrayBufferWriter<byte>(4096);
        while (a.Ok && lim > 1)
        {
            buffer.ResetWrittenCount();
            MessagePack.MessagePackWriter w = new(buffer);
            MsgPackJson.Write(ref w, a.Body);
            w.Flush();
            if (buffer.WrittenCount <= MaxListReplyBytes) break;
            lim /= 2;
            a = Commands.List(_d, state, cls, q, lim, cursor, order);
        }
        return a;
    }

    private static Answer? Text(JsonObject? args, string key, out string? value)
    {
        value = null;
        if (args?[key] is not { } node) return null;
        if (node is JsonValue v && v.TryGetValue(out string? s)) { value = s; return null; }
        return Answer.Error(400, $"{key} must be a string");
    }

    private static Answer? Integer(JsonObject? args, string key, out long? value)
    {
        value = null;
        if (args?[key] is not { } node) return null;
        if (node is JsonValue v && v.TryGetValue(out long l)) { value = l; return null; }
        return Answer.Error(400, $"{key} must be an integer");
    }

    /// <summary>Sends a message to a peer (a worker) from any thread; dropped if the socket is gone.</summary>
    public void Send(byte[] identity, byte[] body)
    {
        if (_disposed) return;
        _replies.Enqueue(new Outgoing(identity, body, body.Length));
        _router.Wake();
    }

    private void Post(Outgoing o)
    {
        try
        {
            if (_disposed) return; // stopped meanwhile: no one to answer
            _replies.Enqueue(o);
            _router.Wake();
        }
        finally { Interlocked.Decrement(ref _inFlight); }
    }

    private volatile bool _disposed;

    public void Dispose()
    {
        _stopping = true;
        // Requests already taken (a submit being committed) get their answer out, within a bound.
        var deadline = Environment.TickCount64 + 2000;
        while ((Volatile.Read(ref _inFlight) > 0 || !_replies.IsEmpty) && Environment.TickCount64 < deadline) Thread.Sleep(5);
        _disposed = true;
        _readQueue.CompleteAdding();
        _router.Dispose(); // waits for the socket thread sending the last replies
    }
}
