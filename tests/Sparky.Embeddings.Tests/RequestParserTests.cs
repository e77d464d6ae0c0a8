using System.Text.Json.Nodes;
using Sparky.Embeddings.Http;

namespace Sparky.Embeddings.Tests;

public class RequestParserTests
{
    private static readonly string[] Names = ["all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"];

    private static (EmbeddingRequest? Request, ApiError? Error) Parse(string json, bool matryoshka = false) =>
        EmbeddingRequestParser.Parse(JsonNode.Parse(json), Names, 384, matryoshka);

    [Fact]
    public void A_string_or_an_array_of_strings_in_order()
    {
        Assert.Equal(["hi"], Parse("""{"input": "hi", "model": "all-MiniLM-L6-v2"}""").Request!.Inputs);
        var r = Parse("""{"input": ["a", "b", "c"], "model": "sentence-transformers/all-MiniLM-L6-v2", "encoding_format": "base64", "user": "x"}""").Request!;
        Assert.Equal(["a", "b", "c"], r.Inputs);
        Assert.True(r.Base64);
        Assert.Null(r.Dimensions);
        Assert.False(Parse("""{"input": "hi"}""").Request!.Base64); // model left out: the one served
    }

    [Theory]
    [InlineData("""{"input": []}""", 400, "empty array")]
    [InlineData("""{"input": ["a", 5]}""", 400, "token id")]
    [InlineData("""{"input": [[1, 2]]}""", 400, "token id")]
    [InlineData("""{"input": ["a", {"x": 1}]}""", 400, "input[1] must be a string, not an object")]
    [InlineData("""{"input": 7}""", 400, "not a number")]
    [InlineData("""{"input": ""}""", 400, "input is empty")]
    [InlineData("""{"model": "x"}""", 404, "does not exist")]
    [InlineData("""{"input": "a"}""", 0, null)]
    [InlineData("""{}""", 400, "input is required")]
    [InlineData("""[1]""", 400, "JSON object")]
    [InlineData("""{"input": "a", "model": "text-embedding-3-small"}""", 404, "'text-embedding-3-small' does not exist")]
    [InlineData("""{"input": "a", "model": 3}""", 400, "model must be a string")]
    [InlineData("""{"input": "a", "encoding_format": "int8"}""", 400, "encoding_format")]
    [InlineData("""{"input": "a", "dimensions": 128}""", 400, "does not support shorter vectors")]
    [InlineData("""{"input": "a", "dimensions": 1000}""", 400, "have 384")]
    [InlineData("""{"input": "a", "dimensions": 0}""", 400, "1 or more")]
    [InlineData("""{"input": "a", "dimensions": 384}""", 0, null)]
    public void Each_wrong_request_is_a_clear_error_naming_the_field(string json, int status, string? words)
    {
        var (request, error) = Parse(json);
        if (status == 0) { Assert.NotNull(request); return; }
        Assert.Null(request);
        Assert.Equal(status, error!.Status);
        Assert.Contains(words!, error.Message);
    }

    [Fact]
    public void Too_many_inputs_are_refused()
    {
        var json = new JsonObject { ["input"] = new JsonArray(Enumerable.Range(0, 2049).Select(i => (JsonNode?)"x").ToArray()) };
        Assert.Contains("at most 2048", EmbeddingRequestParser.Parse(json, Names, 384, false).Error!.Message);
    }

    [Fact]
    public void A_Matryoshka_model_takes_fewer_dimensions()
    {
        Assert.Equal(128, Parse("""{"input": "a", "dimensions": 128}""", matryoshka: true).Request!.Dimensions);
    }
}
