using System.Globalization;
using Microsoft.Extensions.Logging;
using Sparky.Core.Config;
using Sparky.Core.Workers;
using Sparky.Execution.Processes;
using Sparky.Execution.Slurm;
using Sparky.Server.Daemon;

namespace Sparky.Server.Executors.Workers;

/// <summary>
/// Pilot mode: for pilot classes the worker executor asks Slurm for worker jobs (<c>sparky worker --connect …</c> inside
/// <c>sbatch</c>) while their tasks wait, up to <c>pilot_max_workers</c>; a pilot idle for <c>pilot_idle_timeout</c>
/// ends its own job, and one near its <c>pilot_walltime</c> drains first. Pilot jobs go through the same Slurm client
/// as tasks (one batched squeue, idempotent sbatch by comment). Everything here runs on the engine's loop thread, but
/// for <see cref="Count"/>.
/// </summary>
internal sealed class Pilots(SparkyConfig config, SlurmExecutor? slurm, Func<WorkerLink?> link, WorkerPool workers,
    IEngineObserver observer, ILogger log, string logsDir)
{
    private sealed class PilotJob(string id)
    {
        public string Id { get; } = id;
        public string? JobId { get; set; }
        public bool Connected { get; set; }
        /// <summary>Submitted by an earlier daemon: no Slurm job of ours to follow, only its worker.</summary>
        public bool Inherited { get; init; }
        /// <summary>When this daemon asked Slurm for it; null for an inherited one.</summary>
        public DateTimeOffset? SubmittedAt { get; init; }
    }

    private readonly Dictionary<string, PilotJob> _pilots = new(StringComparer.Ordinal);
    private readonly PilotPlanner? _planner = config.PilotClasses.Count > 0 ? new PilotPlanner(config.PilotMaxWorkers, config.PilotSlots) : null;
    private DateTimeOffset _nextCheck;
    private int _seq;
    private int _count;
    /// <summary>Makes pilot ids unique across daemon restarts (Slurm's comment names the pilot).</summary>
    private readonly string _prefix = DateTimeOffset.UtcNow.ToUnixTimeSeconds().ToString("x", CultureInfo.InvariantCulture)
        + Random.Shared.Next(0x10000).ToString("x4", CultureInfo.InvariantCulture);

    /// <summary>The start of this daemon's pilot names (and Slurm job names): <c>pilot-&lt;hex&gt;-</c>.</summary>
    public string NamePrefix => $"pilot-{_prefix}-";

    /// <summary>Pilot jobs submitted and not ended, for the API and tests. Any thread.</summary>
    public int Count => Volatile.Read(ref _count);

    /// <summary>When pilots are next looked at; null where no class runs on pilots.</summary>
    public DateTimeOffset? NextCheck => _planner is null ? null : _nextCheck;

    /// <summary>Submits the pilots <paramref name="backlog"/> (the pilot classes' tasks waiting) calls for, twice a second.</summary>
    public void Manage(DateTimeOffset now, Func<int> backlog)
    {
        if (_planner is null || now < _nextCheck) return;
        _nextCheck = now.AddMilliseconds(500); // first: the loop wakes for it even when no pilot can be started
        if (slurm is null || link() is not { } to) return;
        int waiting = backlog(), free = workers.FreeCredits(config.PilotClasses); // a pilot serves every pilot class: count it once
        if (waiting == 0) return;
        int pending = 0, connected = 0;
        foreach (var p in _pilots.Values)
        {
            if (!p.Connected) pending++;
            else if (workers.ByName(p.Id) is { Draining: false }) connected++;
        }
        int n = _planner.ToSubmit(waiting, free, pending, connected, now);
        for (int i = 0; i < n; i++) Submit(slurm, to, now);
    }

    private void Submit(SlurmExecutor client, WorkerLink to, DateTimeOffset now)
    {
        var id = NamePrefix + (++_seq).ToString(CultureInfo.InvariantCulture);
        var dir = Path.Combine(logsDir, "pilots");
        Directory.CreateDirectory(dir);
        var walltime = config.PilotWalltime.TotalSeconds;
        var argv = new List<string>(Command())
        {
            "worker", "--connect", Endpoint(to), "--name", id, "--pilot", id,
            "--slots", config.PilotSlots.ToString(CultureInfo.InvariantCulture),
            "--classes", string.Join(',', config.PilotClasses),
            "--idle-timeout", Seconds(config.PilotIdleTimeout), "--walltime", Seconds(config.PilotWalltime), "--drain", Seconds(config.PilotDrain),
        };
        if (config.PilotPrefetch > 0) argv.AddRange(["--prefetch", config.PilotPrefetch.ToString(CultureInfo.InvariantCulture)]);
        if (to.ServerPublicKey is { } key) argv.AddRange(["--server-key", key]); // public: safe in a job script
        // The pilots' own key: a file (0600) in the data dir, which a pilot reads on the shared file system as it
        // writes the task logs there; only its path is in the job script.
        if (to.PilotKeyFile is { } keyFile) argv.AddRange(["--key", keyFile]);
        var request = new SbatchRequest(id, 1, argv, new Dictionary<string, string>(), null, id, config.PilotSlots, 0, 0,
            // Slurm counts minutes: its limit falls after the pilot's own end, which drains first.
            walltime + 60, config.SlurmPartition, config.SlurmAccount,
            Path.Combine(dir, id + ".out"), Path.Combine(dir, id + ".err"), [], null, config.SbatchOptionsFor("pilot"));
        _pilots[id] = new PilotJob(id) { SubmittedAt = now };
        Volatile.Write(ref _count, _pilots.Count);
        client.Submit(request, lookFirst: false, afterTasks: []);
    }

    private static string Seconds(TimeSpan t) => Math.Ceiling(t.TotalSeconds).ToString(CultureInfo.InvariantCulture);

    /// <summary>pilot_command split on spaces, or this daemon's own executable (under dotnet: dotnet and the dll).</summary>
    private IReadOnlyList<string> Command()
    {
        if (config.PilotCommand is { } configured) return configured.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        return SelfCommand.Get();
    }

    /// <summary>pilot_connect, or the bound command endpoint; a wildcard address is no address to connect to.</summary>
    private string Endpoint(WorkerLink to)
    {
        if (config.PilotConnect is { } configured) return configured;
        var ep = to.Endpoint;
        foreach (var any in new[] { "tcp://0.0.0.0:", "tcp://*:", "tcp://[::]:" })
            if (ep.StartsWith(any, StringComparison.Ordinal)) return "tcp://" + Environment.MachineName + ":" + ep[any.Length..];
        return ep;
    }

    /// <summary>The pilots followed now, oldest first, with Slurm's last word on each and the workers each brought up.</summary>
    public IReadOnlyList<PilotView> View()
    {
        var list = new List<PilotView>(_pilots.Count);
        foreach (var p in _pilots.Values.OrderBy(p => p.SubmittedAt ?? DateTimeOffset.MinValue).ThenBy(p => p.Id, StringComparer.Ordinal))
        {
            var slurmView = slurm?.ViewOf(p.Id);
            var started = workers.All.Where(w => w.Info.Pilot == p.Id).Select(w => w.Info.Name).Order(StringComparer.Ordinal).ToList();
            list.Add(new PilotView(p.Id, slurmView?.JobId ?? p.JobId, slurmView?.State, slurmView?.Node, p.Connected, p.Inherited, p.SubmittedAt, started));
        }
        return list;
    }

    /// <summary>A Slurm report about a pilot job, not a task. True if it was one.</summary>
    public bool OnReport(SlurmReport report, DateTimeOffset now)
    {
        if (!_pilots.TryGetValue(report.TaskId, out var p)) return false;
        switch (report)
        {
            case SlurmReport.Submitted s:
                p.JobId = s.JobId;
                observer.SlurmJobSubmitted();
                break;
            case SlurmReport.SubmitFailed f:
                WorkersLog.PilotSubmitFailed(log, p.Id, f.Error);
                Ended(p, now);
                break;
            case SlurmReport.Ended e:
                if (!p.Connected)
                    WorkersLog.PilotEndedUnconnected(log, p.Id, e.JobId, e.State, Path.Combine(logsDir, "pilots", p.Id + ".err"));
                if (e.JobId.Length > 0) observer.SlurmJobCompleted(e.Phase == SlurmPhase.Succeeded ? "succeeded" : "failed");
                Ended(p, now);
                break;
        }
        return true;
    }

    private void Ended(PilotJob p, DateTimeOffset now)
    {
        _pilots.Remove(p.Id);
        Volatile.Write(ref _count, _pilots.Count);
        if (!p.Connected) _planner?.EndedUnconnected(now);
    }

    /// <summary>A worker said hello: where it is a pilot's, that pilot is connected (one an earlier daemon submitted is
    /// followed from now on).</summary>
    public void Connected(Worker w)
    {
        if (w.Info.Pilot is not { } id) return;
        if (!_pilots.TryGetValue(id, out var p))
        {
            p = new PilotJob(id) { Inherited = true };
            _pilots[id] = p;
            Volatile.Write(ref _count, _pilots.Count);
        }
        p.Connected = true;
        _planner?.Connected();
    }

    /// <summary>A pilot's worker left or was lost. Its job is followed until Slurm says it ended; an inherited one has no job to follow.</summary>
    public void Gone(Worker w, DateTimeOffset now)
    {
        if (w.Info.Pilot is { } id && _pilots.TryGetValue(id, out var p) && p.Inherited) Ended(p, now);
    }
}
