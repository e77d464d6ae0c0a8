using System.Globalization;
using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;
using Sparky.Core.Config;
using Sparky.Execution.Gpus;
using Tomlyn;
using Tomlyn.Model;

namespace Sparky.Cli;

/// <summary>The I/O half of configuration: reads the environment and sparky.toml, then lets the pure resolver decide.</summary>
internal static class ConfigLoader
{
    // Tomlyn marks its generic entry point as needing reflection, which is for binding POCOs; a TomlTable is its own
    // document model, read by its built-in converter (the native build's integration tests read a sparky.toml).
    [UnconditionalSuppressMessage("Trimming", "IL2026", Justification = "TomlTable is Tomlyn's model type, not bound by reflection")]
    [UnconditionalSuppressMessage("AOT", "IL3050", Justification = "TomlTable is Tomlyn's model type, not bound by reflection")]
    public static (SparkyConfig? Config, IReadOnlyList<string> Errors) Load(IReadOnlyDictionary<string, string> flags)
    {
        var env = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (System.Collections.DictionaryEntry kv in Environment.GetEnvironmentVariables())
            env[(string)kv.Key] = (string?)kv.Value ?? "";
        var dataHome = Environment.GetEnvironmentVariable("XDG_DATA_HOME") is { Length: > 0 } x
            ? x : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".local", "share");
        var context = new SettingContext(Environment.ProcessorCount, Path.Combine(dataHome, "sparky"), DetectMode);

        // sparky.toml lives in the data directory (as chosen by flag or env) or the working directory. ENV_QUEUE_DIR
        // names the queue directory (queue_dir), not the data directory.
        string? dataDir = flags.GetValueOrDefault("data") ?? env.GetValueOrDefault("SPARKY_DATA");
        var candidates = new[] { dataDir is null ? null : Path.Combine(dataDir, "sparky.toml"), Path.Combine(Environment.CurrentDirectory, "sparky.toml") };
        var file = new Dictionary<string, string>(StringComparer.Ordinal);
        string origin = "sparky.toml";
        foreach (var path in candidates)
        {
            if (path is null || !File.Exists(path)) continue;
            origin = path;
            try
            {
                var table = TomlSerializer.Deserialize<TomlTable>(File.ReadAllText(path))!;
                Flatten(table, "", file);
            }
            catch (Exception e)
            {
                return (null, [$"{path}: {e.Message.Split('\n')[0]}"]);
            }
            break;
        }
        return SparkyConfig.Resolve(flags, env, file, origin, context);
    }

    /// <summary>A table names its settings' prefix: <c>[pilot] max_workers = 8</c> (or <c>pilot.max_workers = 8</c>) is
    /// <c>pilot_max_workers</c>.</summary>
    private static void Flatten(TomlTable table, string prefix, Dictionary<string, string> into)
    {
        foreach (var (k, v) in table)
        {
            if (v is TomlTable inner) Flatten(inner, prefix + k + "_", into);
            else into[prefix + k] = Convert.ToString(v, CultureInfo.InvariantCulture) ?? "";
        }
    }

    /// <summary>For <c>mode = auto</c>: does a Slurm controller answer (<c>sinfo</c> exits 0 within 3 s), is there a GPU?</summary>
    private static (string Mode, string Why) DetectMode()
    {
        bool slurm = false;
        try
        {
            using var sinfo = Process.Start(new ProcessStartInfo("sinfo", ["--noheader", "--format=%P"])
                { RedirectStandardOutput = true, RedirectStandardError = true })!;
            slurm = sinfo.WaitForExit(3000) && sinfo.ExitCode == 0;
            if (!sinfo.HasExited) sinfo.Kill();
        }
        catch (System.ComponentModel.Win32Exception) { } // no sinfo on PATH: no Slurm
        int gpus = 0;
        if (!slurm)
        {
            using var found = GpuDiscovery.Discover(new GpuDiscoveryOptions { NvidiaSmiTimeout = TimeSpan.FromSeconds(3) });
            gpus = found.Gpus.Count;
        }
        return Modes.Pick(slurm, gpus);
    }
}
