using System.Buffers;
using System.Text;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Sparky.Core.Events;
using Sparky.Server.Events;
using Sparky.Server.Zmq.Transport;

namespace Sparky.Server.Zmq;

/// <summary>
/// The ZeroMQ event channel: an XPUB socket (a PUB to its subscribers) sending every event of the <see cref="EventHub"/>
/// (what SSE gets) as two frames, the topic then the MessagePack body, so a SUB filters by topic prefix. One thread owns
/// the socket (libzmq's where it is installed, else NetMQ's, as for <see cref="CommandSocket"/>); PUB drops for a
/// subscriber past its high-water mark, so a slow subscriber never slows the daemon.
/// <para>The XPUB tells which prefixes are subscribed; an event no subscribed prefix matches is not even let into this
/// socket's queue (the hub's filter), so with no subscriber (the usual case) an event costs a few string compares on the
/// thread that publishes it: no wake-up of this thread, no encoding. A subscriber that has just subscribed may miss
/// the events of the moment before its subscription reached the daemon, as with any ZeroMQ PUB.</para>
/// </summary>
public sealed class EventSocket : IDisposable, IPublisherHandler
{
    public const int Capacity = 100_000;

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);
    private readonly IPublisher _pub;
    private readonly EventHub.Subscription _sub;
    private readonly ChannelReader<SparkyEvent> _reader;
    private readonly Dictionary<string, byte[]> _topics = new(StringComparer.Ordinal);
    private readonly ArrayBufferWriter<byte> _buffer = new(1024);
    private readonly ILogger _log;
    /// <summary>The subscribed prefixes as sent (Latin-1, one char a byte) and the text each matches (the socket thread's).</summary>
    private readonly Dictionary<string, string> _subscribed = new(StringComparer.Ordinal);
    /// <summary>What <see cref="_subscribed"/> matches, for the hub's filter on any thread: replaced whole, never changed.</summary>
    private volatile string[] _prefixes = [];

    public string Endpoint => _pub.Endpoint;

    /// <summary>Which ZeroMQ serves the socket: "libzmq 4.3.4" or "NetMQ".</summary>
    public string Library => _pub.Library;

    /// <summary>Whether any subscriber wants events now.</summary>
    public bool Subscribed => _prefixes.Length > 0;

    /// <summary>Events encoded and sent so far.</summary>
    public long Sent => Interlocked.Read(ref _sent);
    private long _sent;

    private EventSocket(IPublisher pub, EventHub hub, ILogger log)
    {
        _pub = pub;
        _log = log;
        _sub = hub.Subscribe(Capacity, Wanted);
        _reader = _sub.Reader;
        _pub.Start(this);
        _pub.Wake(); // its first OnWake asks the queue to wake it
    }

    /// <summary>Binds (port 0: a free port; with CURVE where a certificate is given), subscribes to the hub and starts
    /// the socket thread. Throws InvalidOperationException with one line if it can't bind.</summary>
    public static EventSocket Start(EventHub hub, string endpoint, ILogger<EventSocket> log, NetMQ.NetMQCertificate? curve = null) =>
        Start(hub, endpoint, log, curve, netMq: false);

    /// <param name="netMq">On NetMQ whatever is installed (tests of the fallback).</param>
    internal static EventSocket Start(EventHub hub, string endpoint, ILogger<EventSocket> log, NetMQ.NetMQCertificate? curve, bool netMq)
    {
        var pub = Publishers.Bind(endpoint, new PublisherOptions(SendHighWatermark: Capacity, curve), netMq, out var why);
        if (why is null) ZmqLog.EventsOnLibZmq(log, pub.Library);
        else ZmqLog.EventsOnNetMq(log, why);
        return new EventSocket(pub, hub, log);
    }

    /// <summary>The hub's filter, on the publishing thread: does a subscribed prefix match the topic?</summary>
    private bool Wanted(SparkyEvent e)
    {
        foreach (var prefix in _prefixes)
            if (e.Topic.StartsWith(prefix, StringComparison.Ordinal)) return true;
        return false;
    }

    // ---------- the socket thread ----------

    void IPublisherHandler.OnSubscription(bool subscribed, ReadOnlySpan<byte> prefix)
    {
        var key = Encoding.Latin1.GetString(prefix);
        if (subscribed) _subscribed[key] = Matching(prefix);
        else _subscribed.Remove(key);
        _prefixes = _subscribed.Values.Distinct(StringComparer.Ordinal).ToArray();
    }

    /// <summary>The text a prefix matches. One that is not whole UTF-8 (cut inside a character) matches every topic
    /// here, which only costs encoding some events that ZeroMQ then filters out: an event a subscriber wants is never skipped.</summary>
    private static string Matching(ReadOnlySpan<byte> prefix)
    {
        try { return StrictUtf8.GetString(prefix); }
        catch (DecoderFallbackException) { return ""; }
    }

    /// <summary>Sends what the hub queued, then asks to be woken when more comes.</summary>
    void IPublisherHandler.OnWake()
    {
        while (true)
        {
            while (_reader.TryRead(out var e)) Publish(e);
            if (_reader.Completion.IsCompleted) return;
            var more = _reader.WaitToReadAsync();
            if (!more.IsCompleted)
            {
                more.AsTask().ContinueWith(static (_, pub) => ((IPublisher)pub!).Wake(), _pub, CancellationToken.None,
                    TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
                return;
            }
            if (!more.Result) return;
        }
    }

    void IPublisherHandler.OnError(Exception e) => ZmqLog.EventSocketFailed(_log, e.GetType().Name, e.Message);

    private void Publish(SparkyEvent e)
    {
        if (!Wanted(e)) return; // its subscriber left meanwhile
        try
        {
            _buffer.ResetWrittenCount();
            Wire.WriteEvent(_buffer, e.Topic, e.TsMs, e.Body);
        }
        catch (Exception ex) // one event that can't be encoded is skipped, not the stream
        {
            ZmqLog.EventNotEncoded(_log, e.Topic, ex.Message);
            return;
        }
        if (!_topics.TryGetValue(e.Topic, out var topic)) _topics[e.Topic] = topic = Encoding.UTF8.GetBytes(e.Topic);
        _pub.Send(topic, _buffer.WrittenSpan);
        Interlocked.Increment(ref _sent);
    }

    public void Dispose()
    {
        _sub.Dispose(); // completes the queue: the socket thread sends what is left
        _pub.Dispose(); // and closes the socket
    }
}
