namespace Sparky.Server.Executors.Slurm;

/// <summary>A Slurm job (no pid of ours; Slurm enforces its time limit); its id once sbatch answered.</summary>
internal sealed record SlurmPlacement(string? JobId) : Placement;
