using System.Security.Cryptography;
using System.Text.Json.Nodes;
using NetMQ;
using Sparky.IntegrationTests.Zmq;

namespace Sparky.IntegrationTests.Hardening;

/// <summary>
/// A DEALER that proves a key pair in each message, computed here independently of the daemon's code: X25519 of its
/// secret and the server's public key, HMAC-SHA256 of "sparky-zmq-auth-v1" under it, as hex, in the envelope's
/// <c>auth</c>. The key pair is also its CURVE certificate.
/// </summary>
public sealed class KeyedClient : IDisposable
{
    public ZmqTestClient Client { get; }
    private readonly JsonObject _auth;
    private int _corr;

    public KeyedClient(string endpoint, string serverKey, NetMQCertificate key)
    {
        Client = new ZmqTestClient(endpoint);
        Client.Socket.Disconnect(endpoint);
        Client.Socket.Options.CurveCertificate = key;
        Client.Socket.Options.CurveServerKey = NetMQCertificate.FromPublicKey(serverKey).PublicKey;
        Client.Socket.Connect(endpoint);
        var shared = new byte[32];
        NaCl.Curve25519.ScalarMultiplication(shared, key.SecretKey!, NetMQCertificate.FromPublicKey(serverKey).PublicKey);
        _auth = new JsonObject { ["key"] = key.PublicKeyZ85, ["proof"] = Convert.ToHexStringLower(HMACSHA256.HashData(shared, "sparky-zmq-auth-v1"u8)) };
    }

    public static NetMQCertificate LoadKey(string file) =>
        NetMQCertificate.CreateFromSecretKey(File.ReadLines(file).Select(l => l.Trim()).First(l => l.Length > 0 && !l.StartsWith('#')));

    /// <summary>Sends a message; returns its corr.</summary>
    public string Send(string type, JsonNode? body)
    {
        var corr = $"k{++_corr}";
        var env = ZmqTestClient.Envelope(type, body, corr);
        env["auth"] = _auth.DeepClone();
        Client.SendFrames([], ZmqTestClient.Pack(env));
        return corr;
    }

    /// <summary>The reply to a message, or null if none came within <paramref name="seconds"/>.</summary>
    public JsonObject? Request(string type, JsonNode? body, double seconds = 10)
    {
        var corr = Send(type, body);
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (DateTime.UtcNow < deadline)
        {
            var r = Client.TryReceive(Math.Max(0.01, (deadline - DateTime.UtcNow).TotalSeconds));
            if (r is null) return null;
            if ((string?)r["corr"] == corr) return r;
        }
        return null;
    }

    public void Dispose() => Client.Dispose();
}
