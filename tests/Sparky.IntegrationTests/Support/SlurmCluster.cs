using System.Diagnostics;

namespace Sparky.IntegrationTests.Support;

/// <summary>
/// The collection that shares one <see cref="SlurmCluster"/>: put <c>[Collection(SlurmCollection.Name)]</c> on a
/// test class and take <see cref="SlurmCluster"/> in its constructor. Started once, before the first such class. It runs
/// alone, after the parallel classes: the cluster sets SLURM_CONF in this process's environment, which every daemon
/// started meanwhile would inherit. Each such class also takes <c>[Trait("Needs", "slurm")]</c> (checked by
/// <c>SuiteLayoutTests</c>): test.sh runs them in a test process of their own, beside the others, since they mostly
/// wait for Slurm's scheduler.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class SlurmCollection : ICollectionFixture<SlurmCluster>
{
    public const string Name = "Slurm cluster";
}

/// <summary>
/// A real single-node Slurm (Debian's slurm-wlm and munge) on loopback, started by <c>tests/slurm/cluster.sh</c>
/// in a temp dir: slurmctld, slurmd and munged as root, 2 CPUs' worth of cores, 2 fake GPUs, accounting off.
/// Starting it sets <c>SLURM_CONF</c> in this process's environment, so every child (sbatch, squeue, a Sparky
/// daemon and the sbatch it runs) talks to this cluster. Stopped, and the dir removed, on dispose.
/// </summary>
public class SlurmCluster : IAsyncLifetime
{
    private readonly int _nodes;

    public SlurmCluster() : this(1) { }

    /// <param name="nodes">1, or 2: two slurmd on loopback, sparky-n1 and sparky-n2 (<c>cluster.sh start DIR 2</c>).</param>
    protected SlurmCluster(int nodes) => _nodes = nodes;

    private static readonly string[] Binaries = ["slurmctld", "slurmd", "munged", "mungekey", "sbatch", "squeue", "scontrol", "sinfo"];

    private readonly string? _previousConf = Environment.GetEnvironmentVariable("SLURM_CONF");
    private int _stopped;

    /// <summary>The cluster's dir: config, state, logs (log/), and the working dir of <see cref="RunAsync"/> (job output lands here).</summary>
    public string Dir { get; } = Path.Combine(Path.GetTempPath(), "sparky-slurm-" + Guid.NewGuid().ToString("N")[..10]);

    /// <summary>The slurm.conf path (also in <c>SLURM_CONF</c> once started).</summary>
    public string Conf { get; private set; } = "";

    public static string Script => Path.Combine(RepoRoot(), "tests", "slurm", "cluster.sh");

    /// <summary>The repository root: the first dir above the test assembly holding Sparky.slnx.</summary>
    public static string RepoRoot()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "Sparky.slnx"))) return d.FullName;
        throw new InvalidOperationException($"no Sparky.slnx above {AppContext.BaseDirectory}");
    }

    /// <summary>The Slurm and munge programs not on PATH (empty when all are there).</summary>
    public static IReadOnlyList<string> MissingBinaries()
    {
        var path = (Environment.GetEnvironmentVariable("PATH") ?? "") + ":/usr/sbin:/usr/bin:/sbin:/bin";
        var dirs = path.Split(':', StringSplitOptions.RemoveEmptyEntries);
        return Binaries.Where(b => !dirs.Any(d => File.Exists(Path.Combine(d, b)))).ToList();
    }

    public async Task InitializeAsync()
    {
        var missing = MissingBinaries();
        if (missing.Count > 0)
        {
            var what = $"Slurm tests need slurm-wlm and munge, but {string.Join(", ", missing)} not found";
            throw new InvalidOperationException(Environment.GetEnvironmentVariable("CI") == "true"
                ? what + ": CI must install them (test.sh does, as root)."
                : what + ": run ./test.sh as root (it installs them), or apt-get install slurm-wlm munge.");
        }
        if (!IsRoot())
            throw new InvalidOperationException("Slurm tests run slurmctld/slurmd as root: run ./test.sh (or dotnet test) as root.");

        Directory.CreateDirectory(Dir);
        // AppDomain exit still stops the daemons if the test host ends without disposing fixtures.
        AppDomain.CurrentDomain.ProcessExit += OnProcessExit;
        var sw = Stopwatch.StartNew();
        var (code, stdout, stderr) = await RunAsync("bash", [Script, "start", Dir, _nodes.ToString(System.Globalization.CultureInfo.InvariantCulture)], 90);
        if (code != 0)
        {
            await DisposeAsync();
            throw new InvalidOperationException($"cluster.sh start failed ({code}):\n{stderr}");
        }
        var line = stdout.Split('\n').Select(l => l.Trim()).FirstOrDefault(l => l.StartsWith("export SLURM_CONF=", StringComparison.Ordinal))
            ?? throw new InvalidOperationException($"cluster.sh start printed no SLURM_CONF:\n{stdout}\n{stderr}");
        Conf = line["export SLURM_CONF=".Length..];
        Environment.SetEnvironmentVariable("SLURM_CONF", Conf);
        StartSeconds = sw.Elapsed.TotalSeconds;
    }

    /// <summary>How long <c>cluster.sh start</c> took, for test output.</summary>
    public double StartSeconds { get; private set; }

    /// <summary>Stops slurmctld only (slurmd, munged and running jobs go on); its state stays on disk.</summary>
    public async Task StopControllerAsync()
    {
        var (code, _, stderr) = await ScriptAsync("stop-ctld", 60);
        if (code != 0) throw new InvalidOperationException($"cluster.sh stop-ctld failed ({code}):\n{stderr}");
    }

    /// <summary>Starts slurmctld again from its saved state (the jobs it knew, running ones included); returns once it answers.</summary>
    public async Task StartControllerAsync()
    {
        var (code, _, stderr) = await ScriptAsync("start-ctld", 60);
        if (code != 0) throw new InvalidOperationException($"cluster.sh start-ctld failed ({code}):\n{stderr}");
    }

    /// <summary>Runs a program (sbatch, squeue, scontrol, ...) in <see cref="Dir"/> with this process's environment (SLURM_CONF included).</summary>
    public Task<(int ExitCode, string Stdout, string Stderr)> RunAsync(string exe, params string[] args) => RunAsync(exe, args, 60);

    public async Task<(int ExitCode, string Stdout, string Stderr)> RunAsync(string exe, IEnumerable<string> args, double timeoutSeconds)
    {
        var psi = new ProcessStartInfo(exe)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            WorkingDirectory = Directory.Exists(Dir) ? Dir : Environment.CurrentDirectory,
        };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        p.StandardInput.Close();
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(timeoutSeconds));
        try { await p.WaitForExitAsync(cts.Token); }
        catch (OperationCanceledException)
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"{exe} {string.Join(' ', args)} did not finish in {timeoutSeconds}s");
        }
        return (p.ExitCode, await stdout, await stderr);
    }

    /// <summary><c>scontrol show job --oneliner ID</c> as key=value pairs (null when the controller does not know it).
    /// Values holding spaces (a Command or WorkDir with spaces) are cut at the first space.</summary>
    public async Task<Dictionary<string, string>?> ShowJobAsync(string jobId)
    {
        var (code, stdout, _) = await RunAsync("scontrol", "show", "job", "--oneliner", jobId);
        if (code != 0) return null;
        var fields = new Dictionary<string, string>();
        foreach (var token in stdout.Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            int eq = token.IndexOf('=');
            if (eq > 0) fields.TryAdd(token[..eq], token[(eq + 1)..]);
        }
        return fields;
    }

    /// <summary>Polls <see cref="ShowJobAsync"/> until JobState is one of <paramref name="states"/>; the last fields seen.</summary>
    public async Task<Dictionary<string, string>> WaitForJobAsync(string jobId, double timeoutSeconds, params string[] states)
    {
        var deadline = DateTime.UtcNow.AddSeconds(timeoutSeconds);
        Dictionary<string, string>? job = null;
        while (true)
        {
            job = await ShowJobAsync(jobId) ?? job;
            if (job is not null && states.Contains(job.GetValueOrDefault("JobState"))) return job;
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException($"job {jobId} not {string.Join("/", states)} in {timeoutSeconds}s; last: " +
                    (job is null ? "unknown" : string.Join(' ', job.Select(kv => $"{kv.Key}={kv.Value}"))) + "\n" + Logs());
            await Task.Delay(250);
        }
    }

    /// <summary>The tails of the daemons' logs, for failure messages.</summary>
    public string Logs()
    {
        var sb = new System.Text.StringBuilder();
        foreach (var name in new[] { "slurmctld.log", "slurmd.log", "slurmd-sparky-n1.log", "slurmd-sparky-n2.log", "munged.log" })
        {
            var f = Path.Combine(Dir, "log", name);
            try { sb.AppendLine($"---- {name}").AppendLine(string.Join('\n', File.ReadLines(f).TakeLast(20))); }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
        }
        return sb.ToString();
    }

    private async Task<(int ExitCode, string Stdout, string Stderr)> ScriptAsync(string command, double timeoutSeconds) =>
        await RunAsync("bash", [Script, command, Dir], timeoutSeconds);

    private void OnProcessExit(object? sender, EventArgs e) => StopSync();

    private void StopSync()
    {
        if (Interlocked.Exchange(ref _stopped, 1) != 0) return;
        try
        {
            using var p = Process.Start(new ProcessStartInfo("bash") { ArgumentList = { Script, "stop", Dir }, UseShellExecute = false })!;
            if (!p.WaitForExit(60_000)) p.Kill(entireProcessTree: true);
        }
        catch (Exception) { } // best effort: the daemons may never have started
        try { Directory.Delete(Dir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    public Task DisposeAsync()
    {
        AppDomain.CurrentDomain.ProcessExit -= OnProcessExit;
        StopSync();
        Environment.SetEnvironmentVariable("SLURM_CONF", _previousConf);
        return Task.CompletedTask;
    }

    private static bool IsRoot()
    {
        try { return File.ReadLines("/proc/self/status").Any(l => l.StartsWith("Uid:", StringComparison.Ordinal) && l.Split('\t', StringSplitOptions.RemoveEmptyEntries).ElementAtOrDefault(1) == "0"); }
        catch (IOException) { return false; }
    }
}

/// <summary>
/// A real two-node Slurm on loopback: nodes sparky-n1 and sparky-n2, each its own slurmd (<c>slurmd -N</c>, its own
/// Port), one slurmctld and munged. A class fixture of a class in <see cref="SlurmCollection"/>: while that class runs
/// (alone, as the collection does), <c>SLURM_CONF</c> names this cluster; on dispose it names the shared one again.
/// </summary>
public sealed class TwoNodeSlurmCluster() : SlurmCluster(2);
