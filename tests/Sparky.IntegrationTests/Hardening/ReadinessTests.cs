using System.Buffers.Binary;
using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Data.Sqlite;
using Sparky.IntegrationTests.BadInput;
using Sparky.IntegrationTests.Support;
using Xunit.Abstractions;
using static Sparky.IntegrationTests.BadInput.BadInputSupport;

namespace Sparky.IntegrationTests.Hardening;

/// <summary>
/// Issue 13, point 10: <c>/readyz</c> says not ready, with the reason, while the store cannot write (a full disk)
/// or cannot be trusted (a failed integrity check, a corrupt page met by a read); and a store that answers 500 to
/// reads does not go on acknowledging submissions (503 instead). One test per fault, on a real data dir.
/// </summary>
public sealed class ReadinessTests(ITestOutputHelper output)
{
    [Fact]
    public async Task A_full_disk_makes_readyz_not_ready_until_a_write_succeeds_again()
    {
        var root = TestDaemon.NewRoot();
        var data = Path.Combine(root, "data");
        if (!Tmpfs.TryMount(data, "3m", output)) return;
        try
        {
            var d = await TestDaemon.StartAsync(root: root);
            await using (d)
            {
                Assert.Equal(200, (await SendAsync(d.Http, HttpMethod.Get, "readyz")).Status);
                var filler = Path.Combine(data, "filler");
                long free = new DriveInfo(data).AvailableFreeSpace;
                await File.WriteAllBytesAsync(filler, new byte[Math.Max(0, free - 64 * 1024)]);
                var pad = new string('x', 8 * 1024);
                int status = 0;
                for (int i = 0; i < 500 && status != 503; i++)
                {
                    var body = new JsonObject { ["payload"] = new JsonObject { ["command"] = "true", ["env"] = new JsonObject { ["PAD"] = pad } } };
                    status = (await SendAsync(d.Http, HttpMethod.Post, "api/v1/tasks", Json(body.ToJsonString()))).Status;
                }
                Assert.Equal(503, status);
                var ready = await SendAsync(d.Http, HttpMethod.Get, "readyz");
                output.WriteLine($"disk full: readyz {ready}");
                Assert.Equal(503, ready.Status);
                Assert.Contains("write", ready.Detail);
                using (var health = await d.Http.GetAsync("healthz")) Assert.Equal(HttpStatusCode.OK, health.StatusCode);

                // Space comes back: an idle daemon finds out by itself (a probe write) and is ready again; a submit works.
                File.Delete(filler);
                Assert.True(await EventuallyAsync(async () => (await SendAsync(d.Http, HttpMethod.Get, "readyz")).Status == 200, 10), "readyz did not come back while idle");
                var id = await d.SubmitShellAsync("true");
                Assert.Equal("succeeded", (string?)(await d.WaitAsync(id))["state"]);
                Assert.True(await EventuallyAsync(async () => (await SendAsync(d.Http, HttpMethod.Get, "readyz")).Status == 200, 10), "readyz did not come back");
            }
        }
        finally
        {
            SqliteConnection.ClearAllPools();
            Tmpfs.Unmount(data);
            try { Directory.Delete(root, true); } catch (IOException) { }
        }
    }

    [Fact]
    public async Task A_store_that_fails_its_integrity_check_at_start_is_not_ready_and_refuses_submissions()
    {
        var root = TestDaemon.NewRoot();
        try
        {
            var ids = await FillAsync(root);
            var pages = CorruptTaskPages(Path.Combine(root, "data", "sparky.db"));
            output.WriteLine($"corrupted {pages} leaf pages of the tasks table");

            await using var d = await TestDaemon.StartAsync(root: root);
            HttpAnswer ready = null!;
            Assert.True(await EventuallyAsync(async () => (ready = await SendAsync(d.Http, HttpMethod.Get, "readyz")).Status == 503, 15),
                $"readyz still {ready}");
            output.WriteLine($"readyz: {ready}");
            Assert.Contains("integrity", ready.Detail);
            var submit = await SendAsync(d.Http, HttpMethod.Post, "api/v1/tasks", Json("""{"payload":{"command":["true"]}}"""));
            output.WriteLine($"submit: {submit}");
            Assert.Equal(503, submit.Status);
            using (var health = await d.Http.GetAsync("healthz")) Assert.Equal(HttpStatusCode.OK, health.StatusCode);
        }
        finally
        {
            SqliteConnection.ClearAllPools();
            try { Directory.Delete(root, true); } catch (IOException) { }
        }
    }

    [Fact]
    public async Task A_store_whose_reads_fail_stops_acknowledging_submissions()
    {
        var root = TestDaemon.NewRoot();
        try
        {
            var ids = await FillAsync(root);
            await using var d = await TestDaemon.StartAsync(root: root);
            Assert.True(await EventuallyAsync(async () => (await SendAsync(d.Http, HttpMethod.Get, "readyz")).Status == 200, 10));
            await Task.Delay(500); // the integrity check at start has passed by now; the corruption comes after it

            // Everything in the main file (the WAL emptied), then a page of it goes bad under the running daemon.
            var db = Path.Combine(root, "data", "sparky.db");
            using (var conn = new SqliteConnection($"Data Source={db};Pooling=False"))
            {
                conn.Open();
                using var cmd = conn.CreateCommand();
                cmd.CommandText = "PRAGMA wal_checkpoint(TRUNCATE)";
                cmd.ExecuteNonQuery();
            }
            CorruptTaskPages(db);

            var read = await SendAsync(d.Http, HttpMethod.Get, $"api/v1/tasks/{ids[0]}");
            output.WriteLine($"read: {read}");
            Assert.Equal(500, read.Status);
            var submit = await SendAsync(d.Http, HttpMethod.Post, "api/v1/tasks", Json("""{"payload":{"command":["true"]}}"""));
            output.WriteLine($"submit: {submit}");
            Assert.Equal(503, submit.Status);
            Assert.Contains("corrupt", submit.Detail);
            var ready = await SendAsync(d.Http, HttpMethod.Get, "readyz");
            Assert.Equal(503, ready.Status);
        }
        finally
        {
            SqliteConnection.ClearAllPools();
            try { Directory.Delete(root, true); } catch (IOException) { }
        }
    }

    /// <summary>A data dir with 300 finished tasks (enough rows for the tasks table to span many pages).</summary>
    private static async Task<List<string>> FillAsync(string root)
    {
        await using var d = await TestDaemon.StartAsync(root: root);
        var batch = new JsonArray();
        var pad = new string('p', 600);
        for (int i = 0; i < 300; i++)
            batch.Add(new JsonObject { ["payload"] = new JsonObject { ["command"] = new JsonArray("true"), ["env"] = new JsonObject { ["PAD"] = pad } } });
        var ids = await d.SubmitAsync(batch);
        foreach (var id in ids) await d.WaitAsync(id, 120);
        return ids;
    }

    /// <summary>
    /// Overwrites the page-type byte of every leaf page of the tasks table but the last (the daemon's start reads the
    /// last row for the next id; the others only when a task is read). Walks the b-tree from its root page.
    /// </summary>
    private static int CorruptTaskPages(string db)
    {
        int rootPage, pageSize;
        using (var conn = new SqliteConnection($"Data Source={db};Mode=ReadOnly;Pooling=False"))
        {
            conn.Open();
            using var cmd = conn.CreateCommand();
            cmd.CommandText = "SELECT rootpage FROM sqlite_master WHERE type = 'table' AND name = 'tasks'";
            rootPage = Convert.ToInt32(cmd.ExecuteScalar());
            cmd.CommandText = "PRAGMA page_size";
            pageSize = Convert.ToInt32(cmd.ExecuteScalar());
        }
        using var f = new FileStream(db, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite);
        var leaves = new List<int>();
        void Walk(int page)
        {
            var buf = new byte[pageSize];
            f.Seek((long)(page - 1) * pageSize, SeekOrigin.Begin);
            f.ReadExactly(buf);
            int header = page == 1 ? 100 : 0;
            byte type = buf[header];
            if (type == 0x0D) { leaves.Add(page); return; }
            Assert.Equal(0x05, type); // an interior table page
            int cells = BinaryPrimitives.ReadUInt16BigEndian(buf.AsSpan(header + 3));
            for (int i = 0; i < cells; i++)
            {
                int cell = BinaryPrimitives.ReadUInt16BigEndian(buf.AsSpan(header + 12 + 2 * i));
                Walk((int)BinaryPrimitives.ReadUInt32BigEndian(buf.AsSpan(cell)));
            }
            Walk((int)BinaryPrimitives.ReadUInt32BigEndian(buf.AsSpan(header + 8)));
        }
        Walk(rootPage);
        Assert.True(leaves.Count >= 3, $"the tasks table has only {leaves.Count} leaf pages");
        foreach (var page in leaves.SkipLast(1))
        {
            f.Seek((long)(page - 1) * pageSize, SeekOrigin.Begin);
            f.WriteByte(0x42); // no page type
        }
        f.Flush(true);
        return leaves.Count - 1;
    }

}
