using System.Runtime.InteropServices;

namespace Sparky.Execution.Gpus;

// Layouts from NVIDIA's nvml.h; the sizes are checked by a test, because a wrong one corrupts
// memory on the first real GPU rather than failing here.

/// <summary>nvmlMemory_t (v1): 24 bytes.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct NvmlMemory
{
    public ulong Total;
    public ulong Free;
    public ulong Used;
}

/// <summary>nvmlUtilization_t: 8 bytes; percentages over the last sample period.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct NvmlUtilization
{
    public uint Gpu;
    public uint Memory;
}

/// <summary>nvmlPciInfo_t as nvmlDeviceGetPciInfo_v3 fills it: 68 bytes.</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct NvmlPciInfo
{
    public const int BusIdLegacySize = 16; // NVML_DEVICE_PCI_BUS_ID_BUFFER_V2_SIZE
    public const int BusIdSize = 32;       // NVML_DEVICE_PCI_BUS_ID_BUFFER_SIZE
    public fixed byte BusIdLegacy[BusIdLegacySize];
    public uint Domain;
    public uint Bus;
    public uint Device;
    public uint PciDeviceId;
    public uint PciSubSystemId;
    public fixed byte BusId[BusIdSize];
}

/// <summary>A place GPUs are read from. <see cref="Read"/> throws <see cref="GpuException"/> when the source fails as a whole.</summary>
internal interface IGpuSource : IDisposable
{
    string Name { get; }
    IReadOnlyList<GpuInfo> Read();
}

/// <summary>
/// NVML through function pointers from <c>libnvidia-ml.so.1</c>, loaded with NativeLibrary.TryLoad:
/// a machine without the driver has no such library, and that is the normal no-GPU case.
/// Initialised once, shut down on Dispose; NVML is thread-safe, so reads need no lock of their own.
/// </summary>
internal sealed unsafe class NvmlSource : IGpuSource
{
    public const string DefaultLibrary = "libnvidia-ml.so.1";

    public const int Success = 0;
    public const int ErrorNotSupported = 3;
    private const int TemperatureGpu = 0;   // NVML_TEMPERATURE_GPU
    private const int NameBufferSize = 96;  // NVML_DEVICE_NAME_V2_BUFFER_SIZE
    private const int UuidBufferSize = 96;  // NVML_DEVICE_UUID_V2_BUFFER_SIZE

    private nint _lib;
    private readonly Func<HostMemory?> _host;
    private delegate* unmanaged<int> _shutdown;
    private delegate* unmanaged<uint*, int> _getCount;
    private delegate* unmanaged<uint, nint*, int> _getHandle;
    private delegate* unmanaged<nint, byte*, uint, int> _getUuid;
    private delegate* unmanaged<nint, byte*, uint, int> _getName;
    private delegate* unmanaged<nint, NvmlMemory*, int> _getMemory;
    // Optional: a driver without them still gives the GPUs, with those readings unknown.
    private delegate* unmanaged<nint, NvmlUtilization*, int> _getUtilization;
    private delegate* unmanaged<nint, int, uint*, int> _getTemperature;
    private delegate* unmanaged<nint, NvmlPciInfo*, int> _getPci;
    private delegate* unmanaged<int, byte*> _errorString;

    public string Name => "nvml";

    private NvmlSource(nint lib, Func<HostMemory?> host) { _lib = lib; _host = host; }

    /// <summary>Loads and initialises NVML; null, with the reason in <paramref name="problem"/>, where it cannot.</summary>
    public static NvmlSource? TryOpen(string library, Func<HostMemory?> host, out string? problem)
    {
        if (!NativeLibrary.TryLoad(library, out nint lib))
        {
            problem = $"NVML: {library} not found";
            return null;
        }
        var s = new NvmlSource(lib, host);
        nint init = Export(lib, "nvmlInit_v2"), shutdown = Export(lib, "nvmlShutdown"),
            count = Export(lib, "nvmlDeviceGetCount_v2"), handle = Export(lib, "nvmlDeviceGetHandleByIndex_v2"),
            uuid = Export(lib, "nvmlDeviceGetUUID"), name = Export(lib, "nvmlDeviceGetName"),
            memory = Export(lib, "nvmlDeviceGetMemoryInfo");
        if (init == 0 || shutdown == 0 || count == 0 || handle == 0 || uuid == 0 || name == 0 || memory == 0)
        {
            NativeLibrary.Free(lib);
            problem = $"NVML: {library} lacks the functions needed (driver too old?)";
            return null;
        }
        s._shutdown = (delegate* unmanaged<int>)shutdown;
        s._getCount = (delegate* unmanaged<uint*, int>)count;
        s._getHandle = (delegate* unmanaged<uint, nint*, int>)handle;
        s._getUuid = (delegate* unmanaged<nint, byte*, uint, int>)uuid;
        s._getName = (delegate* unmanaged<nint, byte*, uint, int>)name;
        s._getMemory = (delegate* unmanaged<nint, NvmlMemory*, int>)memory;
        s._getUtilization = (delegate* unmanaged<nint, NvmlUtilization*, int>)Export(lib, "nvmlDeviceGetUtilizationRates");
        s._getTemperature = (delegate* unmanaged<nint, int, uint*, int>)Export(lib, "nvmlDeviceGetTemperature");
        s._getPci = (delegate* unmanaged<nint, NvmlPciInfo*, int>)Export(lib, "nvmlDeviceGetPciInfo_v3");
        s._errorString = (delegate* unmanaged<int, byte*>)Export(lib, "nvmlErrorString");

        int rc = ((delegate* unmanaged<int>)init)();
        if (rc != Success)
        {
            problem = $"NVML: nvmlInit_v2 failed: {s.Error(rc)}";
            NativeLibrary.Free(lib);
            s._lib = 0;
            return null;
        }
        problem = null;
        return s;
    }

    private static nint Export(nint lib, string name) => NativeLibrary.TryGetExport(lib, name, out nint p) ? p : 0;

    public IReadOnlyList<GpuInfo> Read()
    {
        if (_lib == 0) throw new ObjectDisposedException(nameof(NvmlSource));
        uint count;
        int rc = _getCount(&count);
        if (rc != Success) throw new GpuException($"NVML: nvmlDeviceGetCount_v2 failed: {Error(rc)}");

        var gpus = new List<GpuInfo>((int)count);
        HostMemory? host = null;
        bool hostRead = false;
        byte* text = stackalloc byte[Math.Max(NameBufferSize, UuidBufferSize)];
        for (uint i = 0; i < count; i++)
        {
            nint dev;
            // A device that cannot be opened or named (fallen off the bus, say) cannot be handed out by UUID either.
            if (_getHandle(i, &dev) != Success) continue;
            if (_getUuid(dev, text, UuidBufferSize) != Success) continue;
            string uuid = Utf8(text, UuidBufferSize);
            string name = _getName(dev, text, NameBufferSize) == Success ? Utf8(text, NameBufferSize) : "unknown";

            long? total = null, used = null;
            bool unified = false;
            NvmlMemory mem;
            rc = _getMemory(dev, &mem);
            if (rc == Success) { total = (long)mem.Total; used = (long)mem.Used; }
            else if (rc == ErrorNotSupported)
            {
                // Unified memory (GB10): the GPU's memory is the host's.
                unified = true;
                if (!hostRead) { host = _host(); hostRead = true; }
                if (host is { } h) { total = h.TotalBytes; used = h.UsedBytes; }
            }

            double? util = null;
            NvmlUtilization u;
            if (_getUtilization != null && _getUtilization(dev, &u) == Success) util = Math.Min(u.Gpu, 100u) / 100.0;

            int? temp = null;
            uint t;
            if (_getTemperature != null && _getTemperature(dev, TemperatureGpu, &t) == Success) temp = (int)t;

            string? bus = null;
            NvmlPciInfo pci;
            if (_getPci != null && _getPci(dev, &pci) == Success) bus = Utf8(pci.BusId, NvmlPciInfo.BusIdSize);

            gpus.Add(new GpuInfo((int)i, uuid, name, total, used, util, temp, string.IsNullOrEmpty(bus) ? null : bus, unified));
        }
        return gpus;
    }

    private static string Utf8(byte* buf, int size)
    {
        int n = 0;
        while (n < size && buf[n] != 0) n++;
        return System.Text.Encoding.UTF8.GetString(buf, n).Trim();
    }

    private string Error(int rc)
    {
        var s = _errorString != null ? Marshal.PtrToStringUTF8((nint)_errorString(rc)) : null;
        return s is null ? $"error {rc}" : $"{s} ({rc})";
    }

    public void Dispose()
    {
        if (_lib == 0) return;
        _shutdown();
        NativeLibrary.Free(_lib);
        _lib = 0;
    }
}
