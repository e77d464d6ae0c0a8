using Sparky.Core.Tasks;

namespace Sparky.Execution.Processes;

/// <summary>Reads a task's result from its stdout file by the replaced runner's rule (<see cref="ResultMarker"/>): the
/// last marker line, found by reading backwards from the end, at most the last 16 MiB. Used by the daemon for its own
/// and its Slurm jobs' attempts, and by <c>sparky worker</c> for the attempts it runs.</summary>
public static class ResultLine
{
    public static ResultRead Read(string stdoutPath)
    {
        try
        {
            // Most tasks print nothing or no result: a stat is cheaper than an open.
            var info = new FileInfo(stdoutPath);
            if (!info.Exists || info.Length < ResultMarker.Prefix.Length) return ResultRead.None;
            using var handle = File.OpenHandle(stdoutPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            long length = RandomAccess.GetLength(handle);
            return ResultMarker.Find(length, (offset, buffer) => RandomAccess.Read(handle, buffer, offset));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return ResultRead.None;
        }
    }
}
