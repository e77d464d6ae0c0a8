using System.Text.Json.Nodes;
using MessagePack;
using NetMQ;
using NetMQ.Sockets;

namespace Sparky.IntegrationTests.Zmq;

/// <summary>
/// A DEALER client written for the tests, independent of the daemon's codec: requests are built as JSON and
/// turned into MessagePack by MessagePack's own converter, replies turned back into JSON the same way.
/// </summary>
public sealed class ZmqTestClient : IDisposable
{
    public DealerSocket Socket { get; } = new();
    private int _corr;

    /// <param name="serverKey">The daemon's CURVE public key (Z85): the client makes a key pair of its own and
    /// does the CURVE handshake. Null: plain.</param>
    public ZmqTestClient(string endpoint, string? serverKey = null)
    {
        Socket.Options.Linger = TimeSpan.Zero;
        CurveClient(Socket, serverKey);
        Socket.Connect(endpoint);
    }

    /// <summary>Makes a socket a CURVE client of the server with this public key (before it connects); null: plain.</summary>
    public static void CurveClient(NetMQSocket socket, string? serverKey)
    {
        if (serverKey is null) return;
        socket.Options.CurveCertificate = new NetMQCertificate();
        socket.Options.CurveServerKey = NetMQCertificate.FromPublicKey(serverKey).PublicKey;
    }

    public static byte[] Pack(JsonNode json) => MessagePackSerializer.ConvertFromJson(json.ToJsonString());

    /// <summary>Through JSON text, so numbers convert to any numeric type as parsed JSON's do.</summary>
    public static JsonObject Unpack(byte[] body) => (JsonObject)JsonNode.Parse(ToJson(MessagePackSerializer.Deserialize<object>(body))!.ToJsonString())!;

    /// <summary>MessagePack's untyped objects (maps, arrays, scalars) as JSON.</summary>
    private static JsonNode? ToJson(object? o) => o switch
    {
        null => null,
        IDictionary<object, object?> map => new JsonObject(map.Select(kv => KeyValuePair.Create((string)kv.Key, ToJson(kv.Value)))),
        object?[] items => new JsonArray(items.Select(ToJson).ToArray()),
        string s => JsonValue.Create(s),
        bool b => JsonValue.Create(b),
        double or float => JsonValue.Create(Convert.ToDouble(o)),
        ulong u => JsonValue.Create(u),
        _ => JsonValue.Create(Convert.ToInt64(o)),
    };

    public static JsonObject Envelope(string type, JsonNode? body, JsonNode? corr)
    {
        var o = new JsonObject { ["v"] = 1, ["type"] = type, ["corr"] = corr, ["ts"] = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() };
        if (body is not null) o["body"] = body;
        return o;
    }

    /// <summary>Sends [empty][body] and returns the reply's map; asserts the reply's framing and corr.</summary>
    public JsonObject Request(string type, JsonNode? body = null)
    {
        string corr = $"c{++_corr}";
        SendFrames([], Pack(Envelope(type, body, corr)));
        var reply = Receive();
        Assert.Equal(corr, (string?)reply["corr"]);
        return reply;
    }

    /// <summary>The body of a <c>&lt;type&gt;.ok</c> reply.</summary>
    public JsonNode? Ok(string type, JsonNode? body = null)
    {
        var reply = Request(type, body);
        Assert.True((string?)reply["type"] == type + ".ok", reply.ToJsonString());
        return reply["body"];
    }

    /// <summary>The (status, detail) of an <c>error</c> reply.</summary>
    public (int Status, string Detail) Error(string type, JsonNode? body = null)
    {
        var reply = Request(type, body);
        Assert.True((string?)reply["type"] == "error", reply.ToJsonString());
        return ((int)reply["body"]!["status"]!, (string)reply["body"]!["detail"]!);
    }

    public void SendFrames(params byte[][] frames)
    {
        for (int i = 0; i < frames.Length; i++) Socket.SendFrame(frames[i], more: i < frames.Length - 1);
    }

    /// <summary>One reply: [empty][MessagePack map].</summary>
    public JsonObject Receive(double seconds = 10)
    {
        var reply = TryReceive(seconds) ?? throw new TimeoutException($"no reply within {seconds}s");
        return reply;
    }

    public JsonObject? TryReceive(double seconds)
    {
        var frames = new NetMQMessage();
        if (!Socket.TryReceiveMultipartMessage(TimeSpan.FromSeconds(seconds), ref frames)) return null;
        Assert.Equal(2, frames.FrameCount);
        Assert.Equal(0, frames[0].BufferSize);
        var reply = Unpack(frames[1].ToByteArray());
        Assert.Equal(1, (int)reply["v"]!);
        Assert.True(reply["ts"] is JsonValue, "ts missing");
        return reply;
    }

    public void Dispose() => Socket.Dispose();
}
