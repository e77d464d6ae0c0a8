using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using Sparky.Embeddings.Client.Http;

namespace Sparky.Embeddings.Client.Tests.Http;

public class EmbeddingsWireTests
{
    [Fact]
    public void The_request_is_openais_shape()
    {
        using var doc = JsonDocument.Parse(EmbeddingsWire.Request(["a", "b \"c\"\n"], "m"));
        Assert.Equal(["a", "b \"c\"\n"], doc.RootElement.GetProperty("input").EnumerateArray().Select(x => x.GetString()));
        Assert.Equal("m", doc.RootElement.GetProperty("model").GetString());
        Assert.Equal("base64", doc.RootElement.GetProperty("encoding_format").GetString());
        using var floats = JsonDocument.Parse(EmbeddingsWire.Request(["a"], null, base64: false));
        Assert.Equal("float", floats.RootElement.GetProperty("encoding_format").GetString());
        Assert.False(floats.RootElement.TryGetProperty("model", out _));
    }

    [Fact]
    public void Vectors_are_placed_by_their_index_not_their_order()
    {
        var json = """{"object":"list","data":[{"index":1,"embedding":[3,4]},{"index":0,"embedding":[1.5,-2e-3]}],"model":"m"}""";
        var (v, dims, error) = EmbeddingsWire.Response(Encoding.UTF8.GetBytes(json), 2, 0);
        Assert.Null(error);
        Assert.Equal(2, dims);
        Assert.Equal([1.5f, -2e-3f, 3f, 4f], v);
    }

    [Fact]
    public void Base64_vectors_are_read_too()
    {
        float[] a = [0.25f, -1f, 3.5f];
        var b64 = Convert.ToBase64String(MemoryMarshal.AsBytes(a.AsSpan()));
        var (v, dims, _) = EmbeddingsWire.Response(Encoding.UTF8.GetBytes($$"""{"data":[{"index":0,"embedding":"{{b64}}"}]}"""), 1, 3);
        Assert.Equal(3, dims);
        Assert.Equal(a, v);
    }

    [Fact]
    public void Base64_with_escaped_characters_and_an_index_after_the_embedding_are_read()
    {
        // Vectors whose base64 holds '+' and '/', which a JSON writer may send escaped (\u002B, \/).
        float[] a = [BitConverter.Int32BitsToSingle(0x3FBEEFFB), BitConverter.Int32BitsToSingle(0x3EFFFFFF), 0.1f, 7f], b = [-1f, 2f, 1e-3f, 9e9f];
        string B64(float[] v) => Convert.ToBase64String(MemoryMarshal.AsBytes(v.AsSpan()));
        Assert.Contains('+', B64(a));
        Assert.Contains('/', B64(a));
        string escaped = B64(a).Replace("+", "\\u002B").Replace("/", "\\/");
        var json = "{\"object\":\"list\",\"data\":[{\"embedding\":\"" + B64(b) + "\",\"index\":1,\"object\":\"embedding\"}," +
            "{\"object\":\"embedding\",\"embedding\":\"" + escaped + "\",\"index\":0}],\"usage\":{\"prompt_tokens\":3}}";
        var (v, dims, error) = EmbeddingsWire.Response(Encoding.UTF8.GetBytes(json), 2, 0);
        Assert.Null(error);
        Assert.Equal(4, dims);
        Assert.Equal([.. a, .. b], v);
    }

    [Theory]
    [InlineData("""{"data":[{"index":0,"embedding":[1,2]}]}""", 2, 0, "1 embeddings for 2 texts")]
    [InlineData("""{"data":[{"index":0,"embedding":[1,2]}],""", 1, 0, "not JSON")]
    [InlineData("""{"data":[{"index":0,"embedding":"not base64!"}]}""", 1, 0, "not an array of numbers or base64 float32")]
    [InlineData("""{"data":[{"index":0}]}""", 1, 0, "embedding 0 is missing")]
    [InlineData("""{"data":[{"index":0,"embedding":[1,2]},{"index":0,"embedding":[1,2]}]}""", 2, 0, "index 0 is out of range or repeated")]
    [InlineData("""{"data":[{"index":5,"embedding":[1,2]}]}""", 1, 0, "index 5 is out of range")]
    [InlineData("""{"data":[{"index":0,"embedding":[1,2]},{"index":1,"embedding":[1]}]}""", 2, 0, "embedding 1 has 1 dimensions, not 2")]
    [InlineData("""{"data":[{"index":0,"embedding":[1,2]}]}""", 1, 3, "embedding 0 has 2 dimensions, not 3")]
    [InlineData("""{"data":[{"index":0,"embedding":["x"]}]}""", 1, 0, "embedding 0 is not an array of numbers")]
    [InlineData("""{"data":[{"index":0,"embedding":[]}]}""", 1, 0, "embedding 0 is not an array of numbers")]
    [InlineData("""{"error":"x"}""", 1, 0, "no \"data\" array")]
    [InlineData("""<html>""", 1, 0, "not JSON")]
    public void An_answer_that_does_not_fit_the_request_is_refused(string json, int count, int dims, string reason)
    {
        var (v, _, error) = EmbeddingsWire.Response(Encoding.UTF8.GetBytes(json), count, dims);
        Assert.Null(v);
        Assert.Contains(reason, error);
    }

    [Theory]
    [InlineData("""{"data":[{"id":"minilm","object":"model"}]}""", "minilm", null)]
    [InlineData("""{"data":[]}""", null, "no model listed")]
    [InlineData("""{"data":[{"id":"a"},{"id":"b"}]}""", null, "2 models listed (a, b): choose one")]
    public void The_only_model_is_picked(string json, string? model, string? error)
    {
        Assert.Equal((model, error), EmbeddingsWire.OnlyModel(Encoding.UTF8.GetBytes(json)));
    }
}
