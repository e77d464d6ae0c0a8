using Sparky.Workers.Protocol;
using static Sparky.Workers.Tests.MessageTests;

namespace Sparky.Workers.Tests;

/// <summary>What a worker that sends nonsense is told: the key at fault and what it must be, or what is missing;
/// the daemon prefixes the message's type (<c>hello: slots must be an integer</c>).</summary>
public sealed class BadInputTests
{
    private static string? FromWorker(string type, ReadOnlyMemory<byte> body) => WorkerWire.TryReadFromWorker(type, body, out _);

    private static string? HelloProblem(ReadOnlyMemory<byte> body)
    {
        if (FromWorker("hello", body) is { } typeProblem) return typeProblem;
        WorkerWire.TryRead<Hello>(body, out var hello);
        return hello is null ? "the body must be a map" : hello.Validate(out _, out _, out _);
    }

    [Theory]
    [InlineData("slots", "two", "slots must be an integer")]
    [InlineData("slots", 2.5, "slots must be an integer")]
    [InlineData("name", 5, "name must be a string")]
    [InlineData("pilot", true, "pilot must be a string")]
    [InlineData("classes", "gpu", "classes must be a list of strings")]
    public void A_hello_with_a_value_of_the_wrong_type_names_the_key(string key, object value, string expected) =>
        Assert.Equal(expected, HelloProblem(Map(("name", "w1"), (key, value))));

    [Fact]
    public void A_hello_with_values_out_of_range_is_refused_as_before()
    {
        Assert.Equal("name must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$", HelloProblem(Map(("name", "../etc/passwd"))));
        Assert.Equal("name must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$", HelloProblem(Map(("slots", 1))));
        Assert.Equal("slots must be from 1 to 100000", HelloProblem(Map(("name", "w1"), ("slots", 0))));
        Assert.Equal("slots must be from 1 to 100000", HelloProblem(Map(("name", "w1"), ("slots", 1L << 40))));
        Assert.Equal("gpus must be from 0 to 4096", HelloProblem(Map(("name", "w1"), ("gpus", -1))));
        Assert.Equal("prefetch must be from 0 to 100000", HelloProblem(Map(("name", "w1"), ("prefetch", 100_001))));
        Assert.Equal("classes must be a list of class names", HelloProblem(Map(("name", "w1"), ("classes", new object?[] { "gpu", null }))));
        Assert.Equal("running must be a list of {id, attempt}", HelloProblem(Map(("name", "w1"), ("running", new object?[] { 1, 2 }))));
        Assert.Equal("running must be a list of {id, attempt}",
            HelloProblem(Map(("name", "w1"), ("running", new object?[] { new (string, object?)[] { ("id", "../x"), ("attempt", 1) } }))));
        Assert.Equal("running must be a list of {id, attempt}",
            HelloProblem(Map(("name", "w1"), ("running", new object?[] { new (string, object?)[] { ("id", "t-1") } }))));
        // A host it cannot show is replaced by the name, as before; not an error.
        Assert.Null(HelloProblem(Map(("name", "w1"), ("host", new string('h', 300)))));
    }

    [Fact]
    public void A_body_that_is_not_a_map_is_refused()
    {
        Assert.Equal("the body must be a map", HelloProblem(Map(("x", new object?[] { 1, 2 }))[3..])); // the list alone
        Assert.Equal("the body must be a map", FromWorker("heartbeat", new byte[] { 0x92, 0x01, 0x02 }));
        Assert.Equal("the body must be a map", HelloProblem(new byte[] { 0xc0 })); // nil
        Assert.Equal("the body is not valid MessagePack", FromWorker("finished", new byte[] { 0x82, 0xa2, 0x69 }));
    }

    [Fact]
    public void A_finished_without_id_or_attempt_names_no_attempt()
    {
        Read(Map(("session", "s"), ("id", "t-1")), out var noAttempt);
        Assert.Null(noAttempt.Attempted());
        Read(Map(("session", "s"), ("attempt", 1)), out var noId);
        Assert.Null(noId.Attempted());
        Read(Map(("session", "s"), ("id", "../x"), ("attempt", 1)), out var badId);
        Assert.Null(badId.Attempted());
        Assert.Equal("attempt must be an integer", FromWorker("finished", Map(("session", "s"), ("id", "t-1"), ("attempt", "1"))));
        Assert.Equal("exit_code is out of range", FromWorker("finished", Map(("id", "t-1"), ("attempt", 1), ("exit_code", 1L << 40))));
        Assert.Equal("oom must be true or false", FromWorker("finished", Map(("id", "t-1"), ("attempt", 1), ("oom", 1))));

        static void Read(ReadOnlyMemory<byte> body, out Finished f)
        {
            Assert.Null(WorkerWire.TryRead<Finished>(body, out var m));
            f = m!;
        }
    }

    [Fact]
    public void Other_messages_name_the_key_at_fault()
    {
        Assert.Equal("session must be a string", FromWorker("draining", Map(("session", 1))));
        Assert.Equal("n must be an integer", FromWorker("credit", Map(("session", "s"), ("n", "3"))));
        Assert.Equal("held must be a list of {id, attempt}", FromWorker("heartbeat", Map(("session", "s"), ("held", new object?[] { "t-1" }))));
        Assert.Equal("seen must be an integer", FromWorker("heartbeat", Map(("session", "s"), ("seen", "7"))));
        Assert.Equal("abandon must be true or false", FromWorker("bye", Map(("session", "s"), ("abandon", "yes"))));
        Assert.Equal("'task' is not a message a worker sends", FromWorker("task", Map()));
        // An absent body reads as nothing (the daemon then answers 410: no session), not as an error.
        Assert.Null(WorkerWire.TryReadFromWorker("heartbeat", default, out var none));
        Assert.Null(none);
    }
}
