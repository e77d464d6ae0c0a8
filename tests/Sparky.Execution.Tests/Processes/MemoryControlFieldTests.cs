using Sparky.Execution.Processes;

namespace Sparky.Execution.Tests.Processes;

/// <summary>The "key value" lines of a cgroup's flat keyed files, read as each attempt's end reads them.</summary>
public sealed class MemoryControlFieldTests
{
    [Fact]
    public void A_keyed_line_is_read_whole_and_nothing_else_is_taken_for_it()
    {
        var dir = Directory.CreateTempSubdirectory("sparky-field-").FullName;
        try
        {
            var stat = Path.Combine(dir, "cpu.stat");
            File.WriteAllText(stat, "usage 7\nusage_usec 1234567\nuser_usec 1000\nnr_periods 12x\n");
            Assert.Equal(1234567, MemoryControl.Field(stat, "usage_usec"));
            Assert.Equal(7, MemoryControl.Field(stat, "usage")); // not usage_usec's line
            Assert.Equal(1000, MemoryControl.Field(stat, "user_usec"));
            Assert.Null(MemoryControl.Field(stat, "nr_periods")); // not a number
            Assert.Null(MemoryControl.Field(stat, "system_usec")); // no such line
            Assert.Null(MemoryControl.Field(stat, "user")); // a prefix of a key is not a key
            Assert.Null(MemoryControl.Field(Path.Combine(dir, "gone"), "usage_usec"));
            // The last line without its newline, as the kernel never writes it but a test or a proxy might.
            File.WriteAllText(stat, "oom 0\noom_kill 3");
            Assert.Equal(3, MemoryControl.Field(stat, "oom_kill"));
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void The_kernels_own_cpu_stat_is_read()
    {
        // This process's cgroup (v2 or the hybrid's unified hierarchy): where cpu.stat exists, usage_usec is in it.
        var line = File.ReadLines("/proc/self/cgroup").FirstOrDefault(l => l.StartsWith("0::"));
        var root = Directory.Exists("/sys/fs/cgroup/unified") ? "/sys/fs/cgroup/unified" : "/sys/fs/cgroup";
        var stat = line is null ? null : Path.Combine(root + line[3..], "cpu.stat");
        if (stat is null || !File.Exists(stat))
        {
            Assert.False(Environment.GetEnvironmentVariable("CI") == "true" && Directory.Exists("/sys/fs/cgroup/unified"), $"no cpu.stat at {stat}");
            return;
        }
        Assert.True(MemoryControl.Field(stat, "usage_usec") > 0, File.ReadAllText(stat));
    }
}
