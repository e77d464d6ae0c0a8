namespace Sparky.Execution.Processes;

/// <summary>What a task's environment starts from, on the daemon's host or on a worker.</summary>
public static class TaskEnvironment
{
    /// <summary>This process's environment without its own <c>SPARKY_</c> settings: the daemon's (or the worker's)
    /// settings are not the task's business, and the token is a secret.</summary>
    public static Dictionary<string, string> Inherited()
    {
        var env = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (System.Collections.DictionaryEntry kv in Environment.GetEnvironmentVariables())
        {
            var key = (string)kv.Key;
            if (!key.StartsWith("SPARKY_", StringComparison.Ordinal)) env[key] = (string?)kv.Value ?? "";
        }
        return env;
    }
}
