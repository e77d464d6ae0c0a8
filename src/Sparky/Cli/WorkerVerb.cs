using System.CommandLine;
using System.Runtime.InteropServices;
using Sparky.Core.Tasks;
using Sparky.Worker;

namespace Sparky.Cli;

/// <summary><c>sparky worker --connect ADDR</c>: pulls tasks of the daemon's worker classes over ZeroMQ and runs them here.</summary>
internal static class WorkerVerb
{
    public static Command Build()
    {
        var connect = new Option<string?>("--connect") { Description = "the daemon's command socket, tcp://HOST:PORT (default: $SPARKY_ZMQ, else tcp://127.0.0.1:5555)" };
        var name = new Option<string?>("--name") { Description = "this worker's name, unique per daemon; a restart under the same name takes over (default: the host name)" };
        var slots = new Option<int?>("--slots") { Description = "tasks run at once (default: the CPU count, or $SLURM_CPUS_PER_TASK in a Slurm job)" };
        var classes = new Option<string?>("--classes") { Description = "only these worker classes, comma-separated (default: all)" };
        var gpus = new Option<string?>("--gpus") { Description = "GPUs to hand out, as CUDA_VISIBLE_DEVICES names them (default: $CUDA_VISIBLE_DEVICES; none if unset)" };
        var idle = new Option<string?>("--idle-timeout") { Description = "leave after this long with nothing to run, such as 60 or 5m (default: never)" };
        var walltime = new Option<string?>("--walltime") { Description = "leave at this age, draining first (a pilot's Slurm time limit)" };
        var drain = new Option<string?>("--drain") { Description = "stop taking tasks this long before --walltime (default: 0)" };
        var serverKey = new Option<string?>("--server-key") { Description = "the daemon's CURVE public key, or a file holding it (sparky.pub); needed where the daemon uses CURVE" };
        var key = new Option<string?>("--key") { Description = "this worker's key file (sparky keys --worker NAME writes it); needed where the daemon checks worker keys" };
        var pilot = new Option<string?>("--pilot") { Description = "the pilot job this worker runs in (set by the daemon in pilot mode)", Hidden = true };
        var prefetch = new Option<int?>("--prefetch") { Description = "tasks to hold beyond the slots, so the next starts without a round trip (for many short tasks; default 0)" };
        var containment = new Option<string?>("--containment") { Description = "how each task's processes are kept together: auto (a cgroup per attempt where the host allows, holding a task to the memory it asked for) or marker (default: $SPARKY_CONTAINMENT, else auto)" };
        var guard = new Option<string?>("--guard") { Description = "run as a worker's guard (started by the worker itself)", Hidden = true };
        var c = new Command("worker", "Run tasks of the daemon's worker classes here, pulled over ZeroMQ.")
            { connect, name, slots, classes, gpus, idle, walltime, drain, serverKey, key, prefetch, containment, pilot, guard };
        c.SetAction((p, ct) =>
        {
            if (p.GetValue(guard) is { } token) return Task.FromResult(WorkerAgent.Guard(token));
            var options = new WorkerOptions
            {
                Connect = p.GetValue(connect) ?? Environment.GetEnvironmentVariable("SPARKY_ZMQ") ?? "tcp://127.0.0.1:5555",
                Name = p.GetValue(name) ?? Environment.MachineName,
                Slots = p.GetValue(slots) ?? (int.TryParse(Environment.GetEnvironmentVariable("SLURM_CPUS_PER_TASK"), out int n) && n > 0 ? n : Environment.ProcessorCount),
                Classes = p.GetValue(classes)?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries),
                Gpus = (p.GetValue(gpus) ?? Environment.GetEnvironmentVariable("CUDA_VISIBLE_DEVICES") ?? "")
                    .Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries),
                IdleTimeout = Duration(p.GetValue(idle), "--idle-timeout"),
                Walltime = Duration(p.GetValue(walltime), "--walltime"),
                Drain = Duration(p.GetValue(drain), "--drain") ?? TimeSpan.Zero,
                ServerKey = Key(p.GetValue(serverKey)),
                Key = OwnKey(p.GetValue(key)),
                Pilot = p.GetValue(pilot),
                Prefetch = p.GetValue(prefetch) ?? 0,
                Containment = p.GetValue(containment) ?? Environment.GetEnvironmentVariable("SPARKY_CONTAINMENT") ?? "auto",
            };
            if (options.Containment is not ("auto" or "marker")) throw new CliException($"--containment: auto or marker, got '{options.Containment}'", 2);
            if (!options.Connect.StartsWith("tcp://", StringComparison.Ordinal) && !options.Connect.StartsWith("ipc://", StringComparison.Ordinal))
                throw new CliException($"--connect: expected tcp://HOST:PORT, got '{options.Connect}'", 2);
            if (!TaskId.TryParse(options.Name, out _))
                throw new CliException($"--name: '{options.Name}' must match ^[A-Za-z0-9][A-Za-z0-9._-]{{0,127}}$", 2);
            if (options.Key is not null && options.ServerKey is null) throw new CliException("--key needs --server-key (the daemon's public key)", 2);
            if (options.Slots is < 1 or > 100_000) throw new CliException("--slots: from 1 to 100000", 2);
            if (options.Prefetch is < 0 or > 100_000) throw new CliException("--prefetch: from 0 to 100000", 2);
            using var agent = new WorkerAgent(options, Console.Error.WriteLine);
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
            using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, ctx => { ctx.Cancel = true; stop.Cancel(); });
            using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, ctx => { ctx.Cancel = true; stop.Cancel(); });
            return Task.FromResult(agent.Run(stop.Token));
        });
        return c;
    }

    private static TimeSpan? Duration(string? text, string flag)
    {
        if (text is null) return null;
        if (!Durations.TryParseSeconds(text, out var s)) throw new CliException($"{flag}: '{text}' is not a duration (such as 30, 90s, 5m, 1h)", 2);
        return TimeSpan.FromSeconds(s);
    }

    private static NetMQ.NetMQCertificate? OwnKey(string? path)
    {
        if (path is null) return null;
        try { return Sparky.Server.Zmq.CurveKeys.Load(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException) { throw new CliException($"--key: {e.Message.Split('\n')[0]}", 2); }
    }

    /// <summary>A Z85 key (40 characters), or a file whose first line that is not a comment is one.</summary>
    private static string? Key(string? value)
    {
        if (value is null) return null;
        if (File.Exists(value))
            value = File.ReadLines(value).Select(l => l.Trim()).FirstOrDefault(l => l.Length > 0 && !l.StartsWith('#')) ?? "";
        if (value.Length != 40) throw new CliException("--server-key: expected the daemon's CURVE public key (40 Z85 characters, as sparky keys prints) or its sparky.pub file", 2);
        return value;
    }
}
