namespace Sparky.Core.Scheduling;

/// <summary>
/// Exponential backoff with jitter between attempts: attempt n waits base·2^(n-1), capped, scaled by a
/// random factor in [0.5, 1] so that a burst of failures does not come back as a burst of retries.
/// </summary>
public sealed record RetryPolicy(TimeSpan Base, TimeSpan Cap)
{
    public static RetryPolicy Default { get; } = new(TimeSpan.FromSeconds(0.5), TimeSpan.FromMinutes(5));

    /// <param name="failedAttempts">attempts that failed so far (1 after the first failure)</param>
    /// <param name="random01">a number in [0, 1), passed in so tests decide it</param>
    public TimeSpan Delay(int failedAttempts, double random01)
    {
        double exp = Math.Min(30, Math.Max(0, failedAttempts - 1));
        double seconds = Math.Min(Cap.TotalSeconds, Base.TotalSeconds * Math.Pow(2, exp));
        return TimeSpan.FromSeconds(seconds * (0.5 + 0.5 * Math.Clamp(random01, 0, 1)));
    }
}
