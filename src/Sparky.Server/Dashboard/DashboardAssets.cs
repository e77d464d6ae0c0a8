using System.Collections.Frozen;
using System.Security.Cryptography;

namespace Sparky.Server.Dashboard;

/// <summary>One file of the dashboard, as it is served: its bytes, its media type and a strong ETag of its content.</summary>
internal sealed record DashboardAsset(byte[] Bytes, string ContentType, string ETag);

/// <summary>
/// The dashboard's files, embedded in this assembly by Sparky.Server.csproj under <c>dashboard/</c> (the page from
/// <c>Dashboard/web/app</c>, the chart library from <c>Dashboard/web/node_modules</c>): nothing is read from disk or
/// fetched at run time, and the native build carries them as it carries the code. Read once, at first use.
/// </summary>
internal static class DashboardAssets
{
    private const string Prefix = "dashboard/";

    private static readonly Lazy<FrozenDictionary<string, DashboardAsset>> All = new(Load);

    /// <summary>The file at <paramref name="path"/> (<c>index.html</c>, <c>js/main.js</c>, <c>vendor/uPlot.esm.js</c>);
    /// null where there is none.</summary>
    public static DashboardAsset? Get(string path) => All.Value.GetValueOrDefault(path);

    public static IEnumerable<string> Paths => All.Value.Keys;

    private static FrozenDictionary<string, DashboardAsset> Load()
    {
        var assembly = typeof(DashboardAssets).Assembly;
        var files = new Dictionary<string, DashboardAsset>(StringComparer.Ordinal);
        foreach (var name in assembly.GetManifestResourceNames())
        {
            // MSBuild writes %(RecursiveDir) with the build machine's separator.
            var path = name.Replace('\\', '/');
            if (!path.StartsWith(Prefix, StringComparison.Ordinal)) continue;
            using var stream = assembly.GetManifestResourceStream(name)!;
            using var copy = new MemoryStream();
            stream.CopyTo(copy);
            var bytes = copy.ToArray();
            var etag = "\"" + Convert.ToBase64String(SHA256.HashData(bytes), 0, 18).Replace('+', '-').Replace('/', '_') + "\"";
            files[path[Prefix.Length..]] = new DashboardAsset(bytes, ContentTypeOf(path), etag);
        }
        return files.ToFrozenDictionary(StringComparer.Ordinal);
    }

    /// <summary>The media types of the kinds of file the dashboard has; anything else is served as bytes.</summary>
    internal static string ContentTypeOf(string path) => Path.GetExtension(path) switch
    {
        ".html" => "text/html; charset=utf-8",
        ".css" => "text/css; charset=utf-8",
        ".js" => "text/javascript; charset=utf-8",
        ".svg" => "image/svg+xml",
        ".png" => "image/png",
        ".json" => "application/json",
        ".txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    };
}
