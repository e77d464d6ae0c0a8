using Sparky.Core.Tasks;

namespace Sparky.Core.Tests.Tasks;

/// <summary>task.progress at most every 500 ms per task with the latest value last; the store every 2 s, and at the end.</summary>
public sealed class ProgressPaceTests
{
    private static TaskProgress P(int done) => new(done, 100, null);

    [Fact]
    public void The_first_value_is_announced_at_once_and_a_burst_once_more_with_its_last_value()
    {
        var pace = new ProgressPace();
        Assert.False(pace.TakeEvent(0)); // nothing seen yet
        Assert.True(pace.Saw(P(1)));
        Assert.True(pace.TakeEvent(0));
        for (int i = 2; i <= 200; i++) pace.Saw(P(i));
        Assert.False(pace.TakeEvent(250)); // within 500 ms of the last one
        Assert.False(pace.Settled);
        Assert.True(pace.TakeEvent(500)); // the trailing edge
        Assert.Equal(P(200), pace.Latest);
        Assert.False(pace.TakeEvent(5000)); // nothing new
    }

    [Fact]
    public void The_same_value_again_is_no_change()
    {
        var pace = new ProgressPace();
        pace.Saw(P(1));
        Assert.True(pace.TakeEvent(0));
        Assert.False(pace.Saw(new TaskProgress(1, 100, null)));
        Assert.False(pace.TakeEvent(1000));
    }

    [Fact]
    public void The_store_is_written_every_2_s_while_it_changes_and_at_once_at_the_end()
    {
        var pace = new ProgressPace();
        pace.Saw(P(1));
        Assert.True(pace.TakeStore(0, ended: false));
        pace.Saw(P(2));
        Assert.False(pace.TakeStore(1999, ended: false));
        Assert.True(pace.TakeStore(2000, ended: false));
        pace.Saw(P(3));
        Assert.False(pace.TakeStore(2100, ended: false));
        Assert.True(pace.TakeStore(2100, ended: true)); // the attempt ended: at once
        Assert.False(pace.TakeStore(2100, ended: true)); // once
        Assert.True(pace.TakeEvent(2100));
        Assert.True(pace.Settled);
    }
}
