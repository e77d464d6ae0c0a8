using System.Runtime.InteropServices;
using Sparky.Execution.Processes;

namespace Sparky.Execution.Host;

/// <summary>
/// A name made by a rename survives a power cut once its directory is fsynced (the file's own content: FileStream's
/// Flush(flushToDisk: true) before the rename). .NET opens no directory as a stream, hence the system calls.
/// </summary>
public static class DurableDirectory
{
    /// <summary>fsync(2) of the directory. Throws IOException with the reason when it cannot be opened or synced.</summary>
    public static void Sync(string dir)
    {
        int fd = Libc.Open(dir, Libc.O_RDONLY | Libc.O_DIRECTORY | Libc.O_CLOEXEC);
        if (fd < 0) throw new IOException($"cannot open directory {dir}: {Marshal.GetPInvokeErrorMessage(Marshal.GetLastPInvokeError())}");
        try
        {
            if (Libc.fsync(fd) != 0) throw new IOException($"cannot sync directory {dir}: {Marshal.GetPInvokeErrorMessage(Marshal.GetLastPInvokeError())}");
        }
        finally
        {
            Libc.close(fd);
        }
    }
}
