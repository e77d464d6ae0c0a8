using Microsoft.Extensions.Hosting.Systemd;
using Sparky.Core.Scheduling;
using Sparky.Execution.Gpus;
using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Sparky.Core.Config;
using Sparky.Core.Tasks;
using Sparky.Server.Events;
using Sparky.Server.Executors.Workers;
using Sparky.Server.Http;
using Sparky.Server.Intake;
using Sparky.Server.Metrics;
using Sparky.Server.Progress;
using Sparky.Server.Zmq;
using Sparky.Store.Sqlite;

namespace Sparky.Server.Daemon;

/// <summary>
/// One daemon: the store, the engine, the HTTP API, the drop directory and the done-file writer,
/// wired together. <c>sparky serve</c>, <c>sparky demo</c> and the tests all start it the same way.
/// </summary>
public sealed class SparkyDaemon : IAsyncDisposable
{
    public SparkyConfig Config { get; }
    /// <summary>The daemon's one logger factory (<see cref="DaemonLogging"/>): each area makes its logger from it.</summary>
    public ILoggerFactory Logs { get; }
    public SqliteStore Store { get; }
    public EventHub Events { get; } = new();
    public Engine Engine { get; }
    /// <summary>Plans (SPEC §5): started by <c>POST /api/v1/plans</c>, resumed at start.</summary>
    /// <para>Null until the engine has recovered (HTTP is up before that and answers 503 meanwhile).</para>
    public Sparky.Server.Plans.PlanRunner? Plans { get; private set; }
    /// <summary>Every door is open (the engine recovered, plans resumed, the drop directory watched): what /readyz waits for,
    /// so a client that waits for it can drop a file at once.</summary>
    public bool Started { get; private set; }

    /// <summary>Tells systemd (a Type=notify unit: deploy/systemd) when the daemon is ready and when it stops.</summary>
    private readonly ISystemdNotifier _systemd = new SystemdNotifier();
    public SparkyMetrics Metrics { get; }
    /// <summary>The GPUs found at start (NVML, nvidia-smi, or none), filtered by <c>visible_gpus</c>.</summary>
    public GpuDiscovery Gpus { get; }
    /// <summary>The GPUs as the sampler last read them (every 2 s): what the API shows, without a read per request.</summary>
    public IReadOnlyList<GpuInfo> GpuReadings { get; private set; } = [];
    public string Url { get; private set; } = "";
    /// <summary>Reads running attempts' stdout for their progress lines; the latest value not yet stored.</summary>
    internal ProgressFollower Progress { get; }
    /// <summary>The wall clock the daemon runs on (tests step it).</summary>
    public TimeProvider Clock { get; }
    /// <summary>When this daemon started (its uptime is counted from here).</summary>
    public DateTimeOffset StartedAt { get; }
    /// <summary>Followed logs: one poller per log, shared by its followers.</summary>
    internal LogFeeds LogFeeds { get; }
    /// <summary>Pollers of followed logs running now (one per log, whatever the number of followers).</summary>
    public int LogReaders => LogFeeds.Count;
    /// <summary>The HTTP connections open now, within <c>max_connections</c>.</summary>
    internal ConnectionLimit Connections { get; private set; } = null!;
    /// <summary>The ZeroMQ command (ROUTER) endpoint bound, with the real port where the setting said 0.</summary>
    public string ZmqEndpoint => _commands?.Endpoint ?? "";
    /// <summary>The ZeroMQ event (PUB) endpoint bound, with the real port where the setting said 0.</summary>
    public string ZmqEventsEndpoint => _events?.Endpoint ?? "";
    /// <summary>The public key (Z85) clients need where a ZeroMQ socket is bound with CURVE; null where none is.</summary>
    public string? ZmqCurvePublicKey { get; private set; }

    /// <summary>The embedding service (SPEC §8), where <c>embeddings_model</c> is set; else null.</summary>
    public Sparky.Embeddings.EmbeddingService? Embeddings { get; private set; }

    private WebApplication? _app;
    private FileStream? _lock;
    private Microsoft.Win32.SafeHandles.SafeFileHandle? _dirLock;
    private DropDirectory? _drop;
    private DoneFiles? _done;
    private Sparky.Server.Outputs.ArtifactRecorder? _artifacts;
    private Timer? _gpuSampler;
    private IdleTrim? _idleTrim;
    private CommandSocket? _commands;
    private EventSocket? _events;
    private readonly ILogger _log;

    private SparkyDaemon(SparkyConfig config, TimeProvider clock, ILoggerFactory logs)
    {
        Config = config;
        Logs = logs;
        Clock = clock;
        StartedAt = clock.GetUtcNow();
        _log = logs.CreateLogger<SparkyDaemon>();
        LogFeeds = new LogFeeds(this);
        // GPUs first: a visible_gpus entry that names no GPU stops the start before anything is opened.
        try { Gpus = GpuDiscovery.Discover(GpuJson.Options(config)); }
        catch (GpuException e) { throw new InvalidOperationException(e.Message); }
        Store = SqliteStore.Open(Path.Combine(config.DataDir, "sparky.db"));
        const long MiB = 1024 * 1024;
        // A GPU whose memory is unknown can still be handed out whole, but holds no shares.
        // enable_gpu = false (the replaced system's DSPY_ENABLE_GPU=false): the GPUs are still found and shown, but
        // none is handed out.
        var devices = config.EnableGpu ? Gpus.Gpus.Select(g => new GpuDevice(g.Uuid, (g.MemoryTotalBytes ?? 0) / MiB)).ToList() : [];
        var pool = new ResourcePool(Environment.ProcessorCount * 1000, (HostMemory.Read()?.TotalBytes ?? 0) / MiB, devices);
        Engine = new Engine(config, Store, Events, clock, pool, logs);
        Metrics = new SparkyMetrics(Store.Counters, () => Engine.KnownClasses, Engine.Limit, () => LogFeeds.Count, Engine.DataDir);
        Engine.Observer = Metrics;
        Progress = new ProgressFollower(Store, Events, clock, logs.CreateLogger<ProgressFollower>());
        Engine.Follower = Progress;
    }

    /// <summary>Refuses an address that is not loopback without a token: a task queue is remote code execution.
    /// ZeroMQ off loopback needs CURVE keys (a token does not replace them), and a key that can be read.</summary>
    public static string? CheckBinding(SparkyConfig config)
    {
        var host = HostOf(config.Http);
        if (!Loopback.IsHost(host) && config.Token is null)
            return $"refusing to listen on {config.Http} without a token: set SPARKY_TOKEN (or --token), or listen on 127.0.0.1";
        return CurveKeys.PlanFor(config).Problem;
    }

    /// <param name="log">Where the daemon's log lines go (<c>sparky: LEVEL: ...</c>, as <c>log_level</c> lets through); null: stderr.</param>
    /// <param name="clock">The wall clock (tests step it); the engine's timers run on a monotonic clock beside it.</param>
    public static async Task<SparkyDaemon> StartAsync(SparkyConfig config, Action<string>? log = null, TimeProvider? clock = null)
    {
        if (CheckBinding(config) is { } refusal) throw new InvalidOperationException(refusal);
        var logs = DaemonLogging.Create(config.LogLevel, log);
        try { return await StartAsync(config, clock, logs); }
        catch { logs.Dispose(); throw; }
    }

    private static async Task<SparkyDaemon> StartAsync(SparkyConfig config, TimeProvider? clock, ILoggerFactory logs)
    {
        var curve = CurveKeys.PlanFor(config, logs);
        // A data dir Sparky creates is its user's alone: the store and the done files hold every task's environment.
        // One that exists keeps the mode its owner gave it (a drop directory shared with another user, say).
        if (!Directory.Exists(config.DataDir))
            Directory.CreateDirectory(config.DataDir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var dirLock = LockDirectory(config.DataDir);
        FileStream dataLock;
        try { dataLock = Lock(config.DataDir); }
        catch { dirLock?.Dispose(); throw; }
        SparkyDaemon d;
        try { d = new SparkyDaemon(config, clock ?? TimeProvider.System, logs) { _lock = dataLock, _dirLock = dirLock }; }
        catch { dataLock.Dispose(); dirLock?.Dispose(); throw; }
        var started = System.Diagnostics.Stopwatch.StartNew();
        try
        {
            // The port first: if it is taken, nothing has been recovered or started. Until the engine
            // is ready, /readyz and submissions answer 503.
            await d.StartHttpAsync();
            d._events = EventSocket.Start(d.Events, config.ZmqEvents, logs.CreateLogger<EventSocket>(), curve.Events); // before the engine: no event is missed
            d._commands = CommandSocket.Start(d, config.Zmq, curve.Commands, curve.Auth, curve.EventsKey);
            d.ZmqCurvePublicKey = curve.PublicKey;
            d.Engine.Workers = new WorkerLink(d._commands.Send, d._commands.Endpoint, curve.Commands?.PublicKeyZ85,
                curve.Auth is not null && config.PilotClasses.Count > 0 ? Path.GetFullPath(Path.Combine(config.DataDir, ZmqAuth.KeysDir, ZmqAuth.PilotKeyFile)) : null);
            d._done = new DoneFiles(d); // before recovery, which may finish tasks
            // After the done-file writer (it waits for task.artifacts), before recovery (which may end tasks that owe some).
            d._artifacts = new Sparky.Server.Outputs.ArtifactRecorder(d.Store, d.Events, clock ?? TimeProvider.System,
                logs.CreateLogger<Sparky.Server.Outputs.ArtifactRecorder>());
            d.Engine.ArtifactsOwed = d._artifacts.Enqueue;
            d._artifacts.ResumeOwed();
            d.Plans = new Sparky.Server.Plans.PlanRunner(d); // subscribes: ends found by recovery reach it
            d.Engine.Start();
            d.Plans.Start(); // after the engine's recovery: the task states it reads are the recovered ones
            d.Store.StartIntegrityCheck(); // in the background: /readyz turns 503 if it fails
            d._drop = new DropDirectory(d);
            d._idleTrim = new IdleTrim(d.ReadActivity);
            if (d.Gpus.Gpus.Count > 0)
            {
                d.SampleGpus(); // the first readings are there before anyone can scrape
                d._gpuSampler = new Timer(_ => d.SampleGpus(), null, TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(2));
            }
            d.Started = true;
            // Under systemd (Type=notify): ready once recovered and serving, so `systemctl start` returns when
            // submissions are taken. Without NOTIFY_SOCKET this does nothing.
            d._systemd.Notify(ServiceState.Ready);
        }
        catch
        {
            await d.DisposeAsync(keepLogs: true); // the caller disposes them
            throw;
        }
        string Curve(bool on) => on ? " (CURVE)" : "";
        DaemonLog.Serving(d._log, d.Url, d.ZmqEndpoint + Curve(curve.Commands is not null), d.ZmqEventsEndpoint + Curve(curve.Events is not null),
            $"data {Path.GetFullPath(config.DataDir)}, queue {Path.GetFullPath(config.QueueDir)}, mode {config.Mode}, " +
            $"{d.Gpus.Gpus.Count} GPU(s) via {d.Gpus.Source}{(config.EnableGpu ? "" : " (none handed out: enable_gpu is false)")}, containment {d.Engine.Containment.Mode}, ready in {started.ElapsedMilliseconds} ms",
            d.ZmqCurvePublicKey is { } pub ? $"; CURVE public key {pub}" : "");
        return d;
    }

    /// <summary>GPU readings for the metrics and the GPU classes' limiters. On a timer thread; never throws.</summary>
    private void SampleGpus()
    {
        try
        {
            var gpus = Gpus.Sample();
            GpuReadings = gpus;
            Metrics.SetGpus(gpus.Select(g => (g.Index.ToString(), g.UtilizationRatio, g.MemoryUsedBytes, g.MemoryTotalBytes ?? 0)));
            var utils = gpus.Where(g => g.UtilizationRatio is not null).Select(g => g.UtilizationRatio!.Value).ToList();
            Engine.GpuUtilization = utils.Count > 0 ? utils.Average() : null;
        }
        catch (Exception e) { DaemonLog.GpuSamplingFailed(_log, e.Message); }
    }

    private async Task StartHttpAsync()
    {
        // The empty builder: no appsettings*.json, environment or command-line configuration of ASP.NET Core's own
        // (Sparky's settings are its own), and so no file watcher either. The slim builder watched its content root,
        // the working directory, recursively for appsettings changes: started in $HOME or /tmp that is thousands of
        // inotify watches, and every file written below it, the tasks' own logs included, cost the daemon CPU.
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions { ContentRootPath = Config.DataDir });
        builder.WebHost.UseKestrelCore();
        builder.Services.AddRoutingCore();
        // ASP.NET Core logs through the daemon's own factory: one format, one log_level.
        builder.Services.AddSingleton(Logs);
        var host = HostOf(Config.Http);
        int port = int.Parse(Config.Http[(Config.Http.LastIndexOf(':') + 1)..]);
        // Descriptors: the soft limit is often 1024, less than the connection bound alone.
        long? files = Sparky.Execution.Processes.FileLimits.RaiseToHard();
        int maxConnections = Config.MaxConnections;
        if (files is { } nofile && maxConnections > nofile - 256)
        {
            maxConnections = (int)Math.Max(16, nofile - 256);
            DaemonLog.MaxConnectionsLowered(_log, Config.MaxConnections, nofile, maxConnections);
        }
        Connections = new ConnectionLimit(maxConnections);
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Limits.MaxRequestBodySize = Config.MaxBodyBytes;
            k.Limits.MaxConcurrentUpgradedConnections = maxConnections;
            // An idle connection is closed: 30 s between requests, 10 s to send a request's head.
            k.Limits.KeepAliveTimeout = TimeSpan.FromSeconds(30);
            k.Limits.RequestHeadersTimeout = TimeSpan.FromSeconds(10);
            k.AddServerHeader = false;
            void Bounded(Microsoft.AspNetCore.Server.Kestrel.Core.ListenOptions o) => o.Use(Connections.Wrap);
            if (Loopback.IsLocalhostName(host)) k.ListenLocalhost(port, Bounded);
            else if (IPAddress.TryParse(host.Trim('[', ']'), out var ip)) k.Listen(ip, port, Bounded);
            else k.ListenAnyIP(port, Bounded);
        });
        builder.Services.AddProblemDetails();
        builder.Services.ConfigureHttpJsonOptions(o => o.SerializerOptions.TypeInfoResolverChain.Insert(0, HttpJsonContext.Default));
        var app = builder.Build();
        app.UseExceptionHandler();
        var sessions = Config.Token is { } token ? new Sparky.Server.Dashboard.Sessions(token, Clock) : null;
        AccessRules.Use(app, Config, sessions);
        Api.Map(app, this);
        if (Config.Embeddings.Model.Length > 0)
        {
            // Loaded before the port opens: a model that cannot be loaded stops the start with its reason.
            Embeddings = Sparky.Embeddings.EmbeddingService.Load(Sparky.Server.Embeddings.EmbeddingConfig.Options(Config), Metrics.Registry,
                Logs.CreateLogger<Sparky.Embeddings.EmbeddingService>());
            Sparky.Embeddings.Http.EmbeddingRoutes.MapEmbeddings(app, Embeddings);
        }
        Sparky.Server.Dashboard.DashboardRoutes.Map(app, Config, sessions);
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        Url = address.Replace("[::]", "127.0.0.1").Replace("0.0.0.0", "127.0.0.1").Replace("localhost", "127.0.0.1");
        _app = app;
    }

    /// <summary>
    /// One daemon per data directory: a second one's recovery would kill the first one's tasks as
    /// "lost" and run its queue twice. The lock (flock, via FileShare.None) dies with the process.
    /// </summary>
    private static FileStream Lock(string dataDir)
    {
        var path = Path.Combine(dataDir, "sparky.lock");
        // Who holds it, for the error message: the lock file itself can't be read while locked.
        var pidFile = Path.Combine(dataDir, "sparky.pid");
        try
        {
            var f = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            File.WriteAllText(pidFile, Environment.ProcessId + "\n");
            return f;
        }
        catch (IOException)
        {
            string holder = "";
            try { holder = File.ReadAllText(pidFile).Trim(); } catch (IOException) { }
            throw new InvalidOperationException($"another daemon{(holder.Length > 0 ? $" (pid {holder})" : "")} is using the data directory {Path.GetFullPath(dataDir)}");
        }
    }

    /// <summary>RFC 9110 §11.1: the scheme is case-insensitive (<c>bearer</c>, <c>BEARER</c>), then one or more
    /// spaces, then the token, compared in constant time.</summary>
    internal static bool BearerMatches(string header, byte[] expected)
    {
        int space = header.IndexOf(' ');
        if (space < 0 || !header.AsSpan(0, space).Equals("Bearer", StringComparison.OrdinalIgnoreCase)) return false;
        var got = System.Text.Encoding.UTF8.GetBytes(header[(space + 1)..].TrimStart(' '));
        return System.Security.Cryptography.CryptographicOperations.FixedTimeEquals(got, expected);
    }

    /// <summary>
    /// The lock that holds whatever happens to the files in the data directory: an flock on the directory itself, which
    /// cannot be deleted or replaced from under the daemon as <c>sparky.lock</c> can (deleting that file let a second
    /// daemon in). Kept alongside <c>sparky.lock</c>, which an older Sparky takes. Where the file system has no flock on
    /// a directory (NFS answers EBADF or ENOLCK), <c>sparky.lock</c> alone stands, as before.
    /// </summary>
    private static Microsoft.Win32.SafeHandles.SafeFileHandle? LockDirectory(string dataDir)
    {
        var handle = Posix.LockDirectory(dataDir, out int err);
        if (handle is not null || err != Posix.EWOULDBLOCK) return handle;
        string holder = "";
        try { holder = File.ReadAllText(Path.Combine(dataDir, "sparky.pid")).Trim(); } catch (IOException) { }
        throw new InvalidOperationException($"another daemon{(holder.Length > 0 ? $" (pid {holder})" : "")} is using the data directory {Path.GetFullPath(dataDir)}");
    }

    private static string HostOf(string hostPort) => hostPort[..hostPort.LastIndexOf(':')];


    /// <summary>For <see cref="IdleTrim"/>: queued plus running, and submitted plus ended (changes with any work).</summary>
    private IdleTrim.Activity ReadActivity()
    {
        var c = Store.Counters;
        long active = c.Total(TaskState.Queued) + c.Total(TaskState.Running);
        long ended = c.Total(TaskState.Succeeded) + c.Total(TaskState.Failed) + c.Total(TaskState.Cancelled);
        return new(active, active + 2 * ended);
    }

    public ValueTask DisposeAsync() => DisposeAsync(keepLogs: false);

    private async ValueTask DisposeAsync(bool keepLogs)
    {
        if (Started) _systemd.Notify(ServiceState.Stopping);
        _idleTrim?.Dispose();
        if (_gpuSampler is not null) await _gpuSampler.DisposeAsync();
        _drop?.Dispose();
        if (_app is not null)
        {
            using (var cts = new CancellationTokenSource(TimeSpan.FromSeconds(2))) await _app.StopAsync(cts.Token);
            await _app.DisposeAsync();
        }
        Embeddings?.Dispose(); // after HTTP: no request is left waiting for a batch
        _commands?.Dispose();
        if (Plans is not null) await Plans.DisposeAsync();
        await Engine.DisposeAsync();
        Progress.Dispose(); // after the engine (no more attempts), before the store (what it owes is written)
        _artifacts?.Dispose(); // a hash cut short stays owed, for the next start
        _events?.Dispose();
        _done?.Dispose();
        await Store.DisposeAsync();
        Gpus.Dispose();
        _lock?.Dispose();
        _dirLock?.Dispose();
        if (!keepLogs) Logs.Dispose();
    }
}
