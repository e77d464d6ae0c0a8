using System.Globalization;
using Sparky.Core.Workers;
using Sparky.Execution.Processes;
using Sparky.Execution.Slurm;

namespace Sparky.Server.Daemon;

/// <summary>
/// Pilot mode: for pilot classes the engine asks Slurm for worker jobs (<c>sparky worker --connect …</c> inside
/// <c>sbatch</c>) while their tasks wait, up to <c>pilot_max_workers</c>; a pilot idle for <c>pilot_idle_timeout</c>
/// ends its own job, and one near its <c>pilot_walltime</c> drains first. Pilot jobs go through the same Slurm executor
/// as tasks (one batched squeue, idempotent sbatch by comment). Everything here runs on the engine's loop thread.
/// </summary>
public sealed partial class Engine
{
    private sealed class PilotJob(string id)
    {
        public string Id { get; } = id;
        public string? JobId { get; set; }
        public bool Connected { get; set; }
        /// <summary>Submitted by an earlier daemon: no Slurm job of ours to follow, only its worker.</summary>
        public bool Inherited { get; init; }
    }

    private readonly Dictionary<string, PilotJob> _pilots = new(StringComparer.Ordinal);
    private PilotPlanner? _pilotPlanner;
    private DateTimeOffset _nextPilotCheck;
    private int _pilotSeq;
    /// <summary>Makes pilot ids unique across daemon restarts (Slurm's comment names the pilot).</summary>
    private readonly string _pilotPrefix = DateTimeOffset.UtcNow.ToUnixTimeSeconds().ToString("x", CultureInfo.InvariantCulture)
        + Random.Shared.Next(0x10000).ToString("x4", CultureInfo.InvariantCulture);

    /// <summary>The start of this daemon's pilot names (and Slurm job names): <c>pilot-&lt;hex&gt;-</c>.</summary>
    public string PilotNamePrefix => $"pilot-{_pilotPrefix}-";

    /// <summary>Pilot jobs submitted and not ended, for the API and tests.</summary>
    public int PilotJobs => Volatile.Read(ref _pilotCount);
    private int _pilotCount;

    private void ManagePilots(DateTimeOffset now)
    {
        if (_pilotPlanner is null || now < _nextPilotCheck) return;
        _nextPilotCheck = now.AddMilliseconds(500); // first: the loop wakes for it even when no pilot can be started
        if (_slurm is null || Workers is null) return;
        int backlog = 0, free = _workers.FreeCredits(_config.PilotClasses); // a pilot serves every pilot class: count it once
        foreach (var cls in _config.PilotClasses) backlog += _scheduler.ReadyCount(cls);
        foreach (var r in _awaitingWorker) if (_config.PilotClasses.Contains(r.Class)) backlog++;
        if (backlog == 0) return;
        int pending = 0, connected = 0;
        foreach (var p in _pilots.Values)
        {
            if (!p.Connected) pending++;
            else if (_workers.ByName(p.Id) is { Draining: false }) connected++;
        }
        int n = _pilotPlanner.ToSubmit(backlog, free, pending, connected, now);
        for (int i = 0; i < n; i++) SubmitPilot();
    }

    private void SubmitPilot()
    {
        var id = PilotNamePrefix + (++_pilotSeq).ToString(CultureInfo.InvariantCulture);
        var dir = Path.Combine(_logsDir, "pilots");
        Directory.CreateDirectory(dir);
        var walltime = _config.PilotWalltime.TotalSeconds;
        var argv = new List<string>(PilotCommand())
        {
            "worker", "--connect", PilotEndpoint(), "--name", id, "--pilot", id,
            "--slots", _config.PilotSlots.ToString(CultureInfo.InvariantCulture),
            "--classes", string.Join(',', _config.PilotClasses),
            "--idle-timeout", Seconds(_config.PilotIdleTimeout), "--walltime", Seconds(_config.PilotWalltime), "--drain", Seconds(_config.PilotDrain),
        };
        if (_config.PilotPrefetch > 0) argv.AddRange(["--prefetch", _config.PilotPrefetch.ToString(CultureInfo.InvariantCulture)]);
        if (Workers!.ServerPublicKey is { } key) argv.AddRange(["--server-key", key]); // public: safe in a job script
        // The pilots' own key: a file (0600) in the data dir, which a pilot reads on the shared file system as it
        // writes the task logs there; only its path is in the job script.
        if (Workers.PilotKeyFile is { } keyFile) argv.AddRange(["--key", keyFile]);
        var request = new SbatchRequest(id, 1, argv, new Dictionary<string, string>(), null, id, _config.PilotSlots, 0, 0,
            // Slurm counts minutes: its limit falls after the pilot's own end, which drains first.
            walltime + 60, _config.SlurmPartition, _config.SlurmAccount,
            Path.Combine(dir, id + ".out"), Path.Combine(dir, id + ".err"), [], null, _config.SbatchOptionsFor("pilot"));
        _pilots[id] = new PilotJob(id);
        Volatile.Write(ref _pilotCount, _pilots.Count);
        _slurm!.Submit(request, lookFirst: false, afterTasks: []);
    }

    private static string Seconds(TimeSpan t) => Math.Ceiling(t.TotalSeconds).ToString(CultureInfo.InvariantCulture);

    /// <summary>pilot_command split on spaces, or this daemon's own executable (under dotnet: dotnet and the dll).</summary>
    private IReadOnlyList<string> PilotCommand()
    {
        if (_config.PilotCommand is { } configured) return configured.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        return SelfCommand.Get();
    }

    /// <summary>pilot_connect, or the bound command endpoint; a wildcard address is no address to connect to.</summary>
    private string PilotEndpoint()
    {
        if (_config.PilotConnect is { } configured) return configured;
        var ep = Workers!.Endpoint;
        foreach (var any in new[] { "tcp://0.0.0.0:", "tcp://*:", "tcp://[::]:" })
            if (ep.StartsWith(any, StringComparison.Ordinal)) return "tcp://" + Environment.MachineName + ":" + ep[any.Length..];
        return ep;
    }

    /// <summary>A Slurm report about a pilot job, not a task. True if it was one.</summary>
    private bool OnPilotReport(SlurmReport report, DateTimeOffset now)
    {
        if (!_pilots.TryGetValue(report.TaskId, out var p)) return false;
        switch (report)
        {
            case SlurmReport.Submitted s:
                p.JobId = s.JobId;
                Observer.SlurmJobSubmitted();
                break;
            case SlurmReport.SubmitFailed f:
                EngineLog.PilotSubmitFailed(_log, p.Id, f.Error);
                PilotEnded(p, now);
                break;
            case SlurmReport.Ended e:
                if (!p.Connected)
                    EngineLog.PilotEndedUnconnected(_log, p.Id, e.JobId, e.State, Path.Combine(_logsDir, "pilots", p.Id + ".err"));
                if (e.JobId.Length > 0) Observer.SlurmJobCompleted(e.Phase == SlurmPhase.Succeeded ? "succeeded" : "failed");
                PilotEnded(p, now);
                break;
        }
        return true;
    }

    private void PilotEnded(PilotJob p, DateTimeOffset now)
    {
        _pilots.Remove(p.Id);
        Volatile.Write(ref _pilotCount, _pilots.Count);
        if (!p.Connected) _pilotPlanner?.EndedUnconnected(now);
    }

    private void PilotConnected(Worker w)
    {
        if (w.Info.Pilot is not { } id) return;
        if (!_pilots.TryGetValue(id, out var p))
        {
            p = new PilotJob(id) { Inherited = true };
            _pilots[id] = p;
            Volatile.Write(ref _pilotCount, _pilots.Count);
        }
        p.Connected = true;
        _pilotPlanner?.Connected();
    }

    /// <summary>A pilot's worker left or was lost. Its job is followed until Slurm says it ended; an inherited one has no job to follow.</summary>
    private void PilotGone(Worker w, DateTimeOffset now)
    {
        if (w.Info.Pilot is { } id && _pilots.TryGetValue(id, out var p) && p.Inherited) PilotEnded(p, now);
    }
}
