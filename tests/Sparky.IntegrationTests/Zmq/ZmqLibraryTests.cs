using System.Text.Json.Nodes;
using Sparky.IntegrationTests.Support;

namespace Sparky.IntegrationTests.Zmq;

/// <summary>
/// The command socket runs on libzmq where it is installed (Debian's libzmq5) and on NetMQ where it is not, or where
/// <c>SPARKY_ZMQ_LIBRARY=netmq</c> says so: a client sees the same answers from both.
/// </summary>
public sealed class ZmqLibraryTests
{
    private const string NetMqLine = "zmq command socket on NetMQ";

    [Fact]
    public async Task The_command_socket_answers_alike_on_libzmq_and_on_NetMQ()
    {
        var root = TestDaemon.NewRoot();
        var answers = new List<List<string>>();
        foreach (var library in new[] { "libzmq", "netmq" })
        {
            int zmqPort = SparkyCli.FreePort();
            var env = new Dictionary<string, string>();
            if (library == "netmq") env["SPARKY_ZMQ_LIBRARY"] = "netmq";
            await using var d = await DaemonProcess.StartAsync(Path.Combine(root, library), SparkyCli.FreePort(), zmqPort, env);
            using var c = new ZmqTestClient($"tcp://127.0.0.1:{zmqPort}");
            answers.Add(Converse(c, Path.Combine(root, library + "-work")));
            Assert.Equal(0, await d.StopAsync());
            // Only the fallback is told (info); where libzmq5 is missing, the first daemon says so here too.
            if (library == "netmq") Assert.Contains($"{NetMqLine} (SPARKY_ZMQ_LIBRARY=netmq)", d.Stderr);
            else Assert.False(d.Stderr.Contains(NetMqLine), "libzmq5 is not usable here (apt-get install libzmq5): " + d.Stderr);
        }
        Assert.Equal(answers[0], answers[1]);
        Directory.Delete(root, true);
    }

    /// <summary>A conversation on the socket thread (ping, counters, a malformed message) and off it (submits
    /// answered after their commit, many in flight at once, status and list from the store), written out without
    /// what differs from run to run (ids, clocks).</summary>
    private static List<string> Converse(ZmqTestClient c, string work)
    {
        Directory.CreateDirectory(work);
        var seen = new List<string>();
        void Add(JsonObject reply)
        {
            var body = reply["body"]?.DeepClone() as JsonObject;
            body?.Remove("time_ms");
            seen.Add($"{reply["type"]} {reply["corr"]} {body?.ToJsonString()}");
        }

        Add(c.Request("ping"));
        Add(c.Request("status"));
        c.SendFrames(ZmqTestClient.Pack(ZmqTestClient.Envelope("ping", null, "no-delimiter")));
        Add(c.Receive());

        // Ten submits sent before any reply is read: their answers come back through the socket thread's queue.
        const int N = 10;
        for (int i = 0; i < N; i++)
        {
            var envelope = new JsonObject { ["id"] = $"t{i}", ["payload"] = new JsonObject { ["command"] = new JsonArray("true"), ["cwd"] = work } };
            c.SendFrames([], ZmqTestClient.Pack(ZmqTestClient.Envelope("submit", envelope, $"s{i}")));
        }
        var submitted = Enumerable.Range(0, N).Select(_ => c.Receive()).OrderBy(r => (string?)r["corr"], StringComparer.Ordinal).ToList();
        submitted.ForEach(Add);

        // Every task ends; then status by id and a list read the store off the socket thread.
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while ((int)c.Ok("status")!["completed"]! < N)
        {
            Assert.True(DateTime.UtcNow < deadline, "the tasks did not end within 60 s");
            Thread.Sleep(50);
        }
        var task = c.Ok("status", new JsonObject { ["id"] = "t3" })!;
        seen.Add($"status t3: {task["id"]} {task["state"]} {task["exit_code"]}");
        var list = (JsonArray)c.Ok("list", new JsonObject { ["limit"] = 100 })!["tasks"]!;
        seen.Add("list: " + string.Join(",", list.Select(t => $"{t!["id"]}={t["state"]}").Order(StringComparer.Ordinal)));
        var (status, detail) = c.Error("cancel", new JsonObject { ["id"] = "nope" }); // its corr depends on how long the wait took
        seen.Add($"cancel nope: {status} {detail}");
        return seen;
    }
}
