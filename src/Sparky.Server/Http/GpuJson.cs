using System.Text.Json.Nodes;
using Sparky.Execution.Gpus;

namespace Sparky.Server.Http;

/// <summary>The GPUs as JSON: one shape for <c>GET /api/v1/gpus</c> and <c>sparky gpus --json</c>.</summary>
public static class GpuJson
{
    /// <param name="holders">The running tasks that hold each GPU (the daemon's view: <c>tasks</c> per GPU); null: not
    /// known here (<c>sparky gpus</c> looks at the machine, not at a daemon).</param>
    public static JsonObject Of(GpuDiscovery discovery, IReadOnlyList<GpuInfo> gpus, IReadOnlyList<Sparky.Core.Scheduling.GpuHold>? holders = null)
    {
        var list = new JsonArray();
        foreach (var g in gpus)
        {
            var gpu = new JsonObject
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
            };
            if (holders is not null)
                gpu["tasks"] = new JsonArray(holders.Where(h => h.Uuid == g.Uuid)
                    .Select(h => (JsonNode?)new JsonObject { ["id"] = h.Task.Value, ["gpu_memory_mb"] = h.ShareMb }).ToArray());
            list.Add((JsonNode)gpu);
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
