using System.Buffers;
using System.Text.Json.Nodes;
using NetMQ;
using NetMQ.Sockets;
using Sparky.Core.Tasks;
using Sparky.Server.Daemon;

namespace Sparky.Server.Zmq;

/// <summary>
/// The ZeroMQ command channel: a ROUTER socket taking <c>[identity][empty][body]</c> and answering the same way.
/// One thread (a NetMQPoller's) owns the socket. Requests that need the store or the engine run elsewhere and
/// hand their reply back through a <see cref="NetMQQueue{T}"/>, so the socket thread never waits on them; a ping
/// (and the counters) are answered on the socket thread itself. Bad input gets an <c>error</c> reply where one can
/// be routed, and never ends the thread.
/// </summary>
public sealed class CommandSocket : IDisposable
{
    /// <summary>How many messages one wake-up handles before replies queued meanwhile get their turn.</summary>
    private const int Batch = 256;

    private readonly SparkyDaemon _d;
    private readonly RouterSocket _router;
    private readonly NetMQQueue<Outgoing> _replies = new();
    private readonly NetMQPoller _poller;
    private readonly long _maxBody;
    private readonly ArrayBufferWriter<byte> _buffer = new(4096); // the socket thread's
    [ThreadStatic] private static ArrayBufferWriter<byte>? t_buffer;
    private int _inFlight;
    private volatile bool _stopping;

    public string Endpoint { get; }

    /// <summary>A reply computed off the socket thread: the peer's identity and the encoded body.</summary>
    private readonly record struct Outgoing(byte[] Identity, byte[] Body);

    private CommandSocket(SparkyDaemon d, RouterSocket router, string endpoint)
    {
        _d = d;
        _router = router;
        Endpoint = endpoint;
        _maxBody = d.Config.MaxBodyBytes;
        _router.ReceiveReady += OnRequests;
        _replies.ReceiveReady += OnReplies;
        _poller = new NetMQPoller { _router, _replies };
    }

    /// <summary>Binds (port 0: a free port; with CURVE where a certificate is given) and starts the socket thread. Throws InvalidOperationException with one line if it can't bind.</summary>
    public static CommandSocket Start(SparkyDaemon d, string endpoint, NetMQCertificate? curve = null)
    {
        var router = new RouterSocket();
        try
        {
            router.Options.Linger = TimeSpan.Zero;
            router.Options.ReceiveHighWatermark = 10_000;
            router.Options.SendHighWatermark = 10_000;
            // Up to twice the limit is read and answered with 413; past that ZeroMQ drops the peer's connection,
            // so a huge message never sits in memory.
            router.Options.MaxMsgSize = 2 * d.Config.MaxBodyBytes;
            CurveKeys.Serve(router, curve); // a peer without the server's public key never completes the handshake
            var bound = ZmqBind.Bind(router, endpoint, "command");
            var s = new CommandSocket(d, router, bound);
            s._poller.RunAsync("sparky-zmq-commands", isBackgroundThread: true);
            return s;
        }
        catch
        {
            router.Dispose();
            throw;
        }
    }

    // ---------- the socket thread ----------

    // An exception out of a poller handler would end the poller thread: never let one out.
    private void OnRequests(object? sender, NetMQSocketEventArgs e)
    {
        try
        {
            for (int i = 0; i < Batch; i++)
                if (!ReceiveOne()) return;
        }
        catch (Exception ex) { Log(ex); }
    }

    private void OnReplies(object? sender, NetMQQueueEventArgs<Outgoing> e)
    {
        try { SendQueued(); }
        catch (Exception ex) { Log(ex); }
    }

    private static void Log(Exception e) => Console.Error.WriteLine($"sparky: zmq command socket: {e.GetType().Name}: {e.Message}");

    /// <summary>Takes one whole message off the socket, or returns false if none is waiting.</summary>
    private bool ReceiveOne()
    {
        var identity = new Msg();
        identity.InitEmpty();
        if (!_router.TryReceive(ref identity, TimeSpan.Zero)) { identity.Close(); return false; }
        Msg delimiter = default, body = default;
        int frames = 1;
        bool more = identity.HasMore;
        while (more)
        {
            var m = new Msg();
            m.InitEmpty();
            if (!_router.TryReceive(ref m, TimeSpan.Zero)) { m.Close(); break; } // a message arrives whole; not expected
            more = m.HasMore;
            if (++frames == 2) delimiter = m;
            else if (frames == 3) body = m;
            else m.Close();
        }
        try { Handle(ref identity, ref delimiter, ref body, frames); }
        finally
        {
            if (identity.IsInitialised) identity.Close();
            if (delimiter.IsInitialised) delimiter.Close();
            if (body.IsInitialised) body.Close();
        }
        return true;
    }

    private void Handle(ref Msg identity, ref Msg delimiter, ref Msg body, int frames)
    {
        if (frames != 3 || delimiter.Size != 0)
        {
            string why = frames == 3
                ? "the frame before the body must be empty (the delimiter REQ sends; a DEALER must send it too)"
                : $"expected an empty delimiter frame then one body frame; got {frames - 1} frame(s)";
            ReplyNow(ref identity, Error(default, 400, why));
            return;
        }
        if (body.Size > _maxBody)
        {
            ReplyNow(ref identity, Error(default, 413, $"the body is {body.Size} bytes; at most {_maxBody} are accepted"));
            return;
        }
        var frame = body.SliceAsMemory();
        if (Wire.TryRead(frame, out var req, out var corr) is { } problem)
        {
            ReplyNow(ref identity, Error(corr.Span, 400, problem));
            return;
        }
        switch (req.Type)
        {
            case RequestType.Ping:
                _buffer.ResetWrittenCount();
                Wire.WritePong(_buffer, req.Corr.Span);
                ReplyNow(ref identity, _buffer.WrittenSpan);
                return;
            case RequestType.Status when IsEmpty(req.Body):
                // The counters live in memory: no need to leave the socket thread.
                ReplyNow(ref identity, Ok(req, Commands.QueueStatus(_d)));
                return;
            case var t when Wire.IsWorkerType(t):
                // A worker's message goes to the engine's loop, which owns every task; its answers come back by Send.
                JsonObject? args;
                try { args = Wire.ReadBody(req.Body) as JsonObject; }
                catch (Exception ex) when (ex is MsgPackJsonException or MessagePack.MessagePackSerializationException or EndOfStreamException)
                {
                    ReplyNow(ref identity, Error(req.Corr.Span, 400, "body: " + ex.Message));
                    return;
                }
                _d.Engine.OnWorkerMessage(identity.ToArray(), req.Type, req.Corr.ToArray(), args);
                return;
            default:
                if (_stopping) { ReplyNow(ref identity, Error(req.Corr.Span, 503, "the daemon is stopping")); return; }
                // Copies: the frame goes back to NetMQ when this returns.
                var work = new Work(this, identity.ToArray(), req.Type, req.Corr.ToArray(), req.Body.ToArray());
                Interlocked.Increment(ref _inFlight);
                ThreadPool.UnsafeQueueUserWorkItem(static w => _ = w.RunAsync(), work, preferLocal: false);
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

    /// <summary>Replies on the socket thread, sending the received identity frame back as it is.</summary>
    private void ReplyNow(ref Msg identity, ReadOnlySpan<byte> reply)
    {
        // ROUTER drops a message to a peer that is gone or over its high-water mark: a send never blocks.
        if (!_router.TrySend(ref identity, TimeSpan.Zero, more: true)) return;
        _router.TrySendFrameEmpty(TimeSpan.Zero, more: true);
        var msg = new Msg();
        msg.InitPool(reply.Length);
        reply.CopyTo(msg.Slice());
        if (!_router.TrySend(ref msg, TimeSpan.Zero, more: false)) msg.Close();
    }

    private void SendQueued()
    {
        for (int i = 0; i < Batch && _replies.TryDequeue(out var o, TimeSpan.Zero); i++)
        {
            if (!_router.TrySendFrame(TimeSpan.Zero, o.Identity, more: true)) continue;
            _router.TrySendFrameEmpty(TimeSpan.Zero, more: true);
            _router.TrySendFrame(TimeSpan.Zero, o.Body, more: false);
        }
    }

    // ---------- off the socket thread ----------

    private sealed class Work(CommandSocket s, byte[] identity, RequestType type, byte[] corr, byte[] body)
    {
        public async Task RunAsync()
        {
            byte[] reply;
            try { reply = Encode(await AnswerAsync()); }
            catch (Exception e)
            {
                Console.Error.WriteLine($"sparky: zmq {Wire.TypeNames[(int)type]}: {e}");
                reply = Encode(Answer.Error(500, "internal error"));
            }
            s.Post(new Outgoing(identity, reply));
        }

        private async Task<Answer> AnswerAsync()
        {
            Answer a;
            try { a = await s.ExecuteAsync(type, body); }
            catch (Exception e) when (e is MsgPackJsonException or MessagePack.MessagePackSerializationException or EndOfStreamException)
            {
                a = Answer.Error(400, "body: " + e.Message);
            }
            catch (Exception e)
            {
                Console.Error.WriteLine($"sparky: zmq {Wire.TypeNames[(int)type]}: {e}");
                a = Answer.Error(500, "internal error: " + e.Message.Split('\n')[0]);
            }
            return a;
        }

        private byte[] Encode(Answer a)
        {
            var buffer = t_buffer ??= new ArrayBufferWriter<byte>(4096);
            buffer.ResetWrittenCount();
            if (a.Ok) Wire.WriteOk(buffer, type, corr, a.Body);
            else Wire.WriteError(buffer, corr, a.Status, a.Detail ?? "");
            return buffer.WrittenSpan.ToArray();
        }
    }

    private async Task<Answer> ExecuteAsync(RequestType type, byte[] raw)
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
                return Text(args, "id", out var sid) is { } bad ? bad : Commands.Get(_d, sid!);
            case RequestType.Cancel:
                if (args?["id"] is null) return Answer.Error(400, "cancel needs {\"id\": \"<task id>\"}");
                return Text(args, "id", out var cid) is { } bad2 ? bad2 : await Commands.CancelAsync(_d, cid!);
            case RequestType.List:
                if (Text(args, "state", out var state) is { } e1) return e1;
                if (Text(args, "class", out var cls) is { } e2) return e2;
                if (Text(args, "order", out var order) is { } e3) return e3;
                if (Integer(args, "limit", out var limit) is { } e4) return e4;
                if (Integer(args, "cursor", out var cursor) is { } e5) return e5;
                return Commands.List(_d, state, cls, limit is null ? null : (int)Math.Clamp(limit.Value, int.MinValue, int.MaxValue), cursor, order);
            default:
                return Answer.Error(400, $"{Wire.TypeNames[(int)type]} is not handled here");
        }
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
        try
        {
            if (!_replies.IsDisposed) _replies.Enqueue(new Outgoing(identity, body));
        }
        catch (Exception e) when (e is ObjectDisposedException or TerminatingException or NetMQException) { }
    }

    private void Post(Outgoing o)
    {
        try
        {
            if (!_replies.IsDisposed) _replies.Enqueue(o);
        }
        catch (Exception e) when (e is ObjectDisposedException or TerminatingException or NetMQException) { } // stopped meanwhile: no one to answer
        finally { Interlocked.Decrement(ref _inFlight); }
    }

    public void Dispose()
    {
        _stopping = true;
        // Requests already taken (a submit being committed) get their answer out, within a bound.
        var deadline = Environment.TickCount64 + 2000;
        while ((Volatile.Read(ref _inFlight) > 0 || !_replies.IsEmpty) && Environment.TickCount64 < deadline) Thread.Sleep(5);
        _poller.Stop(); // waits for the handler sending the last replies

        _poller.Dispose();
        _router.Dispose();
        _replies.Dispose();
    }
}
