namespace Sparky.IntegrationTests.Support;

/// <summary>
/// Test classes that must run alone: they load the machine on purpose (thousands of tasks, floods, a kill -9 under
/// load), time what they measure, change this process's environment, or run workers on this host (a parallel run found
/// that a worker starting ended the tasks of any worker of its name on the host, another daemon's too: fixed, and kept
/// alone until parallel runs have shown them quiet). Every other class runs in parallel with its
/// siblings (see AssemblyInfo.cs); these run after them, one at a time.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class SerialCollection
{
    public const string Name = "alone";
}
