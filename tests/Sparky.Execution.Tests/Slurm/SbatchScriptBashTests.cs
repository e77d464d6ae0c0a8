using System.Diagnostics;
using System.Text;
using FsCheck.Xunit;
using Sparky.Execution.Slurm;
using static Sparky.Execution.Tests.Slurm.SbatchScriptTests;

namespace Sparky.Execution.Tests.Slurm;

/// <summary>Runs rendered scripts through real bash: hostile values come out byte for byte and run nothing.</summary>
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class SbatchScriptBashTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("sparky-sbatch-tests-").FullName;
    private readonly string _cwd;

    public SbatchScriptBashTests()
    {
        // A working directory whose name itself is hostile.
        _cwd = Path.Combine(_root, "my dir 'quoted' \"dq\" $(touch PWNED) `touch PWNED` ☃");
        Directory.CreateDirectory(_cwd);
        File.WriteAllText(Path.Combine(_cwd, "victim"), "");
        File.WriteAllText(Path.Combine(_root, "victim"), "");
    }

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private sealed record Result(int ExitCode, string Stdout, string Stderr);

    private Result Bash(string script, params string[] bashArgs)
    {
        var path = Path.Combine(_root, "job.sh");
        File.WriteAllText(path, script); // UTF-8, no BOM
        var psi = new ProcessStartInfo("bash")
        {
            WorkingDirectory = _root,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            StandardOutputEncoding = new UTF8Encoding(false),
            StandardErrorEncoding = new UTF8Encoding(false),
        };
        foreach (var a in bashArgs) psi.ArgumentList.Add(a);
        psi.ArgumentList.Add(path);
        using var p = Process.Start(psi)!;
        var stderr = p.StandardError.ReadToEndAsync();
        var stdout = p.StandardOutput.ReadToEnd();
        Assert.True(p.WaitForExit(30_000), "bash did not finish");
        return new Result(p.ExitCode, stdout, stderr.Result);
    }

    private void AssertNothingRan()
    {
        Assert.Empty(Directory.GetFiles(_root, "PWNED*", SearchOption.AllDirectories));
        Assert.True(File.Exists(Path.Combine(_cwd, "victim")));
        Assert.True(File.Exists(Path.Combine(_root, "victim")));
    }

    [Fact]
    public void Hostile_arguments_reach_the_program_byte_for_byte()
    {
        var argv = new List<string> { "printf", "%s\\0" };
        argv.AddRange(Hostile.Values);
        var script = SbatchScript.Render(Request(argv: argv, cwd: _cwd));

        Assert.Equal(0, Bash(script, "-n").ExitCode);
        var r = Bash(script);
        Assert.Equal("", r.Stderr);
        Assert.Equal(0, r.ExitCode);
        Assert.Equal(Hostile.Values, r.Stdout.Split('\0')[..^1]);
        AssertNothingRan();
    }

    [Fact]
    public void Hostile_env_values_reach_the_program_byte_for_byte()
    {
        var env = Hostile.Values.Select((v, i) => (Key: $"EVIL_{i}", Value: v)).ToDictionary(e => e.Key, e => e.Value);
        var script = SbatchScript.Render(Request(argv: ["env", "-0"], env: env, cwd: _cwd, taskId: "t.1-x_2", attempt: 3));

        Assert.Equal(0, Bash(script, "-n").ExitCode);
        var r = Bash(script);
        Assert.Equal("", r.Stderr);
        Assert.Equal(0, r.ExitCode);
        var seen = r.Stdout.Split('\0', StringSplitOptions.RemoveEmptyEntries)
            .Select(e => e.Split('=', 2)).ToDictionary(kv => kv[0], kv => kv[1]);
        foreach (var (key, value) in env) Assert.Equal(value, seen[key]);
        Assert.Equal("t.1-x_2", seen["SPARKY_TASK_ID"]);
        Assert.Equal("3", seen["SPARKY_ATTEMPT"]);
        AssertNothingRan();
    }

    [Fact]
    public void Program_runs_in_the_hostile_cwd()
    {
        var r = Bash(SbatchScript.Render(Request(argv: ["pwd"], cwd: _cwd)));
        Assert.Equal(0, r.ExitCode);
        Assert.Equal(_cwd + "\n", r.Stdout);
        AssertNothingRan();
    }

    [Fact]
    public void A_missing_cwd_is_created_with_its_hostile_name_intact_and_nothing_else_runs()
    {
        var missing = Path.Combine(_root, "new 'x' $(touch PWNED)", "deeper");
        var r = Bash(SbatchScript.Render(Request(argv: ["pwd"], cwd: missing)));
        Assert.Equal(0, r.ExitCode);
        Assert.Equal(missing + "\n", r.Stdout);
        AssertNothingRan();
    }

    [Fact]
    public void A_cwd_that_cannot_be_created_fails_the_job_with_a_message_and_runs_nothing()
    {
        File.WriteAllText(Path.Combine(_root, "a-file"), "");
        var blocked = Path.Combine(_root, "a-file", "gone 'x' $(touch PWNED)");
        var r = Bash(SbatchScript.Render(Request(argv: ["touch", "PWNED-ran"], cwd: blocked)));
        Assert.Equal(1, r.ExitCode);
        Assert.Contains($"sparky: cannot create or change to working directory {blocked}\n", r.Stderr);
        Assert.Equal("", r.Stdout);
        AssertNothingRan();
    }

    [Fact]
    public void User_commands_may_use_unset_variables()
    {
        // No `set -u`: a user command that expands an unset variable behaves as it would in a terminal.
        var r = Bash(SbatchScript.Render(Request(argv: ["bash", "-c", "echo \"[$SPARKY_SURELY_UNSET]\""])));
        Assert.Equal(0, r.ExitCode);
        Assert.Equal("[]\n", r.Stdout);
    }

    private const string Alphabet = "a Z0'\"\\$`(){}[];&|<>!#*?~=%^\n\r\t-_/.:,é☃😀\u0001";

    /// <summary>Random strings over an alphabet of shell metacharacters: the directives stay exactly the tame
    /// ones, and bash hands every string back unchanged, as an argument and as an env value.</summary>
    [Property(MaxTest = 25)]
    public void Random_values_round_trip_through_bash(int seed)
    {
        var rng = new Random(seed);
        string Next()
        {
            var sb = new StringBuilder();
            for (int i = rng.Next(0, 40); i > 0; i--)
            {
                int k = rng.Next(Alphabet.Length);
                sb.Append(char.IsHighSurrogate(Alphabet[k]) ? Alphabet.Substring(k, 2)
                    : char.IsLowSurrogate(Alphabet[k]) ? "x" : Alphabet[k].ToString());
            }
            return sb.ToString();
        }
        var values = Enumerable.Range(0, 20).Select(_ => Next()).ToArray();
        var env = values.Select((v, i) => (Key: $"R_{i}", Value: v)).ToDictionary(e => e.Key, e => e.Value);
        var argv = new List<string> { "bash", "-c", "printf '%s\\0' \"$@\"; for k in ${!R_*}; do printf '%s=%s\\0' \"$k\" \"${!k}\"; done", "sh" };
        argv.AddRange(values);
        var script = SbatchScript.Render(Request(argv: argv, env: env, cwd: _cwd));

        Assert.Equal(SlurmDirectives(SbatchScript.Render(Request())), SlurmDirectives(script));
        var r = Bash(script);
        Assert.Equal("", r.Stderr);
        var parts = r.Stdout.Split('\0')[..^1];
        Assert.Equal(values, parts[..values.Length]);
        var seen = parts[values.Length..].Select(e => e.Split('=', 2)).ToDictionary(kv => kv[0], kv => kv[1]);
        foreach (var (key, value) in env) Assert.Equal(value, seen[key]);
        AssertNothingRan();
    }

    [Fact]
    public void An_array_script_runs_each_element_as_its_own_task_with_its_own_logs()
    {
        var common = new SbatchRequest("t0", 1, ["sh", "-c", "echo \"$SPARKY_TASK_ID $SPARKY_ARRAY_INDEX $SPARKY_ATTEMPT\"; echo err >&2"],
            new Dictionary<string, string>(), _root, "arr", null, 0, 0, null, null, null,
            Path.Combine(_root, "slurm-%A_%a.out"), Path.Combine(_root, "slurm-%A_%a.out"), [], null, []);
        var elements = new[] { 0, 3, 7 }.Select(i => new ArrayElement(i, $"task-{i}", Path.Combine(_root, $"task-{i}.out"), Path.Combine(_root, $"task-{i}.err"))).ToList();
        var script = SbatchScript.RenderArray(common, elements);
        Assert.Contains("#SBATCH --array=0,3,7\n", script);
        Assert.Contains("#SBATCH --comment=sparky:task-0:1\n", script);
        foreach (var e in elements)
        {
            Environment.SetEnvironmentVariable("SLURM_ARRAY_TASK_ID", e.Index.ToString());
            try { Assert.Equal(0, Bash(script).ExitCode); }
            finally { Environment.SetEnvironmentVariable("SLURM_ARRAY_TASK_ID", null); }
            Assert.Equal($"{e.TaskId} {e.Index} 1\n", File.ReadAllText(e.StdoutPath));
            Assert.Equal("err\n", File.ReadAllText(e.StderrPath));
        }
        // An index the script does not know fails loudly instead of running some task.
        Environment.SetEnvironmentVariable("SLURM_ARRAY_TASK_ID", "5");
        try { Assert.Equal(1, Bash(script).ExitCode); }
        finally { Environment.SetEnvironmentVariable("SLURM_ARRAY_TASK_ID", null); }
    }
}
