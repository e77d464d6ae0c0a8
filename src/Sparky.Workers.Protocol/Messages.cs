using PolyType;
using Sparky.Core.Tasks;
using Sparky.Core.Workers;

namespace Sparky.Workers.Protocol;

// One record per message of docs/workers.md. The names in PropertyShape are the wire's keys (they never change); the
// formatters are generated from these records (PolyType's source generator, read by Nerdbank.MessagePack). A value
// left null (or, where not `required`, at its default) is not written: absent and nil mean the same to every reader.
// Keys a record does not name are skipped when read.

/// <summary>A message of the worker protocol; <see cref="Type"/> is its envelope's <c>type</c>.</summary>
public interface IMessage<TSelf> where TSelf : IMessage<TSelf>
{
    static abstract string Type { get; }
}

/// <summary>What a worker sends the daemon.</summary>
public interface IFromWorker;

/// <summary>What a worker sends within a session: the daemon answers 410 to a session it does not know.</summary>
public interface ISessionMessage : IFromWorker
{
    string? Session { get; }
}

/// <summary>An attempt by its task and number: what a worker holds, what the daemon acknowledges or has it kill.</summary>
[GenerateShape]
public sealed partial record AttemptRef
{
    [PropertyShape(Name = "id")] public required string? Id { get; init; }
    [PropertyShape(Name = "attempt")] public required int? Attempt { get; init; }
}

// ---------- worker -> daemon ----------

/// <summary><c>hello</c>: a worker joins (or joins again), saying what it offers and what it still holds.</summary>
[GenerateShape]
public sealed partial record Hello : IMessage<Hello>, IFromWorker
{
    public static string Type => "hello";
    public const string NamePattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$";

    [PropertyShape(Name = "name")] public required string? Name { get; init; }
    [PropertyShape(Name = "host")] public string? Host { get; init; }
    [PropertyShape(Name = "slots")] public long? Slots { get; init; }
    [PropertyShape(Name = "gpus")] public long? Gpus { get; init; }
    [PropertyShape(Name = "memory_mb")] public long? MemoryMb { get; init; }
    /// <summary>Tasks it takes now; absent: its slots.</summary>
    [PropertyShape(Name = "credits")] public long? Credits { get; init; }
    [PropertyShape(Name = "prefetch")] public long? Prefetch { get; init; }
    /// <summary>The classes it takes; absent: every worker class of the daemon.</summary>
    [PropertyShape(Name = "classes")] public List<string?>? Classes { get; init; }
    [PropertyShape(Name = "pilot")] public required string? Pilot { get; init; }
    /// <summary>What it still runs (or holds, or ended unacknowledged) from an earlier session.</summary>
    [PropertyShape(Name = "running")] public List<AttemptRef?>? Running { get; init; }

    /// <summary>The worker it describes, or why not (the daemon answers 400 <c>hello: …</c>).</summary>
    public string? Validate(out WorkerInfo info, out int credits, out List<(string Id, int Attempt)> held)
    {
        info = null!;
        credits = 0;
        held = [];
        if (!TaskId.TryParse(Name, out _)) return $"name must match {NamePattern}";
        var name = Name!;
        string host = Host is { Length: > 0 and <= 255 } h && !h.Any(char.IsControl) ? h : name;
        // A pilot is named by the daemon that submitted it, as a task id is.
        if (Pilot is not null && !TaskId.TryParse(Pilot, out _)) return $"pilot must match {NamePattern}";
        long slots = Slots ?? 1;
        if (slots is < 1 or > 100_000) return "slots must be from 1 to 100000";
        long gpus = Gpus ?? 0;
        if (gpus is < 0 or > 4096) return "gpus must be from 0 to 4096";
        HashSet<string>? classes = null;
        if (Classes is not null)
        {
            if (Classes.Any(c => c is null)) return "classes must be a list of class names";
            classes = new HashSet<string>(Classes!, StringComparer.Ordinal);
        }
        long prefetch = Prefetch ?? 0;
        if (prefetch is < 0 or > 100_000) return "prefetch must be from 0 to 100000";
        credits = (int)Math.Clamp(Credits ?? slots, int.MinValue, int.MaxValue);
        foreach (var e in Running ?? [])
        {
            if (e is not { Id: { } id, Attempt: { } a } || !TaskId.TryParse(id, out _)) return "running must be a list of {id, attempt}";
            held.Add((id, a));
        }
        info = new WorkerInfo(name, host, (int)slots, (int)gpus, MemoryMb ?? 0, classes, Pilot, (int)prefetch);
        return null;
    }
}

/// <summary><c>heartbeat</c>: the worker is alive; it lists what it holds and the highest task <c>seq</c> it has seen.</summary>
[GenerateShape]
public sealed partial record Heartbeat : IMessage<Heartbeat>, ISessionMessage
{
    public static string Type => "heartbeat";
    [PropertyShape(Name = "session")] public required string? Session { get; init; }
    [PropertyShape(Name = "held")] public List<AttemptRef?>? Held { get; init; }
    [PropertyShape(Name = "seen")] public long? Seen { get; init; }
}

/// <summary><c>credit</c>: the worker takes <see cref="N"/> more tasks.</summary>
[GenerateShape]
public sealed partial record Credit : IMessage<Credit>, ISessionMessage
{
    public static string Type => "credit";
    [PropertyShape(Name = "session")] public required string? Session { get; init; }
    [PropertyShape(Name = "n")] public int? N { get; init; }
}

/// <summary><c>finished</c>: an attempt ended on the worker (sent again until a heartbeat's answer acknowledges it).</summary>
[GenerateShape]
public sealed partial record Finished : IMessage<Finished>, ISessionMessage
{
    public static string Type => "finished";
    [PropertyShape(Name = "session")] public required string? Session { get; init; }
    [PropertyShape(Name = "id")] public required string? Id { get; init; }
    [PropertyShape(Name = "attempt")] public required int? Attempt { get; init; }
    [PropertyShape(Name = "exit_code")] public required int? ExitCode { get; init; }
    [PropertyShape(Name = "signal")] public required int? Signal { get; init; }
    /// <summary>Credits it gives back with this end (0 while draining).</summary>
    [PropertyShape(Name = "credit")] public required int? Credit { get; init; }
    /// <summary>The result line's JSON, as text.</summary>
    [PropertyShape(Name = "result")] public string? Result { get; init; }
    [PropertyShape(Name = "result_error")] public string? ResultError { get; init; }
    /// <summary>Why it ended other than by its exit (<c>spawn_failed</c>).</summary>
    [PropertyShape(Name = "reason")] public string? Reason { get; init; }
    [PropertyShape(Name = "cpu_ms")] public long? CpuMs { get; init; }
    [PropertyShape(Name = "mem_peak_bytes")] public long? MemPeakBytes { get; init; }
    [PropertyShape(Name = "oom")] public bool? Oom { get; init; }

    /// <summary>The attempt it names, or null: the daemon answers 400 <c>finished needs id and attempt</c>.</summary>
    public (TaskId Id, int Attempt)? Attempted() =>
        TaskId.TryParse(Id, out var id) && Attempt is { } a ? (id, a) : null;
}

/// <summary><c>draining</c>: the worker takes no new task (its walltime is near).</summary>
[GenerateShape]
public sealed partial record Draining : IMessage<Draining>, ISessionMessage
{
    public static string Type => "draining";
    [PropertyShape(Name = "session")] public required string? Session { get; init; }
}

/// <summary><c>bye</c>: the worker leaves; with <see cref="Abandon"/>, leaving tasks behind to be queued again.</summary>
[GenerateShape]
public sealed partial record Bye : IMessage<Bye>, ISessionMessage
{
    public static string Type => "bye";
    [PropertyShape(Name = "session")] public required string? Session { get; init; }
    [PropertyShape(Name = "abandon")] public bool? Abandon { get; init; }
}

// ---------- daemon -> worker ----------

/// <summary><c>hello.ok</c>: the session, the timing, and held attempts the worker must kill (queued again meanwhile).</summary>
[GenerateShape]
public sealed partial record HelloOk : IMessage<HelloOk>
{
    public static string Type => "hello.ok";
    [PropertyShape(Name = "session")] public required string? Session { get; init; }
    [PropertyShape(Name = "heartbeat_ms")] public required long? HeartbeatMs { get; init; }
    [PropertyShape(Name = "timeout_ms")] public required long? TimeoutMs { get; init; }
    [PropertyShape(Name = "kill")] public required List<AttemptRef>? Kill { get; init; }
}

/// <summary><c>heartbeat.ok</c>: the ends handled since the last heartbeat.</summary>
[GenerateShape]
public sealed partial record HeartbeatOk : IMessage<HeartbeatOk>
{
    public static string Type => "heartbeat.ok";
    [PropertyShape(Name = "acked")] public required List<AttemptRef>? Acked { get; init; }
}

/// <summary><c>bye.ok</c>: left, or not yet (<see cref="Running"/> tasks run first; it says bye again).</summary>
[GenerateShape]
public sealed partial record ByeOk : IMessage<ByeOk>
{
    public static string Type => "bye.ok";
    [PropertyShape(Name = "left")] public required bool Left { get; init; }
    [PropertyShape(Name = "running")] public int? Running { get; init; }
}

/// <summary><c>draining.ok</c>: sent with no body (nil).</summary>
public static class DrainingOk
{
    public const string Type = "draining.ok";
}

/// <summary><c>task</c>: run this attempt. Unasked (corr nil); <see cref="Seq"/> numbers it for the heartbeat's <c>seen</c>.</summary>
[GenerateShape]
public sealed partial record TaskMessage : IMessage<TaskMessage>
{
    public static string Type => "task";
    [PropertyShape(Name = "session")] public required string? Session { get; init; }
    [PropertyShape(Name = "seq")] public required long? Seq { get; init; }
    [PropertyShape(Name = "id")] public required string? Id { get; init; }
    [PropertyShape(Name = "attempt")] public required int? Attempt { get; init; }
    [PropertyShape(Name = "command")] public required List<string?>? Command { get; init; }
    [PropertyShape(Name = "env")] public required Dictionary<string, string?>? Env { get; init; }
    [PropertyShape(Name = "cwd")] public required string? Cwd { get; init; }
    /// <summary>Whole GPUs the worker hands it.</summary>
    [PropertyShape(Name = "gpus")] public required int? Gpus { get; init; }
    [PropertyShape(Name = "stdout")] public required string? Stdout { get; init; }
    [PropertyShape(Name = "stderr")] public required string? Stderr { get; init; }
    /// <summary>A payload that names work, for the class's handler (which the command then is).</summary>
    [PropertyShape(Name = "payload")] public string? Payload { get; init; }
    /// <summary>The memory it asked for: the worker holds it to that, as the daemon would; absent: no limit.</summary>
    [PropertyShape(Name = "memory_mb")] public long? MemoryMb { get; init; }
    /// <summary>Reserve a port on the worker's host for it (<c>MASTER_PORT</c>, <c>SPARKY_PORT</c>); absent: none.</summary>
    [PropertyShape(Name = "port")] public bool? Port { get; init; }
}

/// <summary><c>kill</c>: signal this attempt (a cancel, a timeout); its end comes back as a <c>finished</c>.</summary>
[GenerateShape]
public sealed partial record Kill : IMessage<Kill>
{
    public static string Type => "kill";
    [PropertyShape(Name = "session")] public required string? Session { get; init; }
    [PropertyShape(Name = "id")] public required string? Id { get; init; }
    [PropertyShape(Name = "attempt")] public required int? Attempt { get; init; }
    [PropertyShape(Name = "signal")] public required int? Signal { get; init; }
}

/// <summary><c>error</c>: a refusal, with an HTTP-like status (400 bad message, 409 refused hello, 410 unknown session).</summary>
[GenerateShape]
public sealed partial record ErrorReply : IMessage<ErrorReply>
{
    public static string Type => "error";
    [PropertyShape(Name = "status")] public required int? Status { get; init; }
    [PropertyShape(Name = "detail")] public required string? Detail { get; init; }
}
