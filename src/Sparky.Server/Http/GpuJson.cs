using System.Text.Json.Nodes;
using Sparky.Execution.Gpus;

namespace Sparky.Server.Http;

/// <summary>The GPUs as JSON: one shape for <c>GET /api/v1/gpus</c> and <c>sparky gpus --json</c>.</summary>
public static class GpuJson
{
    public static JsonObject Of(GpuDiscovery discovery, IReadOnlyList<GpuInfo> gpus)
    {
        var list = new JsonArray();
        foreach (var g in gpus)
        {
            list.Add((JsonNode)new JsonObject
            {
                ["index"] = g.Index,
                ["uuid"] = g.Uuid,
                ["name"] = g.Name,
                ["memory_total_bytes"] = g.MemoryTotalBytes,
                ["memory_used_bytes"] = g.MemoryUsedBytes,
                ["utilization"] = g.UtilizationRatio,
                ["temperature_c"] = g.TemperatureC,
                ["pci_bus_id"] = g.PciBusId,
                ["unified_memory"] = g.UnifiedMemory,
            });
        }
        var problems = new JsonArray();
        foreach (var p in discovery.Problems) problems.Add((JsonNode)p);
        return new JsonObject { ["source"] = discovery.Source, ["gpus"] = list, ["problems"] = problems, ["sample_error"] = discovery.LastSampleError };
    }

    /// <summary>Options from the settings in force.</summary>
    public static GpuDiscoveryOptions Options(Sparky.Core.Config.SparkyConfig config) => new()
    {
        VisibleGpus = config.VisibleGpus,
        NvmlLibrary = config.NvmlLibrary,
        NvidiaSmi = config.NvidiaSmi,
    };
}
