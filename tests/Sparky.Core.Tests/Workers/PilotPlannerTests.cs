using Sparky.Core.Workers;

namespace Sparky.Core.Tests.Workers;

public sealed class PilotPlannerTests
{
    private static readonly DateTimeOffset T0 = DateTimeOffset.Parse("2026-11-24T00:00:00Z");

    [Theory]
    [InlineData(0, 0, 0, 0)] // nothing waits
    [InlineData(1, 0, 0, 1)] // one task is worth a whole pilot
    [InlineData(10, 0, 0, 3)] // 10 tasks, 4 per pilot: rounded up
    [InlineData(12, 0, 0, 3)]
    [InlineData(13, 0, 0, 4)]
    [InlineData(10, 3, 0, 2)] // connected workers take 3 of them
    [InlineData(10, 10, 0, 0)]
    [InlineData(10, 25, 0, 0)] // more credits than work
    [InlineData(10, 2, 1, 1)] // a pending pilot will take 4
    [InlineData(10, 2, 2, 0)]
    [InlineData(30, 0, 5, 3)] // 30 - 5 x 4 = 10, still rounded up to 3
    public void It_asks_for_the_backlog_not_covered_by_free_credits_or_pending_pilots_in_whole_pilots(int backlog, int freeCredits, int pending, int expected)
    {
        var planner = new PilotPlanner(maxPilots: 100, slotsPerPilot: 4);
        Assert.Equal(expected, planner.ToSubmit(backlog, freeCredits, pending, connected: 0, T0));
    }

    [Theory]
    [InlineData(100, 0, 0, 5)]
    [InlineData(100, 2, 0, 3)]
    [InlineData(100, 2, 2, 1)]
    [InlineData(100, 0, 5, 0)]
    [InlineData(100, 3, 4, 0)] // over the cap already (connected pilots outlived a lowered cap): never negative
    [InlineData(2, 0, 1, 2)] // under the cap, the backlog decides
    public void It_never_goes_past_max_pilots_counting_pending_and_connected_ones(int backlog, int pending, int connected, int expected)
    {
        var planner = new PilotPlanner(maxPilots: 5, slotsPerPilot: 1);
        Assert.Equal(expected, planner.ToSubmit(backlog, freeCredits: 0, pending, connected, T0));
    }

    [Fact]
    public void Nonsense_sizes_are_clamped_so_it_never_divides_by_zero_or_asks_for_a_negative_number()
    {
        var planner = new PilotPlanner(maxPilots: -3, slotsPerPilot: 0);
        Assert.Equal((0, 1), (planner.MaxPilots, planner.SlotsPerPilot));
        Assert.Equal(0, planner.ToSubmit(50, 0, 0, 0, T0));
        Assert.Equal(7, new PilotPlanner(10, 0).ToSubmit(7, 0, 0, 0, T0));
        // Huge numbers do not overflow into a negative (or positive) surprise.
        Assert.Equal(10, new PilotPlanner(10, 4096).ToSubmit(int.MaxValue, 0, 0, 0, T0));
        Assert.Equal(0, new PilotPlanner(int.MaxValue, 4096).ToSubmit(int.MaxValue, 0, int.MaxValue, 0, T0));
    }

    [Fact]
    public void Pilots_that_end_unconnected_hold_it_off_doubling_from_2_s_up_to_300_s()
    {
        var planner = new PilotPlanner(10, 4);
        Assert.Equal(DateTimeOffset.MinValue, planner.HoldUntil);
        var now = T0;
        foreach (var seconds in new[] { 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300 })
        {
            planner.EndedUnconnected(now);
            Assert.Equal(now.AddSeconds(seconds), planner.HoldUntil);
            Assert.Equal(0, planner.ToSubmit(10, 0, 0, 0, now));
            Assert.Equal(0, planner.ToSubmit(10, 0, 0, 0, planner.HoldUntil.AddTicks(-1)));
            Assert.Equal(3, planner.ToSubmit(10, 0, 0, 0, planner.HoldUntil));
            now = planner.HoldUntil.AddSeconds(1);
        }
        // Many more failures in a row stay at the cap.
        for (int i = 0; i < 1000; i++) planner.EndedUnconnected(now);
        Assert.Equal(now.AddSeconds(300), planner.HoldUntil);
    }

    [Fact]
    public void A_pilot_that_connects_resets_the_backoff_to_2_s()
    {
        var planner = new PilotPlanner(10, 4);
        for (int i = 0; i < 5; i++) planner.EndedUnconnected(T0);
        Assert.Equal(T0.AddSeconds(32), planner.HoldUntil);

        var later = T0.AddMinutes(1);
        planner.Connected();
        planner.EndedUnconnected(later);
        Assert.Equal(later.AddSeconds(2), planner.HoldUntil);
        planner.EndedUnconnected(later);
        Assert.Equal(later.AddSeconds(4), planner.HoldUntil);
    }
}
