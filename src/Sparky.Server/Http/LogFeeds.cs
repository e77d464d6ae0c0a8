using Microsoft.Extensions.Logging;
using Sparky.Core.Tasks;
using Sparky.Server.Daemon;
using Sparky.Store.Sqlite;

namespace Sparky.Server.Http;

/// <summary>
/// One poller per followed log, whatever the number of followers. Each follower used to read the task from the
/// store and stat its log file every 150 ms on its own: 200 followers of one task were 1,300 store reads a
/// second. Now one loop per (task, stream) does that and wakes its followers when the task or the file changed;
/// each follower then reads the new bytes from its own offset.
/// </summary>
internal sealed class LogFeeds(SparkyDaemon d)
{
    private readonly Dictionary<(TaskId, bool), Feed> _feeds = [];
    private readonly ILogger _log = d.Logs.CreateLogger<LogFeeds>();

    /// <summary>Pollers running now: one per log being followed.</summary>
    public int Count { get { lock (_feeds) return _feeds.Count; } }

    public Feed Join(TaskId id, bool stderr)
    {
        lock (_feeds)
        {
            if (!_feeds.TryGetValue((id, stderr), out var feed))
            {
                feed = new Feed(this, d, id, stderr);
                _feeds[(id, stderr)] = feed;
                feed.Start();
            }
            feed.Followers++;
            return feed;
        }
    }

    private void Leave(Feed feed)
    {
        lock (_feeds)
        {
            if (--feed.Followers > 0) return;
            _feeds.Remove((feed.Id, feed.Stderr));
            feed.Stop();
        }
    }

    internal sealed class Feed(LogFeeds owner, SparkyDaemon d, TaskId id, bool stderr) : IDisposable
    {
        public TaskId Id => id;
        public bool Stderr => stderr;
        public int Followers; // under the owner's lock

        private readonly CancellationTokenSource _stop = new();
        private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);

        /// <summary>The task as the poller last read it.</summary>
        public TaskRecord? Snapshot { get; private set; }

        public void Start()
        {
            Snapshot = d.Store.Get(id);
            _ = Task.Run(PollAsync);
        }

        public void Stop()
        {
            _stop.Cancel();
            Volatile.Read(ref _changed).TrySetResult();
        }

        /// <summary>Completes at the next change of the task or of its newest log file. Taken before reading, so a
        /// change during the read is not missed.</summary>
        public Task Changed => Volatile.Read(ref _changed).Task;

        /// <summary>The poller has stopped (it failed): followers end rather than wait.</summary>
        public bool Stopped => _stop.IsCancellationRequested;

        private async Task PollAsync()
        {
            (int, TaskState, long?, long) last = default;
            try
            {
                while (!_stop.IsCancellationRequested)
                {
                    await Task.Delay(150, _stop.Token);
                    var t = d.Store.Get(id);
                    if (t is null) continue;
                    var n = Math.Max(1, t.Attempts);
                    var path = d.Engine.LogPath(id, n, stderr);
                    long length = File.Exists(path) ? new FileInfo(path).Length : -1;
                    var now = (t.Attempts, t.State, t.AttemptList.FirstOrDefault(a => a.N == n)?.EndedAt, length);
                    if (now == last) continue;
                    last = now;
                    Snapshot = t;
                    Interlocked.Exchange(ref _changed, new(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
                }
            }
            catch (OperationCanceledException) { }
            catch (Exception e) { HttpLog.FeedFailed(owner._log, id.Value, e.Message); Stop(); }
        }

        public void Dispose() => owner.Leave(this);
    }
}
