using System.Threading.Channels;
using Sparky.Core.Events;

namespace Sparky.Server.Events;

/// <summary>
/// The one in-process stream of state changes. Each subscriber gets its own bounded channel; a
/// subscriber that falls behind loses its oldest events rather than slowing the engine.
/// </summary>
public sealed class EventHub
{
    private readonly Lock _gate = new();
    private (Channel<SparkyEvent> Channel, Func<SparkyEvent, bool>? Filter)[] _subscribers = [];

    public void Publish(SparkyEvent e)
    {
        foreach (var (ch, filter) in Volatile.Read(ref _subscribers))
            if (filter is null || filter(e)) ch.Writer.TryWrite(e);
    }

    /// <param name="filter">Only these events reach the subscriber: one that wants few events is not woken
    /// (a thread-pool hop each) for the thousands of others.</param>
    public Subscription Subscribe(int capacity = 10_000, Func<SparkyEvent, bool>? filter = null)
    {
        var ch = Channel.CreateBounded<SparkyEvent>(new BoundedChannelOptions(capacity)
        {
            FullMode = BoundedChannelFullMode.DropOldest,
            SingleReader = true,
        });
        lock (_gate) _subscribers = [.. _subscribers, (ch, filter)];
        return new Subscription(this, ch);
    }

    private void Remove(Channel<SparkyEvent> ch)
    {
        lock (_gate) _subscribers = _subscribers.Where(s => s.Channel != ch).ToArray();
        ch.Writer.TryComplete();
    }

    public sealed class Subscription(EventHub hub, Channel<SparkyEvent> channel) : IDisposable
    {
        public ChannelReader<SparkyEvent> Reader => channel.Reader;
        public void Dispose() => hub.Remove(channel);
    }
}
