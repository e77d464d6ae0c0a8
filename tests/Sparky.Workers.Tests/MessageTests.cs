using System.Buffers;
using Nerdbank.MessagePack;
using PolyType;
using Sparky.Workers.Protocol;

namespace Sparky.Workers.Tests;

/// <summary>
/// Each message of the worker protocol goes through the envelope and back unchanged, writes exactly the keys the wire
/// has always had (docs/workers.md), and reads a map written by hand with those keys: what today's workers, the
/// daemon before this library and the hand-written test workers send.
/// </summary>
public sealed class MessageTests
{
    private static readonly AttemptRef A1 = new() { Id = "t-1", Attempt = 1 };
    private static readonly AttemptRef A2 = new() { Id = "t-2", Attempt = 3 };

    /// <summary>Writes <paramref name="m"/> in an envelope, reads the envelope and the body back.</summary>
    private static (T Back, Incoming Envelope, string[] Keys) RoundTrip<T>(T m) where T : class, IMessage<T>, IShapeable<T>
    {
        var buffer = new ArrayBufferWriter<byte>();
        WorkerWire.Write(buffer, WorkerWire.Corr(42), m);
        Assert.True(WorkerWire.TryRead(buffer.WrittenMemory, out var env));
        Assert.Null(WorkerWire.TryRead<T>(env.Body, out var back));
        return (back!, env, Keys(env.Body));
    }

    private static string[] Keys(ReadOnlyMemory<byte> map)
    {
        var r = new MessagePackReader(map);
        int n = r.ReadMapHeader();
        var keys = new string[n];
        for (int i = 0; i < n; i++)
        {
            keys[i] = r.ReadString()!;
            r.Skip(new SerializationContext());
        }
        Array.Sort(keys, StringComparer.Ordinal);
        return keys;
    }

    private static string[] Sorted(params string[] keys) => keys.Order(StringComparer.Ordinal).ToArray();

    /// <summary>A map written by hand, key by key, as the old code did with JSON nodes.</summary>
    internal static ReadOnlyMemory<byte> Map(params (string Key, object? Value)[] pairs)
    {
        var buffer = new ArrayBufferWriter<byte>();
        var w = new MessagePackWriter(buffer);
        WriteValue(ref w, pairs);
        w.Flush();
        return buffer.WrittenMemory;
    }

    private static void WriteValue(ref MessagePackWriter w, object? v)
    {
        switch (v)
        {
            case null: w.WriteNil(); break;
            case string s: w.Write(s); break;
            case bool b: w.Write(b); break;
            case int i: w.Write(i); break;
            case long l: w.Write(l); break;
            case double d: w.Write(d); break;
            case (string, object?)[] map:
                w.WriteMapHeader(map.Length);
                foreach (var (k, x) in map) { w.Write(k); WriteValue(ref w, x); }
                break;
            case object?[] list:
                w.WriteArrayHeader(list.Length);
                foreach (var x in list) WriteValue(ref w, x);
                break;
            default: throw new ArgumentException(v.GetType().Name);
        }
    }

    private static T Read<T>(ReadOnlyMemory<byte> body) where T : IShapeable<T>
    {
        Assert.Null(WorkerWire.TryRead<T>(body, out var m));
        return m!;
    }

    [Fact]
    public void The_envelope_carries_type_corr_and_a_nil_body_where_there_is_none()
    {
        var buffer = new ArrayBufferWriter<byte>();
        WorkerWire.WriteEmpty(buffer, DrainingOk.Type, WorkerWire.Corr(7));
        Assert.True(WorkerWire.TryRead(buffer.WrittenMemory, out var env));
        Assert.Equal(("draining.ok", 7L), (env.Type, env.Corr));
        Assert.Equal([0xc0], env.Body.ToArray());
        Assert.Equal(Sorted("v", "type", "corr", "ts", "body"), Keys(buffer.WrittenMemory));
        Assert.Null(WorkerWire.TryRead<Draining>(env.Body, out var none));
        Assert.Null(none);

        // An unasked message (a task, a kill): corr is nil; with a key, auth comes along.
        buffer.ResetWrittenCount();
        WorkerWire.Write(buffer, default, new Draining { Session = "s" }, ("KEY", "PROOF"));
        Assert.True(WorkerWire.TryRead(buffer.WrittenMemory, out env));
        Assert.Null(env.Corr);
        Assert.Equal(Sorted("auth", "v", "type", "corr", "ts", "body"), Keys(buffer.WrittenMemory));
    }

    [Fact]
    public void Hello_round_trips_and_reads_what_a_worker_sends()
    {
        var hello = new Hello
        {
            Name = "w1", Host = "node-3", Slots = 8, Gpus = 2, MemoryMb = 64_000, Credits = 7, Prefetch = 2,
            Classes = ["gpu", "cpu_short"], Pilot = "p-9", Running = [A1, A2],
        };
        var (back, env, keys) = RoundTrip(hello);
        Assert.Equal(("hello", 42L), (env.Type, env.Corr));
        Assert.Equivalent(hello, back, strict: true);
        Assert.Equal(Sorted("name", "host", "slots", "gpus", "memory_mb", "credits", "prefetch", "classes", "pilot", "running"), keys);

        // As `sparky worker` has always sent it: pilot nil, no classes, and a key this daemon does not know.
        var read = Read<Hello>(Map(("name", "w1"), ("host", "h"), ("slots", 4), ("gpus", 0), ("memory_mb", 1024L), ("credits", 4),
            ("running", new object?[] { new (string, object?)[] { ("id", "t-1"), ("attempt", 1) } }), ("pilot", null), ("prefetch", 0), ("later", "ignored")));
        Assert.Null(read.Validate(out var info, out int credits, out var held));
        Assert.Equal(new Sparky.Core.Workers.WorkerInfo("w1", "h", 4, 0, 1024, null, null, 0), info);
        Assert.Equal(4, credits);
        Assert.Equal([("t-1", 1)], held);
    }

    [Fact]
    public void A_hello_with_only_a_name_takes_the_defaults()
    {
        Assert.Null(Read<Hello>(Map(("name", "w1"))).Validate(out var info, out int credits, out var held));
        Assert.Equal(new Sparky.Core.Workers.WorkerInfo("w1", "w1", 1, 0, 0, null, null, 0), info);
        Assert.Equal((1, 0), (credits, held.Count));
        // Only the name, without a null pilot: keys left null are not written unless the record requires them.
        Assert.Equal(Sorted("name", "pilot"), RoundTrip(new Hello { Name = "w1", Pilot = null }).Keys);
    }

    [Fact]
    public void Heartbeat_round_trips_and_reads_what_a_worker_sends()
    {
        var beat = new Heartbeat { Session = "s1", Held = [A1, A2], Seen = 12 };
        var (back, env, keys) = RoundTrip(beat);
        Assert.Equal("heartbeat", env.Type);
        Assert.Equivalent(beat, back, strict: true);
        Assert.Equal(Sorted("session", "held", "seen"), keys);
        var read = Read<Heartbeat>(Map(("held", new object?[] { new (string, object?)[] { ("id", "t-2"), ("attempt", 3) } }), ("seen", 5L), ("session", "s1")));
        Assert.Equal(("s1", 5L), (read.Session, read.Seen));
        Assert.Equivalent(new[] { A2 }, read.Held, strict: true);
        // A bare heartbeat (the hand-written test workers send one): no held list, so nothing is reconciled.
        Assert.Equal((null, null), (Read<Heartbeat>(Map(("session", "s1"))).Held, Read<Heartbeat>(Map(("session", "s1"))).Seen));
    }

    [Fact]
    public void Credit_round_trips_and_reads_what_a_worker_sends()
    {
        var credit = new Credit { Session = "s1", N = 3 };
        var (back, env, keys) = RoundTrip(credit);
        Assert.Equal("credit", env.Type);
        Assert.Equal(credit, back);
        Assert.Equal(Sorted("session", "n"), keys);
        Assert.Equal(credit, Read<Credit>(Map(("session", "s1"), ("n", 3))));
    }

    [Fact]
    public void Finished_round_trips_and_reads_what_a_worker_sends()
    {
        var done = new Finished
        {
            Session = "s1", Id = "t-1", Attempt = 2, ExitCode = 0, Signal = null, Credit = 1, Result = "{\"acc\":1}", ResultError = null,
            Reason = null, CpuMs = 1500, MemPeakBytes = 1 << 20, Oom = false,
        };
        var (back, env, keys) = RoundTrip(done);
        Assert.Equal("finished", env.Type);
        Assert.Equal(done, back);
        // The signal goes as nil (as it always did); the result error and the reason only where there is one.
        Assert.Equal(Sorted("session", "id", "attempt", "exit_code", "signal", "credit", "result", "cpu_ms", "mem_peak_bytes", "oom"), keys);
        var read = Read<Finished>(Map(("session", "s1"), ("id", "t-1"), ("attempt", 2), ("exit_code", null), ("signal", 9), ("credit", 0),
            ("reason", "spawn_failed"), ("oom", true), ("mem_peak_bytes", 5_000_000_000L)));
        Assert.Equal((Sparky.Core.Tasks.TaskId.Parse("t-1"), 2), read.Attempted());
        Assert.Equal((null, 9, 0, "spawn_failed", true, 5_000_000_000L), (read.ExitCode, read.Signal, read.Credit, read.Reason, read.Oom, read.MemPeakBytes));
    }

    [Fact]
    public void Draining_and_bye_round_trip_and_read_what_a_worker_sends()
    {
        var (drain, env, keys) = RoundTrip(new Draining { Session = "s1" });
        Assert.Equal(("draining", "s1"), (env.Type, drain.Session));
        Assert.Equal(["session"], keys);

        var bye = new Bye { Session = "s1", Abandon = true };
        var (back, byeEnv, byeKeys) = RoundTrip(bye);
        Assert.Equal(("bye", bye), (byeEnv.Type, back));
        Assert.Equal(Sorted("session", "abandon"), byeKeys);
        Assert.Equal(new Bye { Session = "s1" }, Read<Bye>(Map(("session", "s1"))));
        Assert.Equal(bye, Read<Bye>(Map(("abandon", true), ("session", "s1"))));
    }

    [Fact]
    public void Hello_ok_round_trips_and_reads_what_the_daemon_sends()
    {
        var ok = new HelloOk { Session = "s1", HeartbeatMs = 1000, TimeoutMs = 10_000, Kill = [A1] };
        var (back, env, keys) = RoundTrip(ok);
        Assert.Equal("hello.ok", env.Type);
        Assert.Equivalent(ok, back, strict: true);
        Assert.Equal(Sorted("session", "heartbeat_ms", "timeout_ms", "kill"), keys);
        // Nothing to kill is an empty list, not a missing key.
        Assert.Contains("kill", RoundTrip(ok with { Kill = [] }).Keys);
        var read = Read<HelloOk>(Map(("session", "s1"), ("heartbeat_ms", 200), ("timeout_ms", 1500), ("kill", Array.Empty<object?>())));
        Assert.Equal(("s1", 200L, 1500L, 0), (read.Session, read.HeartbeatMs, read.TimeoutMs, read.Kill!.Count));
    }

    [Fact]
    public void Heartbeat_ok_and_bye_ok_round_trip_and_read_what_the_daemon_sends()
    {
        var acked = new HeartbeatOk { Acked = [A1, A2] };
        var (back, env, keys) = RoundTrip(acked);
        Assert.Equal("heartbeat.ok", env.Type);
        Assert.Equivalent(acked, back, strict: true);
        Assert.Equal(["acked"], keys);
        Assert.Equivalent(new[] { A1 }, Read<HeartbeatOk>(Map(("acked", new object?[] { new (string, object?)[] { ("id", "t-1"), ("attempt", 1) } }))).Acked, strict: true);

        // Left: only that; not yet: with the count of what still runs. `left: false` is written, not left out.
        Assert.Equal(["left"], RoundTrip(new ByeOk { Left = true }).Keys);
        var stay = new ByeOk { Left = false, Running = 2 };
        var (stayBack, byeEnv, stayKeys) = RoundTrip(stay);
        Assert.Equal(("bye.ok", stay), (byeEnv.Type, stayBack));
        Assert.Equal(Sorted("left", "running"), stayKeys);
        Assert.Equal(stay, Read<ByeOk>(Map(("left", false), ("running", 2))));
    }

    [Fact]
    public void Task_round_trips_and_reads_what_the_daemon_sends()
    {
        var task = new TaskMessage
        {
            Session = "s1", Seq = 17, Id = "t-1", Attempt = 1, Command = ["/bin/sh", "-c", "echo hi"],
            Env = new() { ["SPARKY_TASK_ID"] = "t-1", ["A"] = "b" }, Cwd = "/work", Gpus = 1, Stdout = "/l/t-1.1.out", Stderr = "/l/t-1.1.err",
            Payload = "{\"x\":1}", MemoryMb = 512, Port = true,
        };
        var (back, env, keys) = RoundTrip(task);
        Assert.Equal("task", env.Type);
        Assert.Equivalent(task, back, strict: true);
        Assert.Equal(Sorted("session", "seq", "id", "attempt", "command", "env", "cwd", "gpus", "stdout", "stderr", "payload", "memory_mb", "port"), keys);
        // No payload, no memory limit, no port: those keys are left out; a null cwd is nil, as before.
        Assert.Equal(Sorted("session", "seq", "id", "attempt", "command", "env", "cwd", "gpus", "stdout", "stderr"),
            RoundTrip(task with { Payload = null, MemoryMb = null, Cwd = null, Port = null }).Keys);
        var read = Read<TaskMessage>(Map(("session", "s1"), ("seq", 3L), ("id", "t-1"), ("attempt", 2), ("command", new object?[] { "true" }),
            ("env", new (string, object?)[] { ("K", "v") }), ("cwd", null), ("gpus", 0), ("stdout", "o"), ("stderr", "e")));
        Assert.Equal(("s1", 3L, "t-1", 2, "true", "v", null, 0, "o", "e", null, null, null),
            (read.Session, read.Seq, read.Id, read.Attempt, read.Command![0], read.Env!["K"], read.Cwd, read.Gpus, read.Stdout, read.Stderr, read.Payload, read.MemoryMb, read.Port));
    }

    [Fact]
    public void Kill_and_error_round_trip_and_read_what_the_daemon_sends()
    {
        var kill = new Kill { Session = "s1", Id = "t-1", Attempt = 2, Signal = 15 };
        var (back, env, keys) = RoundTrip(kill);
        Assert.Equal(("kill", kill), (env.Type, back));
        Assert.Equal(Sorted("session", "id", "attempt", "signal"), keys);
        Assert.Equal(kill, Read<Kill>(Map(("signal", 15), ("attempt", 2), ("id", "t-1"), ("session", "s1"))));

        var error = new ErrorReply { Status = 410, Detail = "unknown session: say hello again" };
        var (errorBack, errorEnv, errorKeys) = RoundTrip(error);
        Assert.Equal(("error", error), (errorEnv.Type, errorBack));
        Assert.Equal(Sorted("status", "detail"), errorKeys);
        Assert.Equal(error, Read<ErrorReply>(Map(("status", 410), ("detail", "unknown session: say hello again"))));
    }
}
