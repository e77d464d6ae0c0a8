using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using Sparky.IntegrationTests.Support;
using Xunit.Abstractions;

namespace Sparky.IntegrationTests.Load;

/// <summary>
/// Many clients at once against one in-process daemon: every acknowledged submission is stored exactly once,
/// none is answered with a 5xx, and every task runs to succeeded.
/// </summary>
[Collection(SerialCollection.Name)]
public sealed class ConcurrentSubmitTests(ITestOutputHelper output)
{
    private const int Clients = 200;
    private const int PerClient = 100;
    private const int Total = Clients * PerClient;

    [Fact]
    public async Task Twenty_thousand_tasks_from_200_concurrent_clients_are_all_stored_once_and_all_run()
    {
        await using var d = await TestDaemon.StartAsync();
        var body = Encoding.UTF8.GetBytes("""{"payload":{"command":["true"]}}""");
        var acknowledged = new ConcurrentQueue<string>();
        var failures = new ConcurrentQueue<string>();
        int serverErrors = 0;

        // 200 separate clients, each with its own connection, as 200 separate producers would be.
        var clients = Enumerable.Range(0, Clients).Select(_ => new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = 1 })
        {
            BaseAddress = new Uri(d.Daemon.Url + "/"),
            Timeout = TimeSpan.FromSeconds(120),
        }).ToArray();
        try
        {
            var go = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var workers = clients.Select((client, c) => Task.Run(async () =>
            {
                await go.Task;
                for (int k = 0; k < PerClient; k++)
                {
                    try
                    {
                        using var content = new ByteArrayContent(body);
                        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
                        using var resp = await client.PostAsync("api/v1/tasks", content);
                        var text = await resp.Content.ReadAsStringAsync();
                        if ((int)resp.StatusCode >= 500) Interlocked.Increment(ref serverErrors);
                        if (resp.StatusCode != HttpStatusCode.Created)
                        {
                            failures.Enqueue($"client {c} request {k}: {(int)resp.StatusCode} {text}");
                            continue;
                        }
                        foreach (var id in (JsonArray)JsonNode.Parse(text)!["ids"]!) acknowledged.Enqueue((string)id!);
                    }
                    catch (Exception e) when (e is HttpRequestException or TaskCanceledException or System.Text.Json.JsonException)
                    {
                        failures.Enqueue($"client {c} request {k}: {e.GetType().Name}: {e.Message}");
                    }
                }
            })).ToArray();

            var total = Stopwatch.StartNew();
            go.SetResult();
            await Task.WhenAll(workers);
            var submitTime = total.Elapsed;
            output.WriteLine($"submitted {acknowledged.Count} tasks from {Clients} clients in {submitTime.TotalSeconds:0.00} s: {acknowledged.Count / submitTime.TotalSeconds:0} tasks/s");

            foreach (var f in failures.Take(10)) output.WriteLine("FAILED: " + f);
            Assert.Equal(0, serverErrors);
            Assert.True(failures.IsEmpty, $"{failures.Count} submissions failed; the first: {failures.FirstOrDefault()}");
            var ids = acknowledged.ToHashSet(StringComparer.Ordinal);
            Assert.Equal(Total, acknowledged.Count);
            Assert.Equal(Total, ids.Count);   // no id acknowledged twice

            // Every acknowledged id is stored, and nothing else is.
            var stored = await StoredIdsAsync(d.Http);
            Assert.Equal(Total, stored.Count);
            Assert.True(ids.SetEquals(stored), $"acknowledged but not stored: {ids.Except(stored).Count()}; stored but never acknowledged: {stored.Except(ids).Count()}");

            // And every one of them runs.
            var deadline = DateTime.UtcNow.AddMinutes(3);
            var lastReport = DateTime.UtcNow;
            JsonNode status;
            while (true)
            {
                status = JsonNode.Parse(await d.Http.GetStringAsync("queue/status"))!;
                if ((long)status["processed"]! >= Total) break;
                if (DateTime.UtcNow > deadline)
                    Assert.Fail($"after {total.Elapsed.TotalSeconds:0} s only {status["processed"]} of {Total} tasks are processed: {status.ToJsonString()}");
                if (DateTime.UtcNow - lastReport > TimeSpan.FromSeconds(15))
                {
                    output.WriteLine($"  {total.Elapsed.TotalSeconds:0} s: {status.ToJsonString()}");
                    lastReport = DateTime.UtcNow;
                }
                await Task.Delay(200);
            }
            total.Stop();
            output.WriteLine($"all {Total} processed {total.Elapsed.TotalSeconds:0.0} s after the first submission " +
                             $"(running them: {(total.Elapsed - submitTime).TotalSeconds:0.0} s after the last); status {status.ToJsonString()}");
            Assert.Equal(Total, (long)status["processed"]!);
            Assert.Equal(0, (long)status["failed"]!);
            Assert.Equal(Total, (long)status["done"]!);
            Assert.Equal(Total, (long)status["submitted"]!);
            Assert.Equal(0, (long)status["pending"]! + (long)status["running"]!);
        }
        finally
        {
            foreach (var c in clients) c.Dispose();
        }
    }

    /// <summary>Every id the store holds, by cursor paging through GET /api/v1/tasks; an id seen twice fails.</summary>
    private static async Task<HashSet<string>> StoredIdsAsync(HttpClient http)
    {
        var ids = new HashSet<string>(StringComparer.Ordinal);
        long? cursor = null;
        while (true)
        {
            var page = JsonNode.Parse(await http.GetStringAsync($"api/v1/tasks?limit=10000{(cursor is { } c ? "&cursor=" + c : "")}"))!;
            foreach (var t in (JsonArray)page["tasks"]!)
                Assert.True(ids.Add((string)t!["id"]!), $"the listing gives {t["id"]} twice");
            if (page["next_cursor"] is not { } next) return ids;
            cursor = (long)next;
        }
    }
}
