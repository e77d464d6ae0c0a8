using Sparky.Embeddings.Client.Http;

namespace Sparky.Embeddings.Client.Tests.Http;

public class EndpointTests
{
    [Theory]
    [InlineData("http://127.0.0.1:8080", "http://127.0.0.1:8080/v1/embeddings", "http://127.0.0.1:8080/v1/models")]
    [InlineData("http://127.0.0.1:8080/", "http://127.0.0.1:8080/v1/embeddings", "http://127.0.0.1:8080/v1/models")]
    [InlineData("https://api.openai.com/v1", "https://api.openai.com/v1/embeddings", "https://api.openai.com/v1/models")]
    [InlineData("http://h/v1/embeddings", "http://h/v1/embeddings", "http://h/v1/models")]
    [InlineData("http://h/proxy/openai/v1/", "http://h/proxy/openai/v1/embeddings", "http://h/proxy/openai/v1/models")]
    public void Every_usual_spelling_reaches_the_embeddings_route(string text, string embeddings, string models)
    {
        Assert.True(Endpoint.TryParse(text, out var e, out var error), error);
        Assert.Equal(embeddings, e!.Embeddings.ToString());
        Assert.Equal(models, e.Models.ToString());
    }

    [Theory]
    [InlineData("127.0.0.1:8080")]
    [InlineData("ftp://h/v1")]
    [InlineData("http://h/v1?key=secret")]
    [InlineData("not a url")]
    public void Refuses_what_is_not_an_http_url(string text)
    {
        Assert.False(Endpoint.TryParse(text, out _, out var error));
        Assert.Contains("--endpoint", error);
    }
}
