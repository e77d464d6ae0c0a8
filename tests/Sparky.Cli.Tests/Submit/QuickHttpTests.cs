using System.Text;
using Sparky.Cli.Submit;

namespace Sparky.Cli.Tests.Submit;

public sealed class QuickHttpTests
{
    private static bool Parse(string raw, out HttpAnswer? answer) => QuickHttp.TryParse(Encoding.UTF8.GetBytes(raw), out answer);

    [Fact]
    public void A_chunked_answer_is_read_once_its_last_chunk_is_in()
    {
        const string head = "HTTP/1.1 201 Created\r\nContent-Type: application/json; charset=utf-8\r\nTransfer-Encoding: chunked\r\n\r\n";
        Assert.False(Parse(head + "2a\r\n{\"id\":\"6h5\",\"ids\"", out _));
        Assert.False(Parse(head + "5\r\n{\"a\":\r\n", out _));
        Assert.True(Parse(head + "5\r\n{\"a\":\r\n4\r\n\"é\"\r\n1\r\n}\r\n0\r\n\r\n", out var answer));
        Assert.Equal(201, answer!.Status);
        Assert.Equal("Created", answer.Reason);
        Assert.Equal("application/json", answer.MediaType);
        Assert.Equal("{\"a\":\"é\"}", answer.Body);
        Assert.True(answer.IsSuccess);
    }

    [Fact]
    public void An_answer_with_a_length_is_read_to_its_length()
    {
        const string head = "HTTP/1.1 401 Unauthorized\r\ncontent-type: application/problem+json\r\ncontent-length: 12\r\n\r\n";
        Assert.False(Parse(head + "{\"detail\":", out _));
        Assert.True(Parse(head + "{\"detail\":1}", out var answer));
        Assert.Equal(401, answer!.Status);
        Assert.Equal("Unauthorized", answer.Reason);
        Assert.Equal("application/problem+json", answer.MediaType);
        Assert.False(answer.IsSuccess);
    }

    [Fact]
    public void What_is_not_http_is_an_error_and_a_head_alone_waits()
    {
        Assert.False(Parse("HTTP/1.1 200 OK\r\nContent-Length: 2", out _));
        Assert.Throws<IOException>(() => Parse("SSH-2.0-OpenSSH\r\n\r\n", out _));
    }

    [Fact]
    public void The_request_carries_what_httpclient_sends_and_the_body()
    {
        var uri = new Uri(new Uri("http://127.0.0.1:9097/prefix/"), "api/v1/tasks");
        var text = Encoding.UTF8.GetString(QuickHttp.Request("POST", uri, "s3cret", Encoding.UTF8.GetBytes("{\"é\":1}")));
        Assert.StartsWith("POST /prefix/api/v1/tasks HTTP/1.1\r\nHost: 127.0.0.1:9097\r\n", text);
        Assert.Contains("\r\nContent-Type: application/json; charset=utf-8\r\n", text);
        Assert.Contains("\r\nContent-Length: 8\r\n", text);
        Assert.Contains("\r\nAuthorization: Bearer s3cret\r\n", text);
        Assert.EndsWith("\r\n\r\n{\"é\":1}", text);
        Assert.DoesNotContain("Authorization", Encoding.UTF8.GetString(QuickHttp.Request("POST", uri, null, [])));
    }
}
