using Sparky.Server.Zmq;
using Sparky.Workers.Protocol;

namespace Sparky.Server.Executors.Workers;

/// <summary>How the engine reaches workers: the command socket's send (any thread), and what pilots need to connect.</summary>
/// <param name="PilotKeyFile">The secret key file pilots authenticate with, where the daemon checks worker keys.</param>
public sealed record WorkerLink(Action<byte[], byte[]> Send, string Endpoint, string? ServerPublicKey, string? PilotKeyFile = null);

/// <summary>A worker's message, as the command socket read it, handed to the worker executor on the engine's loop.</summary>
/// <param name="Message">The body, read into its record by the command socket; null where it had none.</param>
/// <param name="Key">The public key the message proved (where the command socket checks keys); null: none checked.</param>
internal sealed record WorkerMessage(byte[] Identity, RequestType Type, byte[] Corr, IFromWorker? Message, string? Key);
