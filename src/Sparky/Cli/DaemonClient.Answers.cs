using System.Text.Json.Nodes;

namespace Sparky.Cli;

/// <summary>What every client of a daemon shares, with or without an HttpClient: the address (--server, then
/// SPARKY_SERVER, then http://127.0.0.1:9097) and how an answer is read. Compiled into sparky-quick too
/// (src/Sparky.Quick), which has no HttpClient.</summary>
internal sealed partial class DaemonClient
{
    /// <summary>The daemon's address as shown in messages, and the base URI that request paths are relative to.</summary>
    public static (string Server, Uri BaseUri) Address(string? server)
    {
        var chosen = server ?? Environment.GetEnvironmentVariable("SPARKY_SERVER");
        var address = (string.IsNullOrWhiteSpace(chosen) ? "http://127.0.0.1:9097" : chosen).TrimEnd('/');
        if (!address.Contains("://")) address = "http://" + address;
        if (!Uri.TryCreate(address + "/", UriKind.Absolute, out var baseUri) || baseUri.Scheme is not ("http" or "https"))
            throw new CliException($"the server address '{chosen}' is not an http:// URL (from {(server is null ? "SPARKY_SERVER" : "--server")})", 2);
        return (address, baseUri);
    }

    public static JsonNode Answer(string server, string text)
    {
        try
        {
            return JsonNode.Parse(text) ?? throw new System.Text.Json.JsonException();
        }
        catch (System.Text.Json.JsonException)
        {
            throw NotSparky(server);
        }
    }

    public static CliException NotSparky(string server) => new($"{server} answered, but not as a Sparky daemon does (is --server right?)");

    /// <summary>One line for an error answer: the problem's detail, or just the status line when it isn't one of ours.</summary>
    public static CliException Failure(string server, int status, string? reason, string? mediaType, string body)
    {
        string? detail = null;
        var errors = new List<string>();
        if (mediaType is "application/problem+json" or "application/json")
        {
            try
            {
                var problem = JsonNode.Parse(body);
                detail = problem?["detail"]?.ToString();
                if (problem?["errors"] is JsonArray list)
                    foreach (var e in list)
                        if (e is JsonValue v && v.TryGetValue<string>(out var s)) errors.Add(s);
            }
            catch (Exception e) when (e is System.Text.Json.JsonException or InvalidOperationException) { }
        }
        var line = detail?.ReplaceLineEndings(" ");
        return new CliException(line is null
            ? $"{server} answered {status} {reason}"
            : $"{status} {reason}: {line}")
        {
            Status = status,
            Detail = detail,
            Errors = errors,
        };
    }
}
