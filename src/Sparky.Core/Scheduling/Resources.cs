namespace Sparky.Core.Scheduling;

/// <summary>
/// What one attempt reserves. A task that names no CPUs or memory reserves none (its class limit
/// governs it, as in pueue or task-spooler); what it names is reserved and never oversubscribed.
/// GPUs come whole (<see cref="Gpus"/>, exclusive) or as a memory share of one GPU
/// (<see cref="GpuMemoryMb"/>, several small tasks on one device).
/// </summary>
public readonly record struct ResourceRequest(int MilliCpus, long MemoryMb, int Gpus, long GpuMemoryMb)
{
    public static readonly ResourceRequest None = default;
    public bool IsNone => MilliCpus == 0 && MemoryMb == 0 && Gpus == 0 && GpuMemoryMb == 0;
    public bool WantsGpu => Gpus > 0 || GpuMemoryMb > 0;

    /// <summary>
    /// What the local executor reserves for a task of class <paramref name="cls"/> that asks <paramref name="asks"/>.
    /// A <c>gpu</c>-class task that names no GPU gets one whole GPU (that is what the class is for), or where
    /// <paramref name="defaultShareMb"/> is set (<c>gpu_memory_default</c>), a share of one GPU of that much memory;
    /// a Slurm-bound task reserves nothing here: Slurm does.
    /// </summary>
    public static ResourceRequest Local(string cls, ResourceRequest asks, bool slurmBound, long defaultShareMb = 0)
    {
        if (slurmBound) return None;
        if (cls == Tasks.Classes.Gpu && !asks.WantsGpu) return defaultShareMb > 0 ? asks with { GpuMemoryMb = defaultShareMb } : asks with { Gpus = 1 };
        return asks;
    }

    /// <summary>Compact text for the store: "millicpus,memory_mb,gpus,gpu_memory_mb"; null for none.</summary>
    public string? ToStored() => IsNone ? null : $"{MilliCpus},{MemoryMb},{Gpus},{GpuMemoryMb}";

    public static ResourceRequest FromStored(string? text)
    {
        if (string.IsNullOrEmpty(text)) return None;
        var p = text.Split(',');
        return new ResourceRequest(int.Parse(p[0]), long.Parse(p[1]), int.Parse(p[2]), long.Parse(p[3]));
    }
}

/// <summary>One GPU the pool can hand out, named by its UUID (what <c>CUDA_VISIBLE_DEVICES</c> gets).</summary>
public sealed record GpuDevice(string Uuid, long MemoryMb);

/// <summary>What an attempt was given: CPUs and memory counted, GPUs by UUID.</summary>
public sealed record Allocation(ResourceRequest Request, IReadOnlyList<string> GpuUuids)
{
    public static readonly Allocation Empty = new(ResourceRequest.None, []);
}

/// <summary>One GPU held by a running task: whole (<paramref name="ShareMb"/> null) or a share of its memory.</summary>
public sealed record GpuHold(string Uuid, Tasks.TaskId Task, long? ShareMb);

/// <summary>
/// The machine's CPUs, memory and GPUs, and what of them is handed out. Pure bookkeeping: no I/O.
/// <para>Invariants (property-tested): allocated CPUs and memory never exceed the totals; a whole GPU
/// is given to one attempt and never shared; the memory shares on a GPU never exceed its memory.</para>
/// </summary>
public sealed class ResourcePool
{
    private sealed class GpuState(GpuDevice device)
    {
        public GpuDevice Device { get; } = device;
        public bool Whole { get; set; }
        public long SharedMb { get; set; }
        public int Shares { get; set; }
        public bool Idle => !Whole && Shares == 0;
        public long FreeMb => Whole ? 0 : Device.MemoryMb - SharedMb;
    }

    private readonly GpuState[] _gpus;
    private readonly Dictionary<string, GpuState> _byUuid;

    public int TotalMilliCpus { get; }
    public long TotalMemoryMb { get; }
    public int UsedMilliCpus { get; private set; }
    public long UsedMemoryMb { get; private set; }
    public IReadOnlyList<GpuDevice> Gpus { get; }

    public ResourcePool(int totalMilliCpus, long totalMemoryMb, IReadOnlyList<GpuDevice> gpus)
    {
        TotalMilliCpus = totalMilliCpus;
        TotalMemoryMb = totalMemoryMb;
        Gpus = gpus;
        _gpus = gpus.Select(g => new GpuState(g)).ToArray();
        _byUuid = _gpus.ToDictionary(g => g.Device.Uuid, StringComparer.Ordinal);
    }

    /// <summary>A pool that counts nothing: every request without GPUs fits (for tests and tools without resources).</summary>
    public static ResourcePool Unlimited() => new(int.MaxValue, long.MaxValue, []);

    public int IdleGpus => _gpus.Count(g => g.Idle);

    /// <summary>Why <paramref name="r"/> could never run here even on an empty machine, or null if it could.</summary>
    public string? WhyNeverFits(ResourceRequest r)
    {
        if (r.MilliCpus > TotalMilliCpus)
            return $"asks for {r.MilliCpus / 1000.0:0.###} CPUs; this machine has {TotalMilliCpus / 1000.0:0.###}";
        if (r.MemoryMb > TotalMemoryMb)
            return $"asks for {r.MemoryMb} MiB of memory; this machine has {TotalMemoryMb} MiB";
        if (r.Gpus > 0 && r.GpuMemoryMb > 0 && r.Gpus != 1)
            return "asks for a share of one GPU's memory together with several whole GPUs (ask for one or the other)";
        if (r.WantsGpu && _gpus.Length == 0)
            return "asks for a GPU; none was found on this machine (see `sparky gpus`, SPARKY_VISIBLE_GPUS)";
        if (r.Gpus > _gpus.Length)
            return $"asks for {r.Gpus} GPUs; this machine has {_gpus.Length}";
        if (r.GpuMemoryMb > 0 && LargestGpuMb() < r.GpuMemoryMb)
            return $"asks for {r.GpuMemoryMb} MiB on one GPU; the largest here has {LargestGpuMb()} MiB";
        return null;
    }

    private long LargestGpuMb() => _gpus.Length == 0 ? 0 : _gpus.Max(g => g.Device.MemoryMb);

    /// <summary>Reserves <paramref name="r"/> if it fits now; null if it does not.</summary>
    public Allocation? TryAllocate(ResourceRequest r)
    {
        if (r.IsNone) return Allocation.Empty;
        if (UsedMilliCpus + (long)r.MilliCpus > TotalMilliCpus || UsedMemoryMb + r.MemoryMb > TotalMemoryMb) return null;
        string[] uuids;
        if (r.GpuMemoryMb > 0)
        {
            // Best fit: the GPU whose free memory is smallest but enough, so large holes stay for large shares
            // and idle GPUs stay whole for tasks that need a GPU to themselves.
            GpuState? best = null;
            foreach (var g in _gpus)
                if (!g.Whole && g.FreeMb >= r.GpuMemoryMb && (best is null || Better(g, best))) best = g;
            if (best is null) return null;
            best.SharedMb += r.GpuMemoryMb;
            best.Shares++;
            uuids = [best.Device.Uuid];
        }
        else if (r.Gpus > 0)
        {
            if (IdleGpus < r.Gpus) return null;
            uuids = new string[r.Gpus];
            int k = 0;
            foreach (var g in _gpus)
            {
                if (!g.Idle) continue;
                g.Whole = true;
                uuids[k++] = g.Device.Uuid;
                if (k == r.Gpus) break;
            }
        }
        else uuids = [];
        UsedMilliCpus += r.MilliCpus;
        UsedMemoryMb += r.MemoryMb;
        return new Allocation(r, uuids);

        bool Better(GpuState a, GpuState b) =>
            a.Shares > 0 != b.Shares > 0 ? a.Shares > 0 : a.FreeMb < b.FreeMb;
    }

    /// <summary>
    /// Takes back what a re-attached attempt already holds (its GPUs read from its environment).
    /// Counted even if it oversubscribes: the process runs whatever the books say, and the books must show it.
    /// </summary>
    public Allocation Claim(ResourceRequest r, IReadOnlyList<string> gpuUuids)
    {
        UsedMilliCpus += r.MilliCpus;
        UsedMemoryMb += r.MemoryMb;
        var held = new List<string>();
        foreach (var uuid in gpuUuids)
        {
            if (!_byUuid.TryGetValue(uuid, out var g)) continue;
            if (r.GpuMemoryMb > 0) { g.SharedMb += r.GpuMemoryMb; g.Shares++; }
            else g.Whole = true;
            held.Add(uuid);
        }
        return new Allocation(r, held);
    }

    public void Release(Allocation a)
    {
        if (ReferenceEquals(a, Allocation.Empty)) return;
        UsedMilliCpus -= a.Request.MilliCpus;
        UsedMemoryMb -= a.Request.MemoryMb;
        foreach (var uuid in a.GpuUuids)
        {
            if (!_byUuid.TryGetValue(uuid, out var g)) continue;
            if (a.Request.GpuMemoryMb > 0) { g.SharedMb -= a.Request.GpuMemoryMb; g.Shares--; }
            else g.Whole = false;
        }
    }

    /// <summary>A snapshot for checks: per GPU, whether it is held whole, and its shares' memory.</summary>
    public IReadOnlyList<(string Uuid, bool Whole, int Shares, long SharedMb, long MemoryMb)> GpuUsage() =>
        _gpus.Select(g => (g.Device.Uuid, g.Whole, g.Shares, g.SharedMb, g.Device.MemoryMb)).ToList();
}
