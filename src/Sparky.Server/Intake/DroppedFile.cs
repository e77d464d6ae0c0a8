using System.Security.Cryptography;
using System.Text;
using Sparky.Server.Daemon;

namespace Sparky.Server.Intake;

/// <summary>What reading an entry of pending/ came to: its bytes and identity, a refusal with its reason, gone, or later.</summary>
internal abstract record DroppedFile
{
    /// <summary>The file's bytes, and <see cref="Key"/>: its identity, stored with its task so that a start which finds
    /// the same file still in pending/ (a kill -9 between the commit and the move) knows it was taken. The name, device,
    /// inode, size, modification and change times (nanoseconds; the change time moves on any rename, chmod or write,
    /// and no one can set it) and a hash of the bytes: a new file is never taken for an old one, even where a
    /// deleted file's inode is reused and a copy keeps the old modification time. <see cref="Entry"/>: the file as
    /// read, to tell whether a file that does not parse yet is still changing.</summary>
    public sealed record Read(byte[] Bytes, string Key, Posix.Entry Entry) : DroppedFile;
    public sealed record Refused(string Reason) : DroppedFile;
    public sealed record Gone : DroppedFile;
    /// <summary>Not the file's fault (the daemon is out of file descriptors or memory): try again later.</summary>
    public sealed record Later(string Why) : DroppedFile;

    /// <summary>
    /// Reads <paramref name="path"/> as the drop directory must: never through a link, never waiting on a FIFO, only
    /// a regular file, and never more than <paramref name="limit"/> + 1 bytes, however large the file is or becomes.
    /// </summary>
    public static DroppedFile Take(string path, long limit)
    {
        int err = Posix.LStat(path, out var entry);
        if (err == Posix.ENOENT) return new Gone();
        if (err != 0) return new Refused($"the daemon cannot examine it: {Posix.Describe(err)}");
        if (NotRegular(entry.Kind) is { } what) return new Refused(what);
        if ((long)entry.Size > limit) return TooLarge((long)entry.Size, limit);

        using var handle = Posix.OpenToRead(path, out err);
        if (handle is null)
        {
            return err switch
            {
                Posix.ENOENT => new Gone(),
                Posix.ELOOP => new Refused(NotRegular(Posix.Kind.Link)!),
                Posix.EACCES or Posix.EPERM => new Refused(
                    $"the daemon cannot read it ({Posix.Describe(err)}): its mode is {Convert.ToString(entry.Mode, 8).PadLeft(4, '0')}, its owner uid {entry.Uid}; " +
                    "a file dropped here must be readable by the daemon's user"),
                Posix.EMFILE or Posix.ENFILE or Posix.ENOMEM or Posix.EINTR or Posix.EAGAIN => new Later(Posix.Describe(err)),
                _ => new Refused($"the daemon cannot open it: {Posix.Describe(err)}"),
            };
        }
        // The handle's own file decides: the path may have been replaced since it was examined.
        err = Posix.FStat(handle, out var opened);
        if (err != 0) return new Refused($"the daemon cannot examine it: {Posix.Describe(err)}");
        if (NotRegular(opened.Kind) is { } other) return new Refused(other);
        if (!opened.SameFileAs(entry)) return new Later("the file was replaced while it was opened");
        if ((long)opened.Size > limit) return TooLarge((long)opened.Size, limit);

        // At most limit + 1 bytes: a file that grows past its size as examined is still caught, and bounded.
        var buffer = new byte[(int)Math.Min(limit + 1, Math.Max(4096, (long)opened.Size + 1))];
        long total = 0;
        try
        {
            while (true)
            {
                if (total == buffer.Length)
                {
                    if (total > limit) return TooLarge(total, limit, atLeast: true);
                    Array.Resize(ref buffer, (int)Math.Min(limit + 1, buffer.LongLength * 2));
                }
                int n = RandomAccess.Read(handle, buffer.AsSpan((int)total), total);
                if (n == 0) break;
                total += n;
            }
        }
        catch (IOException e) { return new Refused($"the daemon cannot read it: {e.Message}"); }
        if (total > limit) return TooLarge(total, limit, atLeast: true);
        Array.Resize(ref buffer, (int)total);
        return new Read(buffer, IdentityOf(Path.GetFileName(path), opened, buffer), opened);
    }

    private static DroppedFile TooLarge(long size, long limit, bool atLeast = false) =>
        new Refused($"the file is {(atLeast ? "more than " + limit : size)} bytes; at most {limit} are accepted");

    /// <summary>Why an entry that is not a regular file is refused; null for a regular file.</summary>
    private static string? NotRegular(Posix.Kind kind) => kind switch
    {
        Posix.Kind.Regular => null,
        Posix.Kind.Link => "it is a symbolic link: a link is never followed here; drop the file itself (write it under a dot name, then rename it in)",
        Posix.Kind.Fifo => "it is a FIFO (named pipe), not a regular file",
        Posix.Kind.Directory => "it is a directory, not a regular file",
        Posix.Kind.Socket => "it is a socket, not a regular file",
        Posix.Kind.CharDevice or Posix.Kind.BlockDevice => "it is a device, not a regular file",
        _ => "it is not a regular file",
    };

    private static string IdentityOf(string name, Posix.Entry e, byte[] bytes)
    {
        var identity = $"{name}\0{e.Device}:{e.Inode}:{e.Size}:{e.MtimeNs}:{e.CtimeNs}:{Convert.ToHexStringLower(SHA256.HashData(bytes))}";
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(identity)));
    }
}
