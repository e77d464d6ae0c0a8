using Sparky.Execution.Gpus;
using static Sparky.Execution.Tests.Gpus.Samples;

namespace Sparky.Execution.Tests.Gpus;

public class NvidiaSmiCsvTests
{
    [Fact]
    public void Eight_H100s_in_index_order_with_memory_in_bytes()
    {
        var gpus = NvidiaSmiCsv.Parse(DgxH100, host: null);

        Assert.Equal(Enumerable.Range(0, 8), gpus.Select(g => g.Index));
        Assert.All(gpus, g => Assert.Equal("NVIDIA H100 80GB HBM3", g.Name));
        Assert.All(gpus, g => Assert.Equal(81559 * MiB, g.MemoryTotalBytes));
        Assert.All(gpus, g => Assert.False(g.UnifiedMemory));
        var busy = gpus[1];
        Assert.Equal("GPU-0b1c7e92-55d4-2f3e-a8e1-6d2c4b9f7e20", busy.Uuid);
        Assert.Equal(71234 * MiB, busy.MemoryUsedBytes);
        Assert.Equal(0.97, busy.UtilizationRatio!.Value, 6);
        Assert.Equal(58, busy.TemperatureC);
        Assert.Equal("00000000:2A:00.0", busy.PciBusId);
        Assert.Equal(8, gpus.Select(g => g.Uuid).Distinct().Count());
    }

    [Fact]
    public void Windows_line_endings_are_not_part_of_the_last_field()
    {
        var gpus = NvidiaSmiCsv.Parse(A100Pair, null);

        Assert.Equal(2, gpus.Count);
        Assert.Equal("NVIDIA A100-SXM4-80GB", gpus[0].Name);
        Assert.Equal(81920 * MiB, gpus[1].MemoryTotalBytes);
        Assert.Equal("00000000:0F:00.0", gpus[1].PciBusId);
    }

    [Fact]
    public void A_name_with_spaces_and_trailing_blank_lines()
    {
        var gpu = Assert.Single(NvidiaSmiCsv.Parse(Rtx4090, null));

        Assert.Equal("NVIDIA GeForce RTX 4090", gpu.Name);
        Assert.Equal(24564 * MiB, gpu.MemoryTotalBytes);
        Assert.Equal(1187 * MiB, gpu.MemoryUsedBytes);
        Assert.Equal(0.12, gpu.UtilizationRatio!.Value, 6);
    }

    [Fact]
    public void Fields_without_spaces_after_commas_parse_the_same()
    {
        var tight = NvidiaSmiCsv.Parse(Rtx4090.Replace(", ", ","), null);
        Assert.Equal(NvidiaSmiCsv.Parse(Rtx4090, null), tight);
    }

    [Fact]
    public void Extra_spaces_around_fields_are_ignored()
    {
        var gpu = Assert.Single(NvidiaSmiCsv.Parse(
            "  0 ,   GPU-a3d94c1e-7b20-4f6e-9c85-2e1b0d7f6a39 ,  NVIDIA GeForce RTX 4090  , 24564 ,  1187 , 12 , 44 , 00000000:01:00.0  ", null));
        Assert.Equal("NVIDIA GeForce RTX 4090", gpu.Name);
        Assert.Equal(44, gpu.TemperatureC);
    }

    [Fact]
    public void Gb10_with_na_memory_takes_the_hosts_memory()
    {
        var gpu = Assert.Single(NvidiaSmiCsv.Parse(Gb10, SparkHost));

        Assert.True(gpu.UnifiedMemory);
        Assert.Equal("NVIDIA GB10", gpu.Name);
        Assert.Equal(127600748L * 1024, gpu.MemoryTotalBytes);
        Assert.Equal((127600748L - 118566368L) * 1024, gpu.MemoryUsedBytes);
        Assert.Equal(0.0, gpu.UtilizationRatio);
        Assert.Equal(35, gpu.TemperatureC);
        Assert.Equal("0000000F:01:00.0", gpu.PciBusId);
    }

    [Fact]
    public void Gb10_without_host_memory_is_unified_with_memory_unknown()
    {
        var gpu = Assert.Single(NvidiaSmiCsv.Parse(Gb10, host: null));

        Assert.True(gpu.UnifiedMemory);
        Assert.Null(gpu.MemoryTotalBytes);
        Assert.Null(gpu.MemoryUsedBytes);
    }

    [Fact]
    public void Not_supported_and_bare_na_are_unknown_values()
    {
        var gpu = Assert.Single(NvidiaSmiCsv.Parse(Gb10NotSupported, SparkHost));

        Assert.True(gpu.UnifiedMemory);
        Assert.Equal(SparkHost.TotalBytes, gpu.MemoryTotalBytes);
        Assert.Null(gpu.UtilizationRatio);
        Assert.Null(gpu.TemperatureC);
        Assert.Null(gpu.PciBusId);
    }

    [Fact]
    public void A_failing_memory_query_is_unknown_but_not_unified()
    {
        // "[Unknown Error]" is a failure of a discrete card, not a device without memory of its own.
        var gpu = Assert.Single(NvidiaSmiCsv.Parse(
            "0, GPU-7f0c3a1e-2d4b-11ee-9a3c-0242ac120002, NVIDIA A100-SXM4-80GB, [Unknown Error], [Unknown Error], 0, 27, 00000000:07:00.0", SparkHost));

        Assert.False(gpu.UnifiedMemory);
        Assert.Null(gpu.MemoryTotalBytes);
    }

    [Fact]
    public void Units_left_in_are_tolerated()
    {
        var gpu = Assert.Single(NvidiaSmiCsv.Parse(
            "0, GPU-a3d94c1e-7b20-4f6e-9c85-2e1b0d7f6a39, NVIDIA GeForce RTX 4090, 24564 MiB, 1187 MiB, 12 %, 44, 00000000:01:00.0", null));
        Assert.Equal(24564 * MiB, gpu.MemoryTotalBytes);
        Assert.Equal(0.12, gpu.UtilizationRatio!.Value, 6);
    }

    [Fact]
    public void A_header_line_is_skipped()
    {
        var text = "index, uuid, name, memory.total [MiB], memory.used [MiB], utilization.gpu [%], temperature.gpu, pci.bus_id\n" + Rtx4090;
        Assert.Single(NvidiaSmiCsv.Parse(text, null));
    }

    [Fact]
    public void A_comma_in_a_name_stays_in_the_name()
    {
        var gpu = Assert.Single(NvidiaSmiCsv.Parse(
            "0, GPU-a3d94c1e-7b20-4f6e-9c85-2e1b0d7f6a39, Some Board, Rev 2, 24564, 1187, 12, 44, 00000000:01:00.0", null));
        Assert.Equal("Some Board, Rev 2", gpu.Name);
        Assert.Equal(24564 * MiB, gpu.MemoryTotalBytes);
    }

    [Theory]
    [InlineData("")]
    [InlineData("\n")]
    [InlineData("\r\n\r\n")]
    public void Empty_output_is_no_gpu(string text) => Assert.Empty(NvidiaSmiCsv.Parse(text, null));

    [Theory]
    [InlineData("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.", "line 1: expected 8 comma-separated fields")]
    [InlineData("0, GPU-5e5a2f3c-1b7d-4e09-8c2a-93f1d6b0a411, NVIDIA H100 80GB HBM3, 81559", "got 4")]
    [InlineData("x, GPU-5e5a2f3c-1b7d-4e09-8c2a-93f1d6b0a411, NVIDIA H100 80GB HBM3, 81559, 0, 0, 31, 00000000:18:00.0", "index 'x' is not a number")]
    [InlineData("0, 5e5a2f3c, NVIDIA H100 80GB HBM3, 81559, 0, 0, 31, 00000000:18:00.0", "'5e5a2f3c' is not a GPU UUID")]
    [InlineData("0, GPU-5e5a2f3c-1b7d-4e09-8c2a-93f1d6b0a411, NVIDIA H100 80GB HBM3, 80GB, 0, 0, 31, 00000000:18:00.0", "memory.total '80GB' is not a number")]
    [InlineData("0, GPU-5e5a2f3c-1b7d-4e09-8c2a-93f1d6b0a411, NVIDIA H100 80GB HBM3, 81559, 0, 150, 31, 00000000:18:00.0", "utilization.gpu 150 is outside 0-100")]
    [InlineData("0, GPU-5e5a2f3c-1b7d-4e09-8c2a-93f1d6b0a411, NVIDIA H100 80GB HBM3, 81559, -5, 0, 31, 00000000:18:00.0", "memory.used '-5' is not a number")]
    public void Garbage_is_a_clear_error(string text, string expected)
    {
        var e = Assert.Throws<GpuException>(() => NvidiaSmiCsv.Parse(text, null));
        Assert.Contains(expected, e.Message);
        Assert.StartsWith("nvidia-smi output, line ", e.Message);
    }

    [Fact]
    public void The_error_names_the_bad_line()
    {
        var text = DgxH100.Split('\n')[0] + "\nsomething went wrong\n";
        var e = Assert.Throws<GpuException>(() => NvidiaSmiCsv.Parse(text, null));
        Assert.Contains("line 2", e.Message);
        Assert.Contains("something went wrong", e.Message);
    }

    [Fact]
    public void A_repeated_gpu_is_an_error()
    {
        var line = DgxH100.Split('\n')[0];
        var e = Assert.Throws<GpuException>(() => NvidiaSmiCsv.Parse(line + "\n" + line.Replace("0, GPU", "1, GPU"), null));
        Assert.Contains("appears twice", e.Message);
    }

    [Fact]
    public void Host_memory_from_meminfo()
    {
        var host = HostMemory.Parse(SparkMemInfo);
        Assert.Equal(SparkHost, host);
        Assert.Equal((127600748L - 118566368L) * 1024, host!.Value.UsedBytes);
        Assert.Null(HostMemory.Parse("MemTotal: 1000 kB\n"));
        Assert.Null(HostMemory.Parse("garbage"));
    }
}
