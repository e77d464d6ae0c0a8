using Sparky.Execution.Gpus;
using static Sparky.Execution.Tests.Gpus.Samples;

namespace Sparky.Execution.Tests.Gpus;

public class GpuFilterTests
{
    private static readonly IReadOnlyList<GpuInfo> Eight = NvidiaSmiCsv.Parse(DgxH100, null);

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("  ")]
    [InlineData(" , ")]
    public void Unset_keeps_all(string? visible) => Assert.Equal(8, GpuFilter.Apply(Eight, visible).Count);

    [Fact]
    public void By_index_in_discovery_order()
    {
        var kept = GpuFilter.Apply(Eight, "5, 2,7");
        Assert.Equal([2, 5, 7], kept.Select(g => g.Index));
    }

    [Fact]
    public void By_uuid_any_case_mixed_with_indices()
    {
        var kept = GpuFilter.Apply(Eight, "GPU-0B1C7E92-55D4-2F3E-A8E1-6D2C4B9F7E20,6");
        Assert.Equal([1, 6], kept.Select(g => g.Index));
        Assert.Equal("GPU-0b1c7e92-55d4-2f3e-a8e1-6d2c4b9f7e20", kept[0].Uuid);
    }

    [Fact]
    public void The_same_gpu_named_twice_is_kept_once()
    {
        var kept = GpuFilter.Apply(Eight, "1,GPU-0b1c7e92-55d4-2f3e-a8e1-6d2c4b9f7e20,1");
        Assert.Equal(1, Assert.Single(kept).Index);
    }

    [Fact]
    public void None_keeps_none() => Assert.Empty(GpuFilter.Apply(Eight, "none"));

    [Fact]
    public void An_index_that_matches_nothing_is_an_error_naming_it()
    {
        var e = Assert.Throws<GpuException>(() => GpuFilter.Apply(Eight, "0,8"));
        Assert.Contains("'8'", e.Message);
        Assert.DoesNotContain("'0'", e.Message);
        Assert.Contains("SPARKY_VISIBLE_GPUS", e.Message);
        Assert.Contains("7 (GPU-5e6f7081-92a3-b4c5-d6e7-f8091a2b3c4d)", e.Message);
    }

    [Fact]
    public void A_uuid_that_matches_nothing_is_an_error()
    {
        var e = Assert.Throws<GpuException>(() => GpuFilter.Apply(Eight, "GPU-deadbeef, bogus"));
        Assert.Contains("'GPU-deadbeef', 'bogus'", e.Message);
    }

    [Fact]
    public void Any_entry_on_a_machine_without_gpus_is_an_error()
    {
        var e = Assert.Throws<GpuException>(() => GpuFilter.Apply([], "0"));
        Assert.Contains("no GPU was found", e.Message);
    }
}
