using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Sparky.Execution.Gpus;

namespace Sparky.Execution.Tests.Gpus;

/// <summary>Sizes and offsets from nvml.h (x86_64 and aarch64 alike): a mismatch would corrupt memory on a real GPU.</summary>
public class NvmlLayoutTests
{
    [Fact]
    public void Memory_is_three_unsigned_long_longs()
    {
        Assert.Equal(24, Unsafe.SizeOf<NvmlMemory>());
        Assert.Equal(24, Marshal.SizeOf<NvmlMemory>());
        Assert.Equal(0, (int)Marshal.OffsetOf<NvmlMemory>(nameof(NvmlMemory.Total)));
        Assert.Equal(8, (int)Marshal.OffsetOf<NvmlMemory>(nameof(NvmlMemory.Free)));
        Assert.Equal(16, (int)Marshal.OffsetOf<NvmlMemory>(nameof(NvmlMemory.Used)));
    }

    [Fact]
    public void Utilization_is_two_unsigned_ints()
    {
        Assert.Equal(8, Unsafe.SizeOf<NvmlUtilization>());
        Assert.Equal(4, (int)Marshal.OffsetOf<NvmlUtilization>(nameof(NvmlUtilization.Memory)));
    }

    [Fact]
    public void Pci_info_has_the_v3_layout()
    {
        // char busIdLegacy[16]; unsigned int domain, bus, device, pciDeviceId, pciSubSystemId; char busId[32];
        Assert.Equal(68, Unsafe.SizeOf<NvmlPciInfo>());
        Assert.Equal(68, Marshal.SizeOf<NvmlPciInfo>());
        Assert.Equal(16, (int)Marshal.OffsetOf<NvmlPciInfo>(nameof(NvmlPciInfo.Domain)));
        Assert.Equal(32, (int)Marshal.OffsetOf<NvmlPciInfo>(nameof(NvmlPciInfo.PciSubSystemId)));
        Assert.Equal(36, (int)Marshal.OffsetOf<NvmlPciInfo>(nameof(NvmlPciInfo.BusId)));
    }
}
