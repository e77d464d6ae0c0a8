using Sparky.Embeddings.Client.Http;

namespace Sparky.Embeddings.Client.Tests.Http;

public class RetryPolicyTests
{
    private static readonly RetryPolicy Policy = new(MaxAttempts: 5);

    [Theory]
    [InlineData(429)]
    [InlineData(408)]
    [InlineData(500)]
    [InlineData(502)]
    [InlineData(503)]
    [InlineData(504)]
    public void Overload_and_server_errors_are_retried(int status)
    {
        var d = Policy.Decide(1, new SendOutcome.Status(status, null, ""), 0.5);
        Assert.True(d.Retry);
        Assert.Contains(status.ToString(), d.Reason);
    }

    [Theory]
    [InlineData(400)]
    [InlineData(401)]
    [InlineData(404)]
    [InlineData(413)]
    [InlineData(422)]
    [InlineData(501)]
    [InlineData(505)]
    public void The_requests_own_faults_are_not(int status)
    {
        var d = Policy.Decide(1, new SendOutcome.Status(status, null, "bad model"), 0.5);
        Assert.False(d.Retry);
        Assert.Equal($"the endpoint refused the request: HTTP {status}: bad model", d.Reason);
    }

    [Fact]
    public void No_answer_is_retried()
    {
        Assert.True(Policy.Decide(1, new SendOutcome.NoAnswer("connection refused"), 0).Retry);
    }

    [Fact]
    public void Retry_after_is_honoured_as_asked_within_a_bound()
    {
        Assert.Equal(TimeSpan.FromSeconds(7), Policy.Decide(1, new SendOutcome.Status(429, TimeSpan.FromSeconds(7), ""), 0.9).Delay);
        Assert.Equal(TimeSpan.Zero, Policy.Decide(1, new SendOutcome.Status(503, TimeSpan.FromSeconds(-3), ""), 0.9).Delay); // a date in the past
        Assert.Equal(RetryPolicy.MaxRetryAfter, Policy.Decide(1, new SendOutcome.Status(429, TimeSpan.FromHours(3), ""), 0.9).Delay);
    }

    [Fact]
    public void Without_retry_after_the_delay_grows_to_a_cap_with_jitter()
    {
        var low = Enumerable.Range(1, 12).Select(a => RetryPolicy.Backoff(a, 0)).ToList();
        var high = Enumerable.Range(1, 12).Select(a => RetryPolicy.Backoff(a, 0.999999)).ToList();
        Assert.Equal(TimeSpan.FromMilliseconds(125), low[0]);
        Assert.Equal(250, high[0].TotalMilliseconds, 0.01);
        for (int i = 1; i < low.Count; i++) Assert.True(low[i] >= low[i - 1]);
        Assert.Equal(RetryPolicy.MaxDelay.TotalMilliseconds, high[^1].TotalMilliseconds, 0.1);
        Assert.Equal(RetryPolicy.MaxDelay / 2, low[^1]);
        Assert.Equal(low[2], Policy.Decide(3, new SendOutcome.Status(500, null, ""), 0).Delay);
    }

    [Fact]
    public void It_gives_up_after_the_last_attempt()
    {
        var d = Policy.Decide(5, new SendOutcome.Status(429, TimeSpan.FromSeconds(1), ""), 0);
        Assert.False(d.Retry);
        Assert.StartsWith("gave up after 5 attempts: HTTP 429", d.Reason);
        Assert.True(Policy.Decide(4, new SendOutcome.Status(429, TimeSpan.FromSeconds(1), ""), 0).Retry);
    }
}
