using System.ClientModel;
using System.Diagnostics;
using System.Text.Json.Nodes;
using OpenAI;
using OpenAI.Embeddings;
using Sparky.Embeddings.Model;

namespace Sparky.Embeddings.Tests;

/// <summary>The official OpenAI clients, pointed at Sparky's base URL, get the model's vectors back.</summary>
public class OpenAiClientTests(EmbedServerFixture f) : IClassFixture<EmbedServerFixture>
{
    private static readonly string[] Texts = ["hello world", "The GPU cluster scheduled the embeddings of 2,000 sentences", "tea & biscuits"];

    [Fact]
    public async Task The_OpenAI_NuGet_client_gets_the_vectors()
    {
        var client = new EmbeddingClient(MiniLm.Id, new ApiKeyCredential("unused"), new OpenAIClientOptions { Endpoint = new Uri(f.Server.Url + "/v1") });
        var expected = ModelTests.Embed(Texts);
        OpenAIEmbeddingCollection got = await client.GenerateEmbeddingsAsync(Texts);
        Assert.Equal(3, got.Count);
        for (int i = 0; i < 3; i++)
        {
            Assert.Equal(i, got[i].Index);
            Assert.True(Vectors.Cosine(got[i].ToFloats().Span, expected[i]) > 0.99999);
        }
        Assert.Equal(MiniLm.Id, got.Model);
        Assert.True(got.Usage.InputTokenCount > 3);
        // dimensions equal to the model's own is allowed; fewer is refused with OpenAI's error, which the client surfaces.
        OpenAIEmbedding one = await client.GenerateEmbeddingAsync("hello world", new EmbeddingGenerationOptions { Dimensions = 384 });
        Assert.Equal(384, one.ToFloats().Length);
        var e = await Assert.ThrowsAsync<ClientResultException>(() => client.GenerateEmbeddingAsync("x", new EmbeddingGenerationOptions { Dimensions = 64 }));
        Assert.Equal(400, e.Status);
        Assert.Contains("shorter vectors", e.Message);
    }

    [Fact]
    public async Task The_openai_npm_client_gets_the_vectors()
    {
        var root = RepoRoot();
        var tools = Run("bash", [Path.Combine(root, "scripts", "tools.sh")], root).Trim().Split('\n')[^1];
        Assert.True(Directory.Exists(Path.Combine(tools, "openai")), $"scripts/tools.sh did not install openai into {tools}");
        var script = Path.Combine(AppContext.BaseDirectory, "clients", "openai-node.mjs");
        var output = await Task.Run(() => Run("node", [script, tools, f.Server.Url + "/v1", .. Texts], root));
        var result = JsonNode.Parse(output)!;
        var expected = ModelTests.Embed(Texts);
        Assert.Equal(MiniLm.Id, (string?)result["model"]);
        var vectors = result["vectors"]!.AsArray();
        Assert.Equal(3, vectors.Count);
        for (int i = 0; i < 3; i++)
            Assert.True(Vectors.Cosine(vectors[i]!["embedding"]!.AsArray().Select(x => (float)x!).ToArray(), expected[i]) > 0.99999, $"vector {i}");
        Assert.True(Vectors.Cosine(result["float"]!.AsArray().Select(x => (float)x!).ToArray(), expected[0]) > 0.99999);
        Assert.Equal(404, (int)result["refused"]!["status"]!);
        Assert.Contains("does not exist", (string)result["refused"]!["message"]!);
    }

    private static string RepoRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Sparky.slnx"))) dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("Sparky.slnx not found above " + AppContext.BaseDirectory);
    }

    /// <summary>Runs a program to its end; its stdout, or a failure with its stderr. A missing program fails the test with
    /// how to install it (never a silent skip).</summary>
    private static string Run(string program, string[] args, string cwd)
    {
        var start = new ProcessStartInfo(program, args) { WorkingDirectory = cwd, RedirectStandardOutput = true, RedirectStandardError = true };
        Process p;
        try { p = Process.Start(start)!; }
        catch (System.ComponentModel.Win32Exception) { throw new InvalidOperationException($"{program} is not on PATH (Debian: apt-get install nodejs npm)"); }
        using (p)
        {
            var stdout = p.StandardOutput.ReadToEndAsync();
            var stderr = p.StandardError.ReadToEndAsync();
            Assert.True(p.WaitForExit(TimeSpan.FromMinutes(3)), $"{program} did not finish");
            Assert.True(p.ExitCode == 0, $"{program} {string.Join(' ', args)} exited {p.ExitCode}: {stderr.Result}");
            return stdout.Result;
        }
    }
}
