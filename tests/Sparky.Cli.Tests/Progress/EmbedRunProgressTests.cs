using Sparky.Cli.Progress;
using Sparky.Embeddings.Client.Jobs;

namespace Sparky.Cli.Tests.Progress;

public class EmbedRunProgressTests
{
    [Fact]
    public void The_marker_line_is_progress_as_the_daemon_reads_it()
    {
        var line = EmbedRunProgress.MarkerLine(new JobProgress(1200, 5000, 1190, 10, 3), "embedding shard 2/8: 1190 vectors\n\u001b[2J");
        var p = Sparky.Core.Tasks.TaskProgress.ParseLine(line);
        Assert.NotNull(p);
        Assert.Equal((1200d, 5000d), (p!.Done, p.Total));
        Assert.Equal("embedding shard 2/8: 1190 vectors [2J", p.Message); // control characters never reach a terminal
    }

    [Fact]
    public void The_text_says_lines_vectors_and_what_went_wrong_only_when_it_did()
    {
        Assert.Equal("0/10 lines, 0 vectors", EmbedRunProgress.Text(new JobProgress(0, 10, 0, 0, 0), null, null));
        Assert.Equal("600/1000 lines, 590 vectors, 10 skipped, 4 retried, 120/s, ETA 4s",
            EmbedRunProgress.Text(new JobProgress(600, 1000, 590, 10, 4), 120, TimeSpan.FromSeconds(3.3)));
    }
}
