using Sparky.Execution.Slurm;
using static Sparky.Execution.Tests.Slurm.SbatchScriptTests;

namespace Sparky.Execution.Tests.Slurm;

/// <summary>A task on several nodes: what sbatch is asked for, and how the command starts once per node.</summary>
public sealed class SbatchNodesTests
{
    private static string Render(SbatchNodes nodes, IReadOnlyList<string>? argv = null) =>
        SbatchScript.Render(Request(argv: argv) with { Nodes = nodes });

    [Fact]
    public void Nodes_gpus_per_node_and_exclusive_are_requested_with_one_task_per_node()
    {
        var script = Render(new SbatchNodes(2, 4, 4, Exclusive: true));
        var d = SlurmDirectives(script);
        Assert.Contains("--nodes=2", d);
        Assert.Contains("--ntasks-per-node=1", d);
        Assert.Contains("--gpus-per-node=4", d);
        Assert.Contains("--exclusive", d);
        Assert.DoesNotContain(d, x => x.StartsWith("--gres", StringComparison.Ordinal));
    }

    [Fact]
    public void Without_gpus_or_exclusive_only_the_nodes_are_requested()
    {
        var d = SlurmDirectives(Render(new SbatchNodes(3, null, 1, Exclusive: false)));
        Assert.Contains("--nodes=3", d);
        Assert.DoesNotContain(d, x => x.StartsWith("--gpus-per-node", StringComparison.Ordinal));
        Assert.DoesNotContain("--exclusive", d);
    }

    [Fact]
    public void The_first_node_is_the_rendezvous_and_each_node_starts_the_command_with_its_rank()
    {
        var script = Render(new SbatchNodes(2, 2, 8, Exclusive: false), ["torchrun", "train.py"]);
        Assert.Contains("scontrol show hostnames \"$SLURM_JOB_NODELIST\" | head -n1", script);
        Assert.Contains("export MASTER_ADDR MASTER_PORT SPARKY_PORT=\"$MASTER_PORT\" NNODES='2' WORLD_SIZE='16' LOCAL_WORLD_SIZE='8' SPARKY_PROCS_PER_NODE='8'\n", script);
        Assert.EndsWith("exec srun --nodes=2 --ntasks-per-node=1 --kill-on-bad-exit=1 /bin/bash -c 'export NODE_RANK=\"$SLURM_NODEID\"; exec \"$@\"' sparky-node 'torchrun' 'train.py'\n", script);
        // The rendezvous comes after the task's own variables, so a task cannot set MASTER_PORT for Sparky.
        Assert.True(script.IndexOf("SPARKY_TASK_ID=", StringComparison.Ordinal) < script.IndexOf("MASTER_PORT=", StringComparison.Ordinal));
    }

    [Fact]
    public void Hostile_arguments_stay_data_on_every_node()
    {
        var script = Render(new SbatchNodes(2, null, 1, false), ["sh", "-c", "echo '$(id)'; rm -rf /", "x'; reboot; '"]);
        Assert.EndsWith("sparky-node 'sh' '-c' 'echo '\\''$(id)'\\''; rm -rf /' 'x'\\''; reboot; '\\'''\n", script);
        Assert.Throws<ArgumentException>(() => Render(new SbatchNodes(2, null, 1, false), ["a\0b"]));
    }

    [Theory]
    [InlineData(0, null, 1)]
    [InlineData(-1, null, 1)]
    [InlineData(SbatchScript.MaxNodes + 1, null, 1)]
    [InlineData(2, -1, 1)]
    [InlineData(2, 1025, 1)]
    [InlineData(2, null, 0)]
    [InlineData(2, null, -5)]
    [InlineData(2, null, 1025)]
    public void Out_of_range_counts_are_refused(int nodes, int? gpusPerNode, int procs) =>
        Assert.Throws<ArgumentException>(() => Render(new SbatchNodes(nodes, gpusPerNode, procs, false)));

    [Fact]
    public void A_template_job_gets_the_rendezvous_and_starts_its_own_steps()
    {
        var script = SbatchScript.Render(Request() with { Nodes = new SbatchNodes(2, null, 1, false), Template = "#!/bin/bash\nsrun hostname\n" });
        Assert.Contains("--nodes=2", SlurmDirectives(script));
        Assert.Contains("NNODES='2'", script);
        Assert.EndsWith("srun hostname\n", script);
    }
}
