using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Sparky.Core.Config;

namespace Sparky.Cli.Submit;

/// <summary>
/// <c>sparky submit</c> as shell loops call it, at a fraction of its start-up cost (bench/cli, bench/README.md): the
/// arguments read without the command tree, one blocking HTTP/1.1 request to a loopback daemon instead of HttpClient,
/// the ids written to stdout without setting up the console. The same request body, the same answer read the same way,
/// the same output and errors. Whatever it does not handle returns null before anything is sent, and the tree runs the
/// verb: --wait, a daemon off loopback or over https, a proxy in the environment, an argument it does not read exactly
/// as the tree does, a bad value, a daemon it cannot connect to (the tree's HttpClient then says why, as always).
/// </summary>
internal static class QuickSubmit
{
    private static readonly string[] ProxyVariables = ["http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"];

    /// <summary>Set by sparky-quick (src/Sparky.Quick) on a line it hands back to sparky: the quick path declined it.</summary>
    public const string DeclinedVariable = "SPARKY_QUICK_DECLINED";

    /// <summary>Whether this line was handed back by sparky-quick; the mark is removed, so nothing this process starts
    /// inherits it.</summary>
    public static bool HandedBack()
    {
        if (Environment.GetEnvironmentVariable(DeclinedVariable) is null) return false;
        Environment.SetEnvironmentVariable(DeclinedVariable, null);
        return true;
    }

    /// <summary>The exit code, or null when the full verb must run; a daemon's refusal is a <see cref="CliException"/>.</summary>
    public static int? TryRun(string[] args)
    {
        if (!OperatingSystem.IsLinux() || QuickSubmitArgs.TryParse(args) is not { Wait: false } request) return null;
        if (ProxyVariables.Any(v => !string.IsNullOrEmpty(Environment.GetEnvironmentVariable(v)))) return null;
        string server;
        Uri baseUri;
        byte[] body;
        try
        {
            (server, baseUri) = DaemonClient.Address(request.Server);
            body = request.Body();
        }
        catch (CliException)
        {
            return null; // the tree says it, in its order
        }
        if (baseUri.Scheme != "http" || !Loopback.IsHost(baseUri.Host)) return null;
        var token = Environment.GetEnvironmentVariable("SPARKY_TOKEN") is { Length: > 0 } t ? t : null;
        if (token is not null && token.Any(c => c is < '!' or > '~')) return null; // HttpClient's header rules decide

        HttpAnswer answer;
        try
        {
            answer = QuickHttp.Send(new Uri(baseUri, "api/v1/tasks"), QuickHttp.Request("POST", new Uri(baseUri, "api/v1/tasks"), token, body), TimeSpan.FromSeconds(60));
        }
        catch (QuickHttp.NotConnected)
        {
            return null; // nothing sent: the tree's HttpClient tries again and words the failure
        }
        catch (SocketException e) when (e.SocketErrorCode is SocketError.TimedOut or SocketError.WouldBlock)
        {
            throw new OperationCanceledException(); // SO_RCVTIMEO ran out: as the tree's 60-second limit ends
        }
        catch (Exception e) when (e is SocketException or IOException)
        {
            throw new CliException($"cannot reach the daemon at {server} ({e.Message}); start it with `sparky serve`");
        }
        if (!answer.IsSuccess) throw DaemonClient.Failure(server, answer.Status, answer.Reason, answer.MediaType, answer.Body);
        // --json prints the answer as the tree does (JsonNode); the ids alone need no more than a JsonDocument, which
        // spares the start-up of System.Text.Json's converters.
        if (request.Json)
        {
            var reply = DaemonClient.Answer(server, answer.Body);
            WriteStdout(SubmitRequest.Render(reply, SubmitRequest.Ids(reply) ?? throw DaemonClient.NotSparky(server), json: true));
            return 0;
        }
        var ids = new List<string>();
        try
        {
            using var doc = JsonDocument.Parse(answer.Body);
            if (doc.RootElement.ValueKind != JsonValueKind.Object || !doc.RootElement.TryGetProperty("ids", out var list) || list.ValueKind != JsonValueKind.Array)
                throw DaemonClient.NotSparky(server);
            foreach (var id in list.EnumerateArray()) ids.Add(id.GetString()!);
        }
        catch (JsonException)
        {
            throw DaemonClient.NotSparky(server);
        }
        WriteStdout(SubmitRequest.Render(null, ids, json: false));
        return 0;
    }

    /// <summary>Straight to file descriptor 1 with write(2): System.Console would first set up the terminal (its
    /// signal handlers and their thread). As with Console, a closed pipe is not an error. Where libc cannot be
    /// loaded (a JIT build on another C library), through Console's stdout stream.</summary>
    private static void WriteStdout(string text)
    {
        var bytes = Encoding.UTF8.GetBytes(text);
        try
        {
            Libc.WriteAll(1, bytes);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            using var stdout = Console.OpenStandardOutput();
            stdout.Write(bytes);
        }
    }
}
