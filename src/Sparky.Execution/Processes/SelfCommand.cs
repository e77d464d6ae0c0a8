namespace Sparky.Execution.Processes;

/// <summary>How to start this same sparky again (a pilot job, a worker's guard): the executable, or under
/// <c>dotnet</c> the host and the dll.</summary>
public static class SelfCommand
{
    public static IReadOnlyList<string> Get()
    {
        var exe = Environment.ProcessPath ?? "sparky";
        return Path.GetFileNameWithoutExtension(exe) == "dotnet"
            ? [exe, Path.GetFullPath(Environment.GetCommandLineArgs()[0])]
            : [exe];
    }
}
