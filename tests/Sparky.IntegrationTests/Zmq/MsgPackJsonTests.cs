using System.Buffers;
using System.Text.Json.Nodes;
using MessagePack;
using Sparky.Server.Zmq;

namespace Sparky.IntegrationTests.Zmq;

/// <summary>The MessagePack ⇄ JSON bridge: what goes out reads back as the same JSON.</summary>
public sealed class MsgPackJsonTests
{
    private static byte[] Write(JsonNode? node)
    {
        var buffer = new ArrayBufferWriter<byte>();
        var w = new MessagePackWriter(buffer);
        MsgPackJson.Write(ref w, node);
        w.Flush();
        return buffer.WrittenSpan.ToArray();
    }

    private static JsonNode? Read(byte[] bytes)
    {
        var r = new MessagePackReader(bytes);
        var node = MsgPackJson.Read(ref r);
        Assert.True(r.End);
        return node;
    }

    [Fact]
    public void Json_built_in_code_or_parsed_from_text_comes_back_the_same()
    {
        var parsed = JsonNode.Parse("""{"a":[1,-2,3.5,true,null,"x\u0007y"],"big":18446744073709551615,"min":-9223372036854775808,"nested":{"k":{}}}""")!;
        var built = new JsonObject
        {
            ["int"] = 3,
            ["long"] = long.MaxValue,
            ["double"] = 0.25,
            ["float"] = 1.5f,
            ["when"] = new DateTimeOffset(2026, 11, 25, 12, 0, 0, TimeSpan.Zero),
            ["text"] = "héllo ✓",
            ["none"] = null,
            ["list"] = new JsonArray(1, "two", new JsonObject()),
        };
        foreach (var node in new JsonNode[] { parsed, built })
        {
            var back = Read(Write(node));
            Assert.True(JsonNode.DeepEquals(JsonNode.Parse(node.ToJsonString()), JsonNode.Parse(back!.ToJsonString())),
                $"{node.ToJsonString()} came back as {back.ToJsonString()}");
        }
        Assert.Equal("2026-11-25T12:00:00+00:00", (string)Read(Write(built))!["when"]!);
    }
}
