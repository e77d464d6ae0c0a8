namespace Sparky.Embeddings.Client.Http;

/// <summary>How one request to the endpoint ended, as far as retrying goes.</summary>
public abstract record SendOutcome
{
    /// <summary>An HTTP answer that was not a success: its status, its Retry-After (already relative to now), and
    /// the start of its body for the error message.</summary>
    public sealed record Status(int Code, TimeSpan? RetryAfter, string Body) : SendOutcome;

    /// <summary>No answer: the connection failed or broke, or the request timed out.</summary>
    public sealed record NoAnswer(string Reason) : SendOutcome;
}

/// <summary>Retry now after <see cref="Delay"/>, or give up, saying why.</summary>
public readonly record struct RetryDecision(bool Retry, TimeSpan Delay, string Reason);

/// <summary>
/// Whether and when to send a batch again. Pure: the attempt number, the outcome and a random number in, a decision
/// out. 429, 408 and the 5xx of an overloaded or restarting server (not 501/505, which will not change) are retried,
/// and so is a request that got no answer; any other status is the request's own fault and is not. A Retry-After is
/// honoured as the server asks (up to <see cref="MaxRetryAfter"/>); otherwise the delay grows exponentially from
/// <see cref="BaseDelay"/> to <see cref="MaxDelay"/>, between half and all of that step at random, so many shard tasks
/// retrying the same server do not come back in step.
/// </summary>
public sealed record RetryPolicy(int MaxAttempts = 10)
{
    public static readonly TimeSpan BaseDelay = TimeSpan.FromMilliseconds(250), MaxDelay = TimeSpan.FromSeconds(20),
        MaxRetryAfter = TimeSpan.FromMinutes(5);

    /// <param name="attempt">the attempt that just ended, from 1</param>
    /// <param name="random">a number in [0, 1)</param>
    public RetryDecision Decide(int attempt, SendOutcome outcome, double random)
    {
        var (transient, what) = outcome switch
        {
            SendOutcome.Status s => (IsTransient(s.Code), $"HTTP {s.Code}{(s.Body.Length > 0 ? ": " + s.Body : "")}"),
            SendOutcome.NoAnswer n => (true, n.Reason),
            _ => (false, outcome.ToString()),
        };
        if (!transient) return new RetryDecision(false, TimeSpan.Zero, $"the endpoint refused the request: {what}");
        if (attempt >= MaxAttempts) return new RetryDecision(false, TimeSpan.Zero, $"gave up after {attempt} attempts: {what}");
        if (outcome is SendOutcome.Status { RetryAfter: { } after })
            return new RetryDecision(true, after < TimeSpan.Zero ? TimeSpan.Zero : after > MaxRetryAfter ? MaxRetryAfter : after, what);
        return new RetryDecision(true, Backoff(attempt, random), what);
    }

    /// <summary>The delay after the <paramref name="attempt"/>th failure without a Retry-After.</summary>
    public static TimeSpan Backoff(int attempt, double random)
    {
        double step = Math.Min(MaxDelay.TotalMilliseconds, BaseDelay.TotalMilliseconds * Math.Pow(2, Math.Min(attempt - 1, 30)));
        return TimeSpan.FromMilliseconds(step * (0.5 + 0.5 * Math.Clamp(random, 0, 1)));
    }

    public static bool IsTransient(int status) => status is 408 or 429 || (status >= 500 && status != 501 && status != 505);
}
