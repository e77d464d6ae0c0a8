using System.Text;
using System.Text.Json.Nodes;
using NetMQ;
using NetMQ.Sockets;
using Sparky.IntegrationTests.Zmq;

namespace Sparky.IntegrationTests.Support;

/// <summary>
/// Waits until SUB sockets' subscriptions have reached a daemon's event socket. A subscription travels to the publisher
/// a moment after <c>Subscribe</c> returns, and an event published before it arrives is not sent to that subscriber (as
/// with any ZeroMQ PUB): a fixed pause was too short now and then on a loaded machine. Instead each socket subscribes
/// to <c>task.finished</c> as well, and probe tasks run until every socket has seen a probe end: a socket's
/// subscriptions reach the publisher over its one connection in order (or, made before it connected, all together as it
/// does), so its own prefixes are in place too. Then the extra subscription is dropped, and each socket has been read
/// up to the last probe's end: it holds nothing of the probes.
/// </summary>
public static class EventSubscriptions
{
    private const string Probe = "task.finished";

    /// <param name="http">The daemon's HTTP API, where the probes are submitted.</param>
    /// <param name="cls">A class that runs here at once (not a worker class, say).</param>
    public static async Task WaitAsync(HttpClient http, IReadOnlyList<SubscriberSocket> subs, string cls = "cpu_short", double seconds = 60)
    {
        foreach (var sub in subs) sub.Subscribe(Probe);
        var ready = new bool[subs.Count];
        for (var deadline = DateTime.UtcNow.AddSeconds(seconds); ;)
        {
            var probe = await SubmitProbeAsync(http, cls);
            // A socket already subscribed gets this probe's end for sure: read up to it. One not yet may never get it.
            for (int i = 0; i < subs.Count; i++)
            {
                bool seen = ReadUntilEnd(subs[i], probe, ready[i] ? 60 : 2);
                Assert.True(seen || !ready[i], $"a subscribed socket never got the end of probe {probe}");
                ready[i] = seen;
            }
            if (ready.All(r => r)) break;
            Assert.True(DateTime.UtcNow < deadline, $"event subscriptions not in place after {seconds} s");
        }
        foreach (var sub in subs) sub.Unsubscribe(Probe);
    }

    public static Task WaitAsync(HttpClient http, SubscriberSocket sub, string cls = "cpu_short") => WaitAsync(http, [sub], cls);

    private static async Task<string> SubmitProbeAsync(HttpClient http, string cls)
    {
        var body = new JsonObject { ["class"] = cls, ["name"] = "subscription probe", ["payload"] = new JsonObject { ["command"] = new JsonArray("true") } };
        using var resp = await http.PostAsync("api/v1/tasks", new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json"));
        var text = await resp.Content.ReadAsStringAsync();
        Assert.True(resp.IsSuccessStatusCode, text);
        return (string)JsonNode.Parse(text)!["ids"]![0]!;
    }

    /// <summary>Reads events until the probe's end; false if it did not come in time.</summary>
    private static bool ReadUntilEnd(SubscriberSocket sub, string probe, double seconds)
    {
        for (var deadline = DateTime.UtcNow.AddSeconds(seconds); DateTime.UtcNow < deadline;)
        {
            var frames = new NetMQMessage();
            if (!sub.TryReceiveMultipartMessage(TimeSpan.FromMilliseconds(100), ref frames)) continue;
            if (frames[0].ConvertToString() == Probe && (string?)ZmqTestClient.Unpack(frames[1].ToByteArray())["body"]?["id"] == probe) return true;
        }
        return false;
    }
}
