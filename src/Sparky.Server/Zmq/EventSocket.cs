using System.Buffers;
using System.Text;
using Microsoft.Extensions.Logging;
using NetMQ;
using NetMQ.Sockets;
using Sparky.Core.Events;
using Sparky.Server.Events;

namespace Sparky.Server.Zmq;

/// <summary>
/// The ZeroMQ event channel: a PUB socket sending every event of the <see cref="EventHub"/> (what SSE gets) as
/// two frames, the topic then the MessagePack body, so a SUB filters by topic prefix. One thread owns the socket;
/// PUB drops for a subscriber past its high-water mark, so a slow subscriber never slows the daemon.
/// </summary>
public sealed class EventSocket : IDisposable
{
    private readonly PublisherSocket _pub;
    private readonly EventHub.Subscription _sub;
    private readonly Thread _thread;
    private readonly Dictionary<string, byte[]> _topics = new(StringComparer.Ordinal);
    private readonly ArrayBufferWriter<byte> _buffer = new(1024);
    private readonly ILogger _log;

    public string Endpoint { get; }

    private EventSocket(PublisherSocket pub, string endpoint, EventHub hub, ILogger log)
    {
        _pub = pub;
        _log = log;
        Endpoint = endpoint;
        _sub = hub.Subscribe(capacity: 100_000);
        _thread = new Thread(Run) { Name = "sparky-zmq-events", IsBackground = true };
        _thread.Start();
    }

    /// <summary>Binds (port 0: a free port; with CURVE where a certificate is given), subscribes to the hub and starts the socket thread.</summary>
    public static EventSocket Start(EventHub hub, string endpoint, ILogger<EventSocket> log, NetMQ.NetMQCertificate? curve = null)
    {
        var pub = new PublisherSocket();
        try
        {
            pub.Options.Linger = TimeSpan.Zero;
            pub.Options.SendHighWatermark = 100_000;
            CurveKeys.Serve(pub, curve);
            return new EventSocket(pub, ZmqBind.Bind(pub, endpoint, "event"), hub, log);
        }
        catch
        {
            pub.Dispose();
            throw;
        }
    }

    private void Run()
    {
        var reader = _sub.Reader;
        try
        {
            while (true)
            {
                while (reader.TryRead(out var e)) Publish(e);
                var more = reader.WaitToReadAsync();
                if (!(more.IsCompletedSuccessfully ? more.Result : more.AsTask().GetAwaiter().GetResult())) break;
            }
        }
        catch (Exception e) { ZmqLog.EventSocketFailed(_log, e.GetType().Name, e.Message); }
        finally { _pub.Dispose(); } // by its owner
    }

    private void Publish(SparkyEvent e)
    {
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
        if (!_pub.TrySendFrame(TimeSpan.Zero, topic, more: true)) return;
        var msg = new Msg();
        msg.InitPool(_buffer.WrittenCount);
        _buffer.WrittenSpan.CopyTo(msg.Slice());
        if (!_pub.TrySend(ref msg, TimeSpan.Zero, more: false)) msg.Close();
    }

    public void Dispose()
    {
        _sub.Dispose(); // completes the channel: the thread sends what is left, closes the socket and ends
        _thread.Join(TimeSpan.FromSeconds(2));
    }
}
