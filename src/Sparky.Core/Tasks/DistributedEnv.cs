namespace Sparky.Core.Tasks;

/// <summary>
/// The variables a distributed launcher (torchrun, accelerate, DeepSpeed) reads, for a task on one machine: the
/// rendezvous address and the port Sparky reserved for it, and with GPUs the world size. Pure.
/// </summary>
public static class DistributedEnv
{
    /// <summary>Whether a task started with <paramref name="gpus"/> GPUs gets a port reserved.</summary>
    public static bool WantsPort(TaskSpec spec, int gpus) => spec.Port || gpus > 0;

    /// <summary>The variables for a task on this machine with <paramref name="gpus"/> GPUs and <paramref name="port"/>
    /// (null: none reserved). One node, so <c>NNODES=1</c> and <c>NODE_RANK=0</c>: a torchrun line written for Slurm runs
    /// unchanged.</summary>
    public static Dictionary<string, string> Local(TaskSpec spec, int gpus, int? port)
    {
        var env = port is { } p ? Port(p) : new Dictionary<string, string>(StringComparer.Ordinal);
        if (gpus > 0) env["SPARKY_GPUS"] = Text(gpus);
        // Processes on this node: as asked, else one per GPU; a task that asks for neither is left to its launcher.
        if ((spec.ProcsPerNode ?? (gpus > 0 ? gpus : null)) is { } procs)
        {
            env["WORLD_SIZE"] = env["LOCAL_WORLD_SIZE"] = env["SPARKY_PROCS_PER_NODE"] = Text(procs);
            env["NNODES"] = "1";
            env["NODE_RANK"] = "0";
        }
        return env;
    }

    /// <summary>The rendezvous on this host at <paramref name="port"/>, reserved for the task where it runs (by the
    /// daemon for its own tasks, by a worker for the tasks it runs): loopback, which every process of a one-node task reaches.</summary>
    public static Dictionary<string, string> Port(int port) => new(StringComparer.Ordinal)
    {
        ["MASTER_ADDR"] = "127.0.0.1", ["MASTER_PORT"] = Text(port), ["SPARKY_PORT"] = Text(port),
    };

    private static string Text(int n) => n.ToString(System.Globalization.CultureInfo.InvariantCulture);
}
