using System.Security.Cryptography;
using System.Text;
using NetMQ;

namespace Sparky.Server.Zmq;

/// <summary>Who may send what on the command socket: a client key only client requests, a worker key only worker messages.</summary>
public enum PeerRole { Client, Worker }

/// <summary>An authenticated peer: the name its key is listed under, its role, and its public key (Z85).</summary>
public sealed record ZmqPeer(string Name, PeerRole Role, string PublicKey);

/// <summary>
/// Client authentication on the CURVE command socket. NetMQ's CURVE server takes any client key (it has no ZAP
/// handler, and does not show which key a connection used), so a peer proves it holds a listed key pair in each
/// message instead: the envelope's <c>auth</c> is <c>{"key": its public key, "proof": hex HMAC-SHA256 of
/// "sparky-zmq-auth-v1" under the X25519 secret it shares with the server}</c>. Only the holder of the secret key
/// (and the server) can compute the proof; it travels inside CURVE, so no one else sees it. The daemon keeps the
/// expected proof of every listed key, so checking one is a dictionary look-up and a fixed-time compare.
/// The lists are files of <c>PUBLIC_KEY NAME</c> lines (<c>#</c> comments), read again when they change.
/// </summary>
public sealed class ZmqAuth
{
    public const string ClientsFile = "clients.keys", WorkersFile = "workers.keys", KeysDir = "keys", PilotKeyFile = "pilot.key";

    private readonly byte[] _serverSecret;
    private readonly string _clientsPath, _workersPath;
    private readonly ZmqPeer? _pilot;
    private readonly string? _pilotProof;
    private (DateTime, long) _clientsStamp = (DateTime.MinValue, -1), _workersStamp = (DateTime.MinValue, -1);
    private long _nextCheck;
    private Dictionary<string, (ZmqPeer Peer, byte[] Proof)> _keys = new(StringComparer.Ordinal);
    private readonly object _reload = new();
    private readonly Microsoft.Extensions.Logging.ILogger _log;

    /// <param name="log">Where an unreadable key list is reported; none: not reported (a check of the settings only).</param>
    public ZmqAuth(NetMQCertificate server, string clientsPath, string workersPath, NetMQCertificate? pilot, Microsoft.Extensions.Logging.ILogger? log = null)
    {
        _log = log ?? Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance;
        _serverSecret = server.SecretKey ?? throw new ArgumentException("the server certificate has no secret key");
        _clientsPath = clientsPath;
        _workersPath = workersPath;
        if (pilot is not null)
        {
            _pilot = new ZmqPeer("pilot", PeerRole.Worker, pilot.PublicKeyZ85);
            _pilotProof = ProofFor(_serverSecret, pilot.PublicKey);
        }
        Reload();
    }

    /// <summary>The allow-list files the config names: <c>zmq_client_keys</c> / <c>zmq_worker_keys</c>, else in the data dir.</summary>
    public static (string Clients, string Workers) ListPaths(Sparky.Core.Config.SparkyConfig c) =>
        (c["zmq_client_keys"] is { Length: > 0 } cl ? cl : Path.Combine(c.DataDir, ClientsFile),
         c["zmq_worker_keys"] is { Length: > 0 } wl ? wl : Path.Combine(c.DataDir, WorkersFile));

    private static string ProofFor(byte[] secret, byte[] peerPublic)
    {
        var shared = new byte[32];
        NaCl.Curve25519.ScalarMultiplication(shared, secret, peerPublic);
        return Sparky.Workers.Protocol.WorkerWire.Proof(shared);
    }

    /// <summary>The peer a message's <c>auth</c> proves, or null (no such key listed, or a wrong proof).</summary>
    public ZmqPeer? Check(string? key, string? proof)
    {
        if (key is null || proof is null) return null;
        MaybeReload();
        byte[] expected;
        ZmqPeer peer;
        if (_keys.TryGetValue(key, out var entry)) (peer, expected) = (entry.Peer, entry.Proof);
        else if (_pilot is not null && key == _pilot.PublicKey) (peer, expected) = (_pilot, Encoding.ASCII.GetBytes(_pilotProof!));
        else return null;
        var got = Encoding.ASCII.GetBytes(proof);
        return CryptographicOperations.FixedTimeEquals(got, expected) ? peer : null;
    }

    /// <summary>Listed keys, for tests and logs.</summary>
    public int Count => _keys.Count + (_pilot is null ? 0 : 1);

    /// <summary>Reads the lists again where a file changed, at most once a second (a look-up per message must stay cheap).</summary>
    private void MaybeReload()
    {
        long now = Environment.TickCount64;
        if (now < Volatile.Read(ref _nextCheck)) return;
        Volatile.Write(ref _nextCheck, now + 1000);
        if (Stamp(_clientsPath) != _clientsStamp || Stamp(_workersPath) != _workersStamp) Reload();
    }

    private static (DateTime, long) Stamp(string path)
    {
        try
        {
            var f = new FileInfo(path);
            return f.Exists ? (f.LastWriteTimeUtc, f.Length) : (DateTime.MinValue, -1);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return (DateTime.MinValue, -1); }
    }

    private void Reload()
    {
        lock (_reload)
        {
            var keys = new Dictionary<string, (ZmqPeer, byte[])>(StringComparer.Ordinal);
            _clientsStamp = Stamp(_clientsPath);
            _workersStamp = Stamp(_workersPath);
            foreach (var (path, role) in new[] { (_clientsPath, PeerRole.Client), (_workersPath, PeerRole.Worker) })
            {
                IReadOnlyList<(string Key, string Name)> entries;
                try { entries = ReadList(path); }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException)
                {
                    ZmqLog.KeyListUnreadable(_log, e.Message.Split('\n')[0]);
                    continue;
                }
                foreach (var (key, name) in entries)
                {
                    // A key listed as both keeps its first role: clients are read first, and a client cannot run tasks.
                    if (keys.ContainsKey(key)) continue;
                    keys[key] = (new ZmqPeer(name, role, key), Encoding.ASCII.GetBytes(ProofFor(_serverSecret, NetMQCertificate.FromPublicKey(key).PublicKey)));
                }
            }
            _keys = keys;
        }
    }

    /// <summary>An allow-list: <c>PUBLIC_KEY NAME</c> per line, <c>#</c> comments; a missing file is an empty list.</summary>
    public static IReadOnlyList<(string Key, string Name)> ReadList(string path)
    {
        if (!File.Exists(path)) return [];
        var entries = new List<(string, string)>();
        int n = 0;
        foreach (var raw in File.ReadLines(path))
        {
            n++;
            var line = raw.Trim();
            if (line.Length == 0 || line.StartsWith('#')) continue;
            var parts = line.Split((char[]?)null, 2, StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            if (parts[0].Length != 40 || !ValidKey(parts[0])) throw new FormatException($"{path}:{n}: expected 'PUBLIC_KEY NAME' with a 40-character Z85 public key");
            entries.Add((parts[0], parts.Length > 1 ? parts[1] : parts[0][..8]));
        }
        return entries;
    }

    private static bool ValidKey(string z85)
    {
        try { _ = NetMQCertificate.FromPublicKey(z85); return true; }
        catch (Exception e) when (e is ArgumentException or FormatException or IndexOutOfRangeException) { return false; }
    }

    /// <summary>
    /// <c>sparky keys --client/--worker NAME</c>: a fresh key pair, its secret in <paramref name="secretPath"/> (0600),
    /// its public key added to the allow-list under NAME. A name already listed is refused unless <paramref name="force"/>,
    /// which replaces its line. Returns the public key.
    /// </summary>
    public static string Authorise(string listPath, string name, string secretPath, bool force)
    {
        if (name.Length == 0 || name.Any(c => char.IsWhiteSpace(c) || char.IsControl(c)))
            throw new IOException($"'{name}' is not a key name: no spaces or control characters");
        var lines = File.Exists(listPath) ? File.ReadAllLines(listPath).ToList() : [];
        int existing = lines.FindIndex(l => !l.TrimStart().StartsWith('#') && l.Split((char[]?)null, 2, StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) is [_, var n] && n == name);
        if (existing >= 0 && !force) throw new IOException($"{name} is already listed in {listPath}; --force replaces its key");
        if (File.Exists(secretPath) && !force) throw new IOException($"{secretPath} exists; --force replaces it");
        var cert = new NetMQCertificate();
        CurveKeys.WriteSecret(secretPath, cert, $"# Sparky ZeroMQ key '{name}' (secret; keep it private). Public key: {cert.PublicKeyZ85}\n");
        var entry = $"{cert.PublicKeyZ85} {name}";
        if (existing >= 0) lines[existing] = entry;
        else
        {
            if (lines.Count == 0) lines.Add("# Sparky ZeroMQ allow-list: PUBLIC_KEY NAME per line (sparky keys --client/--worker NAME adds one; delete a line to revoke)");
            lines.Add(entry);
        }
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(listPath))!);
        CurveKeys.WriteAtomically(listPath, string.Join('\n', lines) + "\n",
            UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        return cert.PublicKeyZ85;
    }

    /// <summary>The daemon's key for its own pilots (<c>&lt;data&gt;/keys/pilot.key</c>), made once and kept, so pilots
    /// started by an earlier daemon are still accepted after a restart.</summary>
    public static NetMQCertificate PilotKey(string dataDir)
    {
        return CurveKeys.LoadOrCreate(Path.Combine(dataDir, KeysDir, PilotKeyFile), "# Sparky's key for its own pilot workers (secret; made by the daemon).\n");
    }
}
