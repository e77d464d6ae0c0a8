using Xunit.Abstractions;

namespace Sparky.IntegrationTests.Support;

/// <summary>Counts the bad-input cases a test ran, and prints the tally in the test output.</summary>
public sealed class CaseCounter(ITestOutputHelper output, string door)
{
    public int Count { get; private set; }

    public void Passed(string name, string detail)
    {
        Count++;
        output.WriteLine($"[{door}] case {Count}: {name} -> {detail}");
    }

    public void Report() => output.WriteLine($"[{door}] {Count} bad-input cases checked");
}
