using Sparky.Execution.Slurm;

namespace Sparky.Execution.Tests.Slurm;

public sealed class SlurmStatesTests
{
    [Theory]
    [InlineData("PENDING", "PD", SlurmPhase.Pending)]
    [InlineData("CONFIGURING", "CF", SlurmPhase.Pending)]
    [InlineData("REQUEUED", "RQ", SlurmPhase.Pending)]
    [InlineData("REQUEUE_HOLD", "RH", SlurmPhase.Pending)]
    [InlineData("REQUEUE_FED", "RF", SlurmPhase.Pending)]
    [InlineData("RESV_DEL_HOLD", "RD", SlurmPhase.Pending)]
    [InlineData("RUNNING", "R", SlurmPhase.Running)]
    [InlineData("COMPLETING", "CG", SlurmPhase.Running)]
    [InlineData("RESIZING", "RS", SlurmPhase.Running)]
    [InlineData("SIGNALING", "SI", SlurmPhase.Running)]
    [InlineData("STAGE_OUT", "SO", SlurmPhase.Running)]
    [InlineData("SUSPENDED", "S", SlurmPhase.Suspended)]
    [InlineData("STOPPED", "ST", SlurmPhase.Suspended)]
    [InlineData("FAILED", "F", SlurmPhase.Failed)]
    [InlineData("SPECIAL_EXIT", "SE", SlurmPhase.Failed)]
    [InlineData("CANCELLED", "CA", SlurmPhase.Cancelled)]
    [InlineData("TIMEOUT", "TO", SlurmPhase.TimedOut)]
    [InlineData("DEADLINE", "DL", SlurmPhase.TimedOut)]
    [InlineData("OUT_OF_MEMORY", "OOM", SlurmPhase.OutOfMemory)]
    [InlineData("NODE_FAIL", "NF", SlurmPhase.NodeFail)]
    [InlineData("BOOT_FAIL", "BF", SlurmPhase.NodeFail)]
    [InlineData("PREEMPTED", "PR", SlurmPhase.Preempted)]
    [InlineData("REVOKED", "RV", SlurmPhase.Unknown)]
    public void Long_and_short_forms_map_alike(string longForm, string shortForm, SlurmPhase phase)
    {
        Assert.Equal(phase, SlurmStates.Map(longForm, 0, 0));
        Assert.Equal(phase, SlurmStates.Map(shortForm, 0, 0));
        Assert.Equal(phase, SlurmStates.Map(longForm.ToLowerInvariant(), 0, 0));
        Assert.Equal(phase, SlurmStates.Map(" " + longForm + " ", 0, 0));
    }

    [Theory]
    [InlineData("COMPLETED", 0, 0, SlurmPhase.Succeeded)]
    [InlineData("CD", 0, 0, SlurmPhase.Succeeded)]
    [InlineData("COMPLETED", 0, null, SlurmPhase.Succeeded)]
    [InlineData("COMPLETED", 1, 0, SlurmPhase.Failed)]
    [InlineData("COMPLETED", 0, 9, SlurmPhase.Failed)]
    [InlineData("COMPLETED", null, null, SlurmPhase.CompletedUnverified)]
    [InlineData("CD", null, null, SlurmPhase.CompletedUnverified)]
    [InlineData("FAILED", 0, 0, SlurmPhase.Failed)]
    public void Completed_is_success_only_with_exit_code_zero(string state, int? code, int? signal, SlurmPhase phase) =>
        Assert.Equal(phase, SlurmStates.Map(state, code, signal));

    [Theory]
    [InlineData("CANCELLED by 0")]
    [InlineData("CANCELLED by 1000")]
    [InlineData("CANCELLED+")]
    public void Cancelled_with_a_suffix(string state) => Assert.Equal(SlurmPhase.Cancelled, SlurmStates.Map(state));

    [Theory]
    [InlineData("")]
    [InlineData(null)]
    [InlineData("   ")]
    [InlineData("COMPLETEDX")]
    [InlineData("SUCCESS")]
    [InlineData("DONE")]
    [InlineData("C")]
    [InlineData("BRAND_NEW_STATE")]
    public void Unknown_states_are_unknown_never_success(string? state)
    {
        Assert.Equal(SlurmPhase.Unknown, SlurmStates.Map(state, 0, 0));
        Assert.False(SlurmStates.IsTerminal(SlurmStates.Map(state, 0, 0)));
    }

    [Fact]
    public void Terminal_phases()
    {
        var terminal = Enum.GetValues<SlurmPhase>().Where(SlurmStates.IsTerminal).ToHashSet();
        Assert.Equal(new HashSet<SlurmPhase>
        {
            SlurmPhase.Succeeded, SlurmPhase.CompletedUnverified, SlurmPhase.Failed, SlurmPhase.Cancelled,
            SlurmPhase.TimedOut, SlurmPhase.OutOfMemory, SlurmPhase.NodeFail, SlurmPhase.Preempted,
        }, terminal);
    }

    [Theory]
    [InlineData("1234", "1234", null)]
    [InlineData("1234_5", "1234", "5")]
    [InlineData("1234_[5-9]", "1234", "5-9")]
    [InlineData("1234_[5-9%2]", "1234", "5-9%2")]
    [InlineData("1234_[1,3,5]", "1234", "1,3,5")]
    public void Job_ids_split_into_base_and_array_task(string id, string baseId, string? task) =>
        Assert.Equal((baseId, task), SlurmJobIds.Split(id));
}
