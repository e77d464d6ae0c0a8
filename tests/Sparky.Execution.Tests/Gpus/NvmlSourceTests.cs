using System.Diagnostics;
using System.Runtime.InteropServices;
using Sparky.Execution.Gpus;
using static Sparky.Execution.Tests.Gpus.Samples;

namespace Sparky.Execution.Tests.Gpus;

/// <summary>Builds fake_nvml.c once per test run into a shared library beside the tests.</summary>
internal static class FakeNvml
{
    private static readonly Lazy<string> Built = new(Build);

    private static bool HaveCc => Environment.GetEnvironmentVariable("PATH")?.Split(':')
        .Any(d => d.Length > 0 && File.Exists(System.IO.Path.Combine(d, "cc"))) == true;

    /// <summary>The library's path; a compile error fails the test that asked, with cc's message.</summary>
    public static string Path => Built.Value;

    private static string Build()
    {
        // Never skipped: without a compiler the test fails and says how to get one (test.sh installs gcc).
        if (!HaveCc) throw new InvalidOperationException("no C compiler (cc) to build the stand-in libnvidia-ml: apt-get install gcc libc6-dev, or run ./test.sh as root");
        var dir = System.IO.Path.Combine(AppContext.BaseDirectory, "fake-nvml");
        Directory.CreateDirectory(dir);
        var lib = System.IO.Path.Combine(dir, "libnvidia-ml.so.1");
        var source = System.IO.Path.Combine(AppContext.BaseDirectory, "Gpus", "fake_nvml.c");
        using var cc = Process.Start(new ProcessStartInfo("cc", ["-shared", "-fPIC", "-O1", "-o", lib, source])
            { RedirectStandardError = true, RedirectStandardOutput = true })!;
        var err = cc.StandardError.ReadToEnd();
        cc.WaitForExit();
        if (cc.ExitCode != 0) throw new InvalidOperationException("cc failed to build the fake libnvidia-ml: " + err);
        return lib;
    }
}

public sealed unsafe class NvmlSourceTests : IDisposable
{
    private readonly string _meminfo = System.IO.Path.GetTempFileName();

    public NvmlSourceTests() => File.WriteAllText(_meminfo, SparkMemInfo);
    public void Dispose() => File.Delete(_meminfo);

    private GpuDiscoveryOptions Options() => new() { NvmlLibrary = FakeNvml.Path, NvidiaSmi = null, MemInfoPath = _meminfo };

    private static int OpenCount()
    {
        nint lib = NativeLibrary.Load(FakeNvml.Path);
        try { return ((delegate* unmanaged<int>)NativeLibrary.GetExport(lib, "fake_open_count"))(); }
        finally { NativeLibrary.Free(lib); }
    }

    [Fact]
    public void Reads_every_field_through_the_real_interop()
    {
        using var d = GpuDiscovery.Discover(Options());

        Assert.Equal("nvml", d.Source);
        Assert.Equal(2, d.Gpus.Count);
        var h100 = d.Gpus[0];
        Assert.Equal(new GpuInfo(0, "GPU-11111111-2222-3333-4444-555555555555", "NVIDIA H100 80GB HBM3",
            85520809984L, 1000 * MiB, 0.42, 41, "00000000:18:00.0", UnifiedMemory: false), h100);
    }

    [Fact]
    public void Memory_not_supported_is_unified_with_the_hosts_memory()
    {
        using var d = GpuDiscovery.Discover(Options());

        var gb10 = d.Gpus[1];
        Assert.Equal("NVIDIA GB10", gb10.Name);
        Assert.True(gb10.UnifiedMemory);
        Assert.Equal(SparkHost.TotalBytes, gb10.MemoryTotalBytes);
        Assert.Equal(SparkHost.UsedBytes, gb10.MemoryUsedBytes);
        Assert.Equal("0000000F:01:00.0", gb10.PciBusId);
        Assert.Equal(35, gb10.TemperatureC);
    }

    [Fact]
    public void Sample_rereads_and_dispose_shuts_nvml_down()
    {
        int before = OpenCount();
        var d = GpuDiscovery.Discover(Options() with { VisibleGpus = "GPU-11111111-2222-3333-4444-555555555555" });
        Assert.Equal(before + 1, OpenCount());

        nint lib = NativeLibrary.Load(FakeNvml.Path);
        ((delegate* unmanaged<uint, void>)NativeLibrary.GetExport(lib, "fake_set_utilization"))(88);
        NativeLibrary.Free(lib);
        Assert.Equal(0.88, Assert.Single(d.Sample()).UtilizationRatio!.Value, 6);

        d.Dispose();
        Assert.Equal(before, OpenCount());
        Assert.All(d.Sample(), g => Assert.Null(g.UtilizationRatio));
    }
}
