using Sparky.Execution.Gpus;
using static Sparky.Execution.Tests.Gpus.Samples;

namespace Sparky.Execution.Tests.Gpus;

[System.Runtime.Versioning.UnsupportedOSPlatform("windows")] // shell scripts stand in for nvidia-smi
public sealed class GpuDiscoveryTests : IDisposable
{
    private const string NoNvml = "libnvidia-ml-not-here-for-tests.so.1";
    private readonly string _dir = Directory.CreateTempSubdirectory("sparky-gpu-tests-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>A fake nvidia-smi: prints the contents of a file beside it (so a test can change the answer), checks its arguments.</summary>
    private string FakeSmi(string output, int exitCode = 0, string extra = "")
    {
        File.WriteAllText(Path.Combine(_dir, "out.txt"), output);
        var path = Path.Combine(_dir, "nvidia-smi");
        File.WriteAllText(path, $$"""
            #!/bin/sh
            [ "$1" = "--query-gpu={{NvidiaSmiCsv.Fields}}" ] && [ "$2" = "--format=csv,noheader,nounits" ] || { echo "bad args: $*"; exit 2; }
            {{extra}}
            cat "{{_dir}}/out.txt"
            exit {{exitCode}}
            """);
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        return path;
    }

    private GpuDiscoveryOptions Options(string? smi, string? visible = null) => new()
    {
        NvmlLibrary = NoNvml,
        NvidiaSmi = smi,
        VisibleGpus = visible,
        MemInfoPath = WriteMemInfo(),
    };

    private string WriteMemInfo()
    {
        var path = Path.Combine(_dir, "meminfo");
        File.WriteAllText(path, SparkMemInfo);
        return path;
    }

    [Fact]
    public void Without_nvml_nvidia_smi_is_used()
    {
        using var d = GpuDiscovery.Discover(Options(FakeSmi(DgxH100)));

        Assert.Equal("nvidia-smi", d.Source);
        Assert.Equal(8, d.Gpus.Count);
        Assert.Contains(d.Problems, p => p.Contains("NVML") && p.Contains(NoNvml));
    }

    [Fact]
    public void Without_nvml_or_nvidia_smi_there_is_no_gpu_and_no_error()
    {
        using var d = GpuDiscovery.Discover(Options(Path.Combine(_dir, "no-such-nvidia-smi")));

        Assert.Equal(GpuDiscovery.None, d.Source);
        Assert.Empty(d.Gpus);
        Assert.Empty(d.Sample());
        Assert.Equal(2, d.Problems.Count);
        Assert.Equal($"nvidia-smi: '{Path.Combine(_dir, "no-such-nvidia-smi")}' not found", d.Problems[1]);
    }

    [Fact]
    public void Nvidia_smi_not_on_path_is_no_gpu()
    {
        using var d = GpuDiscovery.Discover(Options("nvidia-smi-not-on-any-path"));
        Assert.Equal(GpuDiscovery.None, d.Source);
    }

    [Fact]
    public void Nvidia_smi_that_fails_falls_through_with_its_reason()
    {
        var smi = FakeSmi("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\n", exitCode: 9);
        using var d = GpuDiscovery.Discover(Options(smi));

        Assert.Equal(GpuDiscovery.None, d.Source);
        Assert.Contains(d.Problems, p => p.Contains("exit code 9") && p.Contains("couldn't communicate"));
    }

    [Fact]
    public void Nvidia_smi_printing_garbage_falls_through_with_the_parse_error()
    {
        using var d = GpuDiscovery.Discover(Options(FakeSmi("Segmentation fault\n")));

        Assert.Equal(GpuDiscovery.None, d.Source);
        Assert.Contains(d.Problems, p => p.Contains("line 1") && p.Contains("Segmentation fault"));
    }

    [Fact]
    public void A_hung_nvidia_smi_is_given_up_on()
    {
        var smi = FakeSmi(DgxH100, extra: "sleep 30");
        var started = DateTime.UtcNow;
        using var d = GpuDiscovery.Discover(Options(smi) with { NvidiaSmiTimeout = TimeSpan.FromMilliseconds(500) });

        Assert.Equal(GpuDiscovery.None, d.Source);
        Assert.Contains(d.Problems, p => p.Contains("no answer within"));
        Assert.True(DateTime.UtcNow - started < TimeSpan.FromSeconds(10));
    }

    [Fact]
    public void The_system_nvml_being_absent_or_present_never_throws()
    {
        // On a machine without the driver this exercises the real TryLoad of libnvidia-ml.so.1.
        using var d = GpuDiscovery.Discover(new GpuDiscoveryOptions { NvidiaSmi = null });
        Assert.True(d.Source is "nvml" or GpuDiscovery.None);
        if (d.Source == GpuDiscovery.None) Assert.Empty(d.Gpus);
    }

    [Fact]
    public void Gb10_through_nvidia_smi_gets_the_hosts_memory()
    {
        using var d = GpuDiscovery.Discover(Options(FakeSmi(Gb10)));

        var gpu = Assert.Single(d.Gpus);
        Assert.True(gpu.UnifiedMemory);
        Assert.Equal(127600748L * 1024, gpu.MemoryTotalBytes);
        Assert.Equal((127600748L - 118566368L) * 1024, gpu.MemoryUsedBytes);
    }

    [Fact]
    public void Visible_gpus_filter_what_discovery_reports()
    {
        using var d = GpuDiscovery.Discover(Options(FakeSmi(DgxH100), visible: "3,GPU-5e5a2f3c-1b7d-4e09-8c2a-93f1d6b0a411"));
        Assert.Equal([0, 3], d.Gpus.Select(g => g.Index));
    }

    [Fact]
    public void Visible_gpus_naming_a_missing_gpu_is_an_error_with_the_sources_reasons()
    {
        var e = Assert.Throws<GpuException>(() => GpuDiscovery.Discover(Options("nvidia-smi-not-on-any-path", visible: "0")));
        Assert.Contains("'0'", e.Message);
        Assert.Contains("no GPU was found", e.Message);
        Assert.Contains(NoNvml, e.Message);
    }

    [Fact]
    public void Sample_rereads_readings_for_the_visible_gpus()
    {
        var smi = FakeSmi(A100Pair);
        using var d = GpuDiscovery.Discover(Options(smi, visible: "1"));
        Assert.Equal(0.64, Assert.Single(d.Gpus).UtilizationRatio!.Value, 6);

        File.WriteAllText(Path.Combine(_dir, "out.txt"), A100Pair.Replace("40321, 64, 51", "50000, 100, 70"));
        var now = Assert.Single(d.Sample());

        Assert.Equal(1, now.Index);
        Assert.Equal(1.0, now.UtilizationRatio);
        Assert.Equal(50000 * MiB, now.MemoryUsedBytes);
        Assert.Equal(70, now.TemperatureC);
        Assert.Null(d.LastSampleError);
    }

    [Fact]
    public void Sample_when_the_source_fails_keeps_the_gpus_with_readings_unknown()
    {
        using var d = GpuDiscovery.Discover(Options(FakeSmi(A100Pair)));
        File.WriteAllText(Path.Combine(_dir, "out.txt"), "garbage\n");

        var now = d.Sample();

        Assert.Equal(2, now.Count);
        Assert.All(now, g => Assert.Null(g.UtilizationRatio));
        Assert.All(now, g => Assert.Null(g.MemoryUsedBytes));
        Assert.Equal(81920 * MiB, now[0].MemoryTotalBytes);
        Assert.Contains("garbage", d.LastSampleError);
    }

    [Fact]
    public void Sample_for_a_gpu_that_disappeared_has_readings_unknown()
    {
        using var d = GpuDiscovery.Discover(Options(FakeSmi(A100Pair)));
        File.WriteAllText(Path.Combine(_dir, "out.txt"), A100Pair.Split('\n')[0]);

        var now = d.Sample();

        Assert.Equal(0.0, now[0].UtilizationRatio);
        Assert.Null(now[1].UtilizationRatio);
        Assert.Equal("GPU-7f0c3a1e-2d4b-11ee-9a3c-0242ac120003", now[1].Uuid);
    }
}
