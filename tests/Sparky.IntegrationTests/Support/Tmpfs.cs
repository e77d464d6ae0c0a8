using System.Diagnostics;
using Xunit.Abstractions;

namespace Sparky.IntegrationTests.Support;

/// <summary>A small tmpfs over a folder, for the tests that fill a disk. Needs root (mount); CI runs as root, so
/// there it never skips.</summary>
public static class Tmpfs
{
    /// <summary>Mounts a tmpfs of <paramref name="size"/> (mount's -o size=, such as 3m) on <paramref name="dir"/>.
    /// False, with a line saying so, where this is not root; under CI that fails the test instead.</summary>
    public static bool TryMount(string dir, string size, ITestOutputHelper output)
    {
        Directory.CreateDirectory(dir);
        if (Run("mount", "-t", "tmpfs", "-o", "size=" + size, "tmpfs", dir)) return true;
        Assert.False(Environment.GetEnvironmentVariable("CI") == "true", "CI must be able to mount a tmpfs (run as root)");
        output.WriteLine("not root: cannot mount a tmpfs here; this test runs in CI");
        return false;
    }

    public static void Unmount(string dir) => Run("umount", "-l", dir);

    /// <summary>Runs a program to its end; true if it exited 0.</summary>
    public static bool Run(string file, params string[] args)
    {
        try
        {
            var psi = new ProcessStartInfo(file) { RedirectStandardError = true, RedirectStandardOutput = true };
            foreach (var a in args) psi.ArgumentList.Add(a);
            using var p = Process.Start(psi)!;
            p.WaitForExit();
            return p.ExitCode == 0;
        }
        catch (System.ComponentModel.Win32Exception) { return false; }
    }
}
