namespace Sparky.Execution.Tests.Gpus;

/// <summary>
/// nvidia-smi --query-gpu=index,uuid,name,memory.total,memory.used,utilization.gpu,temperature.gpu,pci.bus_id
/// --format=csv,noheader,nounits output in the shapes real machines print (totals in MiB as the
/// drivers report them: H100 81559, A100 80GB 81920, RTX 4090 24564; a GB10 prints [N/A] for memory).
/// </summary>
internal static class Samples
{
    public const long MiB = 1024 * 1024;

    public const string DgxH100 =
        "0, GPU-5e5a2f3c-1b7d-4e09-8c2a-93f1d6b0a411, NVIDIA H100 80GB HBM3, 81559, 0, 0, 31, 00000000:18:00.0\n" +
        "1, GPU-0b1c7e92-55d4-2f3e-a8e1-6d2c4b9f7e20, NVIDIA H100 80GB HBM3, 81559, 71234, 97, 58, 00000000:2A:00.0\n" +
        "2, GPU-9f3e1d2c-7a6b-4c5d-8e9f-0a1b2c3d4e5f, NVIDIA H100 80GB HBM3, 81559, 4, 0, 30, 00000000:3A:00.0\n" +
        "3, GPU-1a2b3c4d-5e6f-7081-92a3-b4c5d6e7f809, NVIDIA H100 80GB HBM3, 81559, 4, 0, 29, 00000000:5D:00.0\n" +
        "4, GPU-2b3c4d5e-6f70-8192-a3b4-c5d6e7f8091a, NVIDIA H100 80GB HBM3, 81559, 4, 0, 30, 00000000:9A:00.0\n" +
        "5, GPU-3c4d5e6f-7081-92a3-b4c5-d6e7f8091a2b, NVIDIA H100 80GB HBM3, 81559, 4, 0, 32, 00000000:AB:00.0\n" +
        "6, GPU-4d5e6f70-8192-a3b4-c5d6-e7f8091a2b3c, NVIDIA H100 80GB HBM3, 81559, 4, 0, 31, 00000000:BA:00.0\n" +
        "7, GPU-5e6f7081-92a3-b4c5-d6e7-f8091a2b3c4d, NVIDIA H100 80GB HBM3, 81559, 4, 0, 33, 00000000:DB:00.0\n";

    public const string A100Pair =
        "0, GPU-7f0c3a1e-2d4b-11ee-9a3c-0242ac120002, NVIDIA A100-SXM4-80GB, 81920, 1, 0, 27, 00000000:07:00.0\r\n" +
        "1, GPU-7f0c3a1e-2d4b-11ee-9a3c-0242ac120003, NVIDIA A100-SXM4-80GB, 81920, 40321, 64, 51, 00000000:0F:00.0\r\n";

    public const string Rtx4090 =
        "0, GPU-a3d94c1e-7b20-4f6e-9c85-2e1b0d7f6a39, NVIDIA GeForce RTX 4090, 24564, 1187, 12, 44, 00000000:01:00.0\n\n\n";

    // DGX Spark: memory is the host's, so the driver reports none of its own.
    public const string Gb10 =
        "0, GPU-6c1f0a3d-92b4-4e7a-b5d2-1f8e3c7a9d04, NVIDIA GB10, [N/A], [N/A], 0, 35, 0000000F:01:00.0\n";

    // Older drivers spell it without brackets, or as [Not Supported].
    public const string Gb10NotSupported =
        "0, GPU-6c1f0a3d-92b4-4e7a-b5d2-1f8e3c7a9d04, NVIDIA GB10, [Not Supported], [Not Supported], N/A, N/A, [N/A]\n";

    public static readonly Sparky.Execution.Gpus.HostMemory SparkHost = new(127600748L * 1024, 118566368L * 1024);

    public const string SparkMemInfo =
        "MemTotal:       127600748 kB\nMemFree:        100000000 kB\nMemAvailable:   118566368 kB\nBuffers:          123456 kB\n";
}
