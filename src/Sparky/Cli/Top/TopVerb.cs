using System.CommandLine;
using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using System.Threading.Channels;
using Spectre.Console;

namespace Sparky.Cli.Top;

/// <summary>
/// <c>sparky top</c>: the daemon at a glance, live. One full read at the start, on every (re)connection of the event
/// stream and every <see cref="ResyncEvery"/>; between them the daemon's events move it: a start, a progress, an end.
/// </summary>
internal static class TopVerb
{
    /// <summary>The full read that corrects whatever events were missed (a subscriber that falls behind loses its oldest).</summary>
    private static readonly TimeSpan ResyncEvery = TimeSpan.FromSeconds(10);
    /// <summary>GPU readings have no events: read this often, where the daemon has GPUs.</summary>
    private static readonly TimeSpan GpusEvery = TimeSpan.FromSeconds(5);
    /// <summary>The class counts (and the GPUs' holders) are read again this long after events changed them (at most this often).</summary>
    private static readonly TimeSpan CountsAfter = TimeSpan.FromMilliseconds(500);
    /// <summary>Elapsed times move: the screen is drawn at least this often, and at most ten times a second.</summary>
    private static readonly TimeSpan Tick = TimeSpan.FromSeconds(1), MinFrame = TimeSpan.FromMilliseconds(100);

    public static Command Build(Option<string?> server, Option<bool> json)
    {
        var c = new Command("top", """
            A live view of the daemon: per class the tasks queued and running and the concurrency limit, the running
            tasks (elapsed time, and a progress bar with the task's message where it reports progress), the GPUs
            (utilisation, memory, the tasks holding each) and the latest ends. It follows the daemon's events, with a
            full read every 10 s, and fits the terminal (80 columns and up; it follows a resize).
            Keys: q quits; / starts a filter on id, name or class that narrows the lists as you type (Enter keeps it,
            Esc clears it).
            When stdout is not a terminal (a pipe, a file) it prints one plain snapshot and exits; with --json, the
            same snapshot as JSON.
            """);
        c.SetAction(async (p, ct) =>
        {
            using var client = new DaemonClient(p.GetValue(server));
            bool asJson = p.GetValue(json);
            // The first read fails as any verb does (one line, exit 1): nothing to show yet.
            var first = await SnapshotAsync(client, ct);
            var state = new TopState(client.Server);
            state.Apply(first);
            if (asJson)
            {
                Console.WriteLine(first.ToJson().ToJsonString());
                return 0;
            }
            // Whether stdout is a terminal, and only that: Spectre calls a CI machine not interactive, tmux or not.
            if (Console.IsOutputRedirected)
            {
                foreach (var line in TopView.Lines(state, AnsiConsole.Profile.Width, int.MaxValue, DateTimeOffset.Now, snapshot: true))
                    AnsiConsole.MarkupLine(line);
                return 0;
            }
            using var interruption = new Interruption(ct);
            return await LiveAsync(client, state, interruption.Token);
        });
        return c;
    }

    /// <summary>Everything that moves the live view, from the feed, the keyboard and the terminal.</summary>
    private abstract record Input
    {
        public sealed record Feed(FeedItem Item) : Input;
        public sealed record Key(KeyPress Press) : Input;
        public sealed record Resized : Input;
    }

    private static async Task<int> LiveAsync(DaemonClient client, TopState state, CancellationToken ct)
    {
        var inbox = Channel.CreateUnbounded<Input>(new UnboundedChannelOptions { SingleReader = true });
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var feed = EventFeed.RunAsync(client, TopState.Wants, item => inbox.Writer.TryWrite(new Input.Feed(item)), stop.Token);
        if (!Console.IsInputRedirected) ReadKeys(k => inbox.Writer.TryWrite(new Input.Key(k)));
        using var resized = OnResize(() => inbox.Writer.TryWrite(new Input.Resized()));

        var now = DateTimeOffset.Now;
        DateTimeOffset nextResync = now + ResyncEvery, nextGpus = now + GpusEvery, nextCounts = DateTimeOffset.MaxValue, lastFrame = DateTimeOffset.MinValue;
        using var screen = TopScreen.Enter();
        try
        {
            while (true)
            {
                now = DateTimeOffset.Now;
                await RefreshAsync();
                var (width, height) = TopScreen.Size();
                screen.Draw(TopView.Lines(state, width, height, now), width, height);
                lastFrame = DateTimeOffset.Now;

                // Wait for something to happen, or for the next tick or read that is due.
                var due = new[] { lastFrame + Tick, nextResync, nextCounts, state.Gpus.Count > 0 ? nextGpus : DateTimeOffset.MaxValue }.Min();
                var wait = due - DateTimeOffset.Now;
                if (wait > TimeSpan.Zero)
                {
                    using var timer = CancellationTokenSource.CreateLinkedTokenSource(ct);
                    timer.CancelAfter(wait);
                    try { await inbox.Reader.WaitToReadAsync(timer.Token); }
                    catch (OperationCanceledException) when (!ct.IsCancellationRequested) { }
                }
                // A burst of events is one frame, not one each.
                var sinceFrame = DateTimeOffset.Now - lastFrame;
                if (sinceFrame < MinFrame) await Task.Delay(MinFrame - sinceFrame, ct);
                while (inbox.Reader.TryRead(out var input))
                    if (Handle(input) == KeyOutcome.Quit) return 0;
            }
        }
        finally
        {
            stop.Cancel();
            try { await feed; } catch (OperationCanceledException) { }
        }

        KeyOutcome Handle(Input input)
        {
            switch (input)
            {
                case Input.Key key:
                    return state.OnKey(key.Press);
                case Input.Feed { Item: FeedItem.Connected }:
                    (state.Live, state.Problem) = (true, null);
                    nextResync = DateTimeOffset.MinValue; // what happened while it was away
                    break;
                case Input.Feed { Item: FeedItem.Lost lost }:
                    (state.Live, state.Problem) = (false, "no events: " + lost.Why);
                    break;
                case Input.Feed { Item: FeedItem.Event e }:
                    state.Apply(e.Topic, e.TsMs, e.Body);
                    if (TopState.ChangesCounts(e.Topic) && nextCounts == DateTimeOffset.MaxValue) nextCounts = DateTimeOffset.Now + CountsAfter;
                    break;
            }
            return KeyOutcome.Redraw;
        }

        // The reads that are due; a failure shows in the header and the view goes on with what it has.
        async Task RefreshAsync()
        {
            try
            {
                if (now >= nextResync)
                {
                    state.Apply(await SnapshotAsync(client, ct));
                    if (state.Live) state.Problem = null;
                    (nextResync, nextGpus, nextCounts) = (now + ResyncEvery, now + GpusEvery, DateTimeOffset.MaxValue);
                }
                if (now >= nextCounts)
                {
                    state.SetClasses(await client.GetAsync("api/v1/classes", ct));
                    nextCounts = DateTimeOffset.MaxValue;
                    // A start or an end may have taken or given back a GPU.
                    nextGpus = now;
                }
                if (now >= nextGpus && state.Gpus.Count > 0)
                {
                    state.SetGpus(await client.GetAsync("api/v1/gpus", ct));
                    nextGpus = now + GpusEvery;
                }
                // Tasks queued before the view began start without a name in their event: read each once.
                foreach (var id in state.TakeUndescribed(20))
                    state.Describe(await client.GetAsync($"api/v1/tasks/{Uri.EscapeDataString(id)}", ct));
            }
            catch (CliException e)
            {
                state.Problem = e.Message;
                nextResync = now + ResyncEvery;
            }
        }
    }

    /// <summary>One full read: classes, running tasks, the latest ends of each outcome, GPUs, all at once.</summary>
    internal static async Task<TopSnapshot> SnapshotAsync(DaemonClient client, CancellationToken ct)
    {
        var classes = client.GetAsync("api/v1/classes", ct);
        var running = client.GetAsync("api/v1/tasks?state=running&order=desc&limit=1000", ct);
        var ends = new[] { "succeeded", "failed", "cancelled" }
            .Select(s => client.GetAsync($"api/v1/tasks?state={s}&order=desc&limit={TopState.EndedKept}", ct)).ToList();
        var gpus = client.GetAsync("api/v1/gpus", ct);
        await Task.WhenAll([classes, running, gpus, .. ends]);
        JsonArray Tasks(JsonNode page) => page["tasks"] as JsonArray ?? throw client.NotSparky();
        var ended = new JsonArray();
        foreach (var page in ends)
            foreach (var t in Tasks(page.Result)) ended.Add(t?.DeepClone());
        return new TopSnapshot(classes.Result, (JsonArray)Tasks(running.Result).DeepClone(), ended, gpus.Result);
    }

    /// <summary>A redraw at once when the terminal is resized (SIGWINCH); where there is no such signal, the next tick redraws.</summary>
    private static PosixSignalRegistration? OnResize(Action redraw)
    {
        try { return PosixSignalRegistration.Create(PosixSignal.SIGWINCH, _ => redraw()); }
        catch (PlatformNotSupportedException) { return null; }
    }

    /// <summary>Reads keys on a thread of their own (a console read cannot be cancelled; the thread ends with the process).</summary>
    private static void ReadKeys(Action<KeyPress> post)
    {
        var thread = new Thread(() =>
        {
            try
            {
                while (true)
                {
                    var k = Console.ReadKey(intercept: true);
                    post(new KeyPress(k.KeyChar, k.Key));
                }
            }
            catch (InvalidOperationException) { } // no console to read from
        })
        { IsBackground = true, Name = "sparky-top-keys" };
        thread.Start();
    }
}
