using NetMQ;
using Sparky.Core.Config;

namespace Sparky.Server.Zmq;

/// <summary>
/// The daemon's CURVE key pair (ZeroMQ's CurveZMQ: Curve25519 keys, written in Z85, 40 characters): the files
/// <c>sparky keys</c> writes, and which ZeroMQ socket binds with CURVE.
/// </summary>
public static class CurveKeys
{
    public const string SecretFile = "sparky.key", PublicFile = "sparky.pub";
    /// <summary>The event socket's own key pair where clients are authenticated: its public key is not published
    /// (unlike sparky.pub) but given to authenticated clients only (in their <c>ping</c> answer), so a peer without a
    /// listed key cannot complete the event socket's CURVE handshake: NetMQ's PUB cannot check subscribers' keys.</summary>
    public const string EventsKeyFile = "events.key";

    /// <summary>Which sockets use CURVE and with what certificate; <see cref="Problem"/> says why serving must not start.</summary>
    /// <param name="Auth">Client authentication on the command socket (allow-lists of client and worker keys); null: none.</param>
    /// <param name="EventsKey">The event socket's own public key, told to authenticated clients only; null where the
    /// event socket uses the daemon's published key (or no CURVE).</param>
    public sealed record Plan(NetMQCertificate? Commands, NetMQCertificate? Events, string? KeyFile, string? Problem, ZmqAuth? Auth = null,
        string? EventsKey = null)
    {
        public string? PublicKey => (Commands ?? Events)?.PublicKeyZ85;
    }

    /// <summary>Writes a fresh pair to <c>DIR/sparky.key</c> (secret, mode 0600) and <c>DIR/sparky.pub</c>, and
    /// returns the public key. Refuses to replace an existing key unless <paramref name="force"/>: clients hold
    /// the old public key.</summary>
    public static string Generate(string dir, bool force)
    {
        Directory.CreateDirectory(dir);
        string secretPath = Path.Combine(dir, SecretFile), publicPath = Path.Combine(dir, PublicFile);
        if (!force && (File.Exists(secretPath) || File.Exists(publicPath)))
            throw new IOException($"{(File.Exists(secretPath) ? secretPath : publicPath)} exists; --force replaces it (clients then need the new public key)");
        var cert = new NetMQCertificate();
        // The secret is created 0600 from the start (never readable by others, even for a moment) and renamed
        // into place, so a replaced key is never half written.
        WriteAtomically(secretPath, $"# Sparky's CURVE secret key (Z85). Keep it private; the public key is in {PublicFile}.\n{cert.SecretKeyZ85}\n",
            UnixFileMode.UserRead | UnixFileMode.UserWrite);
        WriteAtomically(publicPath, cert.PublicKeyZ85 + "\n",
            UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        return cert.PublicKeyZ85;
    }

    /// <summary>Writes a secret key file (0600, created so from the start): the header, then the secret key.</summary>
    internal static void WriteSecret(string path, NetMQCertificate cert, string header)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        WriteAtomically(path, header + cert.SecretKeyZ85 + "\n", UnixFileMode.UserRead | UnixFileMode.UserWrite);
    }

    internal static void WriteAtomically(string path, string text, UnixFileMode mode)
    {
        var tmp = path + ".tmp";
        File.Delete(tmp);
        using (var f = new FileStream(tmp, new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, UnixCreateMode = mode }))
        {
            f.Write(System.Text.Encoding.ASCII.GetBytes(text));
            f.Flush(flushToDisk: true);
        }
        File.SetUnixFileMode(tmp, mode); // the umask may have taken bits away; never added any
        File.Move(tmp, path, overwrite: true);
    }

    /// <summary>Reads a secret key file: the first line that is not a comment, 40 Z85 characters. The public key
    /// is derived from it.</summary>
    public static NetMQCertificate Load(string path)
    {
        string? key = File.ReadLines(path).Select(l => l.Trim()).FirstOrDefault(l => l.Length > 0 && !l.StartsWith('#'));
        if (key is not { Length: 40 }) throw new FormatException($"{path} holds no CURVE secret key (40 Z85 characters); make one with sparky keys");
        try { return NetMQCertificate.CreateFromSecretKey(key); }
        catch (ArgumentException) { throw new FormatException($"{path}: the key is not valid Z85; make one with sparky keys"); }
    }

    /// <summary>
    /// CURVE per socket: <c>zmq_curve = on</c> everywhere, <c>auto</c> on an endpoint off loopback (where it is
    /// required: a task queue is remote code execution), <c>off</c> nowhere (refused off loopback). The key is
    /// <c>zmq_curve_key</c>, else <c>&lt;data&gt;/sparky.key</c> where it exists.
    /// </summary>
    /// <param name="logs">Where the key lists' problems are reported (the daemon's); none: they are not (a check of the settings).</param>
    public static Plan PlanFor(SparkyConfig config, Microsoft.Extensions.Logging.ILoggerFactory? logs = null)
    {
        var endpoints = new[] { ("zmq", config.Zmq), ("zmq_events", config.ZmqEvents) };
        var mode = config.ZmqCurve;
        if (mode == "off" && endpoints.FirstOrDefault(e => !ZmqBind.IsLoopback(e.Item2)) is { Item1: not null } open)
            return new(null, null, null, $"refusing to bind {open.Item1} to {open.Item2} with zmq_curve = off: an endpoint off loopback needs CURVE; " +
                "set zmq_curve to auto or on, or use tcp://127.0.0.1:PORT");
        bool commands = mode == "on" || (mode == "auto" && !ZmqBind.IsLoopback(config.Zmq));
        bool events = mode == "on" || (mode == "auto" && !ZmqBind.IsLoopback(config.ZmqEvents));
        if (!commands && !events) return new(null, null, null, null);

        var (name, endpoint) = commands ? endpoints[0] : endpoints[1];
        var refusing = $"refusing to bind {name} to {endpoint} without CURVE keys ({(mode == "on" ? "zmq_curve = on" : "an endpoint off loopback needs them")})";
        var keyFile = config.ZmqCurveKey ?? Path.Combine(config.DataDir, SecretFile);
        if (!File.Exists(keyFile))
            return new(null, null, keyFile, config.ZmqCurveKey is null
                ? $"{refusing}: make them with `sparky keys --dir {config.DataDir}` (clients then use the public key it prints), or set zmq_curve_key, or use tcp://127.0.0.1:PORT"
                : $"{refusing}: zmq_curve_key {keyFile} does not exist; make it with `sparky keys --dir DIR`");
        NetMQCertificate cert;
        try { cert = Load(keyFile); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException)
        {
            return new(null, null, keyFile, $"cannot read the CURVE key {keyFile}: {e.Message.Split('\n')[0]}");
        }
        // Clients are authenticated where the command socket uses CURVE and a key list exists; off loopback one must.
        var (clients, workers) = ZmqAuth.ListPaths(config);
        // Pilot mode counts as configured: the daemon authorises the key it gives its own pilots.
        bool listed = File.Exists(clients) || File.Exists(workers) || config.PilotClasses.Count > 0;
        if (commands && !listed && !ZmqBind.IsLoopback(config.Zmq))
            return new Plan(null, null, keyFile, null, null) with
            {
                Problem = $"refusing to bind zmq to {config.Zmq} without client keys: anyone with the public key could run commands; " +
                    $"authorise clients with `sparky keys --client NAME` (and workers with `sparky keys --worker NAME`), or use tcp://127.0.0.1:PORT",
            };
        if (events && !listed && !ZmqBind.IsLoopback(config.ZmqEvents))
            return new Plan(null, null, keyFile, null, null) with
            {
                Problem = $"refusing to bind zmq_events to {config.ZmqEvents} without client keys: anyone with the public key could read every event; " +
                    $"authorise clients with `sparky keys --client NAME`, or use tcp://127.0.0.1:PORT",
            };
        ZmqAuth? auth = null;
        if (commands && listed)
        {
            try { auth = new ZmqAuth(cert, clients, workers, config.PilotClasses.Count > 0 ? ZmqAuth.PilotKey(config.DataDir) : null,
                logs is null ? null : Microsoft.Extensions.Logging.LoggerFactoryExtensions.CreateLogger<ZmqAuth>(logs)); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException)
            {
                return new(null, null, keyFile, $"cannot read the ZeroMQ keys: {e.Message.Split('\n')[0]}");
            }
        }
        if (events && auth is null && !ZmqBind.IsLoopback(config.ZmqEvents))
            return new(null, null, keyFile, $"refusing to bind zmq_events to {config.ZmqEvents} while the command socket does not authenticate clients " +
                "(they learn the event socket's key there): set zmq_curve = on, or use tcp://127.0.0.1:PORT for events");
        // Where clients are authenticated, the event socket gets a key of its own that only they are told.
        NetMQCertificate? eventsCert = events ? cert : null;
        if (events && auth is not null)
        {
            try { eventsCert = LoadOrCreate(Path.Combine(config.DataDir, EventsKeyFile), "# Sparky's event socket key (secret): its public key is told to authenticated clients only.\n"); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException)
            {
                return new(null, null, keyFile, $"cannot read or make the event socket's key: {e.Message.Split('\n')[0]}");
            }
        }
        return new(commands ? cert : null, eventsCert, keyFile, null, auth, eventsCert is not null && !ReferenceEquals(eventsCert, cert) ? eventsCert.PublicKeyZ85 : null);
    }

    /// <summary>A secret key file's pair, made (0600) where the file is missing.</summary>
    internal static NetMQCertificate LoadOrCreate(string path, string header)
    {
        if (File.Exists(path)) return Load(path);
        var cert = new NetMQCertificate();
        WriteSecret(path, cert, header);
        return cert;
    }

    /// <summary>Makes a socket a CURVE server with this certificate; call before Bind.</summary>
    public static void Serve(NetMQSocket socket, NetMQCertificate? cert)
    {
        if (cert is null) return;
        socket.Options.CurveServer = true;
        socket.Options.CurveCertificate = cert;
    }
}
