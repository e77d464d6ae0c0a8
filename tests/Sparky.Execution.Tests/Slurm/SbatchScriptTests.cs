using Sparky.Execution.Slurm;

namespace Sparky.Execution.Tests.Slurm;

public sealed class SbatchScriptTests
{
    internal static SbatchRequest Request(
        IReadOnlyList<string>? argv = null, IReadOnlyDictionary<string, string>? env = null, string? cwd = null,
        string? name = null, double? cpus = null, long mem = 0, int gpus = 0, double? timeout = null,
        string? partition = null, string? account = null, IReadOnlyList<string>? after = null, string? array = null,
        IReadOnlyList<string>? extra = null, string taskId = "01jb3kz8m2q", int attempt = 1,
        string stdout = "/var/sparky/logs/t.out", string stderr = "/var/sparky/logs/t.err") =>
        new(taskId, attempt, argv ?? ["true"], env ?? new Dictionary<string, string>(), cwd, name, cpus, mem, gpus, timeout,
            partition, account, stdout, stderr, after ?? [], array, extra ?? []);

    /// <summary>The #SBATCH directives as Slurm sees them: lines from the top until the first line that is
    /// neither blank nor a comment; of those, the ones starting with "#SBATCH".</summary>
    internal static List<string> SlurmDirectives(string script)
    {
        var directives = new List<string>();
        foreach (var line in script.Split('\n'))
        {
            var trimmed = line.Trim();
            if (trimmed.Length > 0 && !trimmed.StartsWith('#')) break;
            if (line.StartsWith("#SBATCH", StringComparison.Ordinal)) directives.Add(line["#SBATCH".Length..].Trim());
        }
        return directives;
    }

    [Fact]
    public void Full_request_renders_every_directive_in_order()
    {
        var script = SbatchScript.Render(Request(name: "train resnet", cpus: 3.5, mem: 8000, gpus: 2, timeout: 3600 * 25 + 1,
            partition: "gpu", account: "proj-42", after: ["100", "101_3"], array: "0-99:2%4",
            extra: ["--qos=high", "--exclusive", "--constraint=a100&nvlink"]));
        Assert.StartsWith("#!/bin/bash\n", script);
        Assert.Equal(new[]
        {
            "--job-name=train_resnet", "--cpus-per-task=4", "--mem=8000M", "--gres=gpu:2", "--time=1-01:01:00",
            "--partition=gpu", "--account=proj-42", "--output=/var/sparky/logs/t.out", "--error=/var/sparky/logs/t.err",
            "--comment=sparky:01jb3kz8m2q:1", "--dependency=afterok:100:101_3", "--array=0-99:2%4", "--open-mode=append",
            "--qos=high", "--exclusive", "--constraint=a100&nvlink",
        }, SlurmDirectives(script));
    }

    [Fact]
    public void Minimal_request_leaves_optional_directives_out()
    {
        var script = SbatchScript.Render(Request());
        Assert.Equal(new[]
        {
            "--job-name=01jb3kz8m2q", "--output=/var/sparky/logs/t.out", "--error=/var/sparky/logs/t.err",
            "--comment=sparky:01jb3kz8m2q:1", "--open-mode=append",
        }, SlurmDirectives(script));
        Assert.EndsWith("\nexport SPARKY_TASK_ID='01jb3kz8m2q' SPARKY_ATTEMPT='1'\nexec 'true'\n", script);
        Assert.DoesNotContain("set -u", script);
        Assert.DoesNotContain("cd ", script);
    }

    [Fact]
    public void Body_quotes_cwd_env_and_argv()
    {
        var script = SbatchScript.Render(Request(argv: ["python", "it's.py", ""], cwd: "/data/my dir",
            env: new Dictionary<string, string> { ["ZED"] = "z", ["A_1"] = "x y" }));
        var body = script[(script.IndexOf("\n\n", StringComparison.Ordinal) + 2)..];
        Assert.Equal(
            "mkdir -p -- '/data/my dir' && cd -- '/data/my dir' || { printf 'sparky: cannot create or change to working directory %s\\n' '/data/my dir' >&2; exit 1; }\n" +
            "export A_1='x y'\n" +
            "export ZED='z'\n" +
            "export SPARKY_TASK_ID='01jb3kz8m2q' SPARKY_ATTEMPT='1'\n" +
            "exec 'python' 'it'\\''s.py' ''\n", body);
    }

    [Theory]
    [InlineData(0.001, "1:00")]
    [InlineData(1, "1:00")]
    [InlineData(60, "1:00")]
    [InlineData(60.001, "2:00")]
    [InlineData(61, "2:00")]
    [InlineData(3540, "59:00")]
    [InlineData(3541, "0-01:00:00")] // 60 minutes
    [InlineData(3600, "0-01:00:00")]
    [InlineData(5400, "0-01:30:00")]
    [InlineData(86400, "1-00:00:00")]
    [InlineData(86401, "1-00:01:00")]
    [InlineData(10 * 86400 + 3 * 3600 + 7 * 60, "10-03:07:00")]
    public void Time_is_rounded_up_to_whole_minutes(double seconds, string expected)
        => Assert.Equal(expected, SbatchScript.FormatTime(seconds));

    [Theory]
    [InlineData(0)]
    [InlineData(-5)]
    [InlineData(double.NaN)]
    [InlineData(double.PositiveInfinity)]
    [InlineData(1e300)]
    public void Bad_timeouts_are_refused(double seconds) =>
        Assert.Throws<ArgumentException>(() => SbatchScript.Render(Request(timeout: seconds)));

    [Theory]
    [InlineData(0.0)]
    [InlineData(-1.0)]
    [InlineData(double.NaN)]
    public void Bad_cpus_are_refused(double cpus) => Assert.Throws<ArgumentException>(() => SbatchScript.Render(Request(cpus: cpus)));

    [Fact]
    public void Negative_gpus_and_memory()
    {
        Assert.Throws<ArgumentException>(() => SbatchScript.Render(Request(gpus: -1)));
        Assert.DoesNotContain("--mem", SbatchScript.Render(Request(mem: -5)));
    }

    [Theory]
    [InlineData("train\n#SBATCH --partition=evil", "train__SBATCH_--partition_evil")]
    [InlineData("a b\"c'd$(x)`y`", "a_b_c_d__x__y_")]
    [InlineData("héllo☃", "h_llo_")]
    [InlineData("", "sparky")]
    [InlineData("ok.name-1_2", "ok.name-1_2")]
    public void Job_names_are_sanitised(string name, string expected)
    {
        var script = SbatchScript.Render(Request(name: name));
        Assert.Equal("--job-name=" + expected, SlurmDirectives(script)[0]);
        Assert.Equal(5, SlurmDirectives(script).Count);
    }

    [Fact]
    public void Long_job_names_are_capped()
    {
        var name = SbatchScript.JobName(new string('x', 10_000));
        Assert.Equal(SbatchScript.MaxJobNameLength, name.Length);
    }

    [Theory]
    [InlineData("gpu\n#SBATCH --qos=evil")]
    [InlineData("gpu evil")]
    [InlineData("gpu;rm")]
    [InlineData("\"gpu\"")]
    [InlineData("")]
    [InlineData("gpu\n")]
    public void Hostile_partition_and_account_are_refused(string value)
    {
        var e = Assert.Throws<ArgumentException>(() => SbatchScript.Render(Request(partition: value)));
        Assert.Contains("invalid partition", e.Message);
        Assert.DoesNotContain("\n", e.Message); // the message shows the newline escaped
        Assert.Contains("invalid account", Assert.Throws<ArgumentException>(() => SbatchScript.Render(Request(account: value))).Message);
    }

    [Fact]
    public void Partition_lists_are_allowed() =>
        Assert.Contains("--partition=gpu,gpu-long", SlurmDirectives(SbatchScript.Render(Request(partition: "gpu,gpu-long"))));

    [Theory]
    [InlineData("/logs/a b.out")]
    [InlineData("/logs/a\n#SBATCH --partition=evil")]
    [InlineData("/logs/\"x\"")]
    [InlineData("/logs/#x")]
    [InlineData("")]
    public void Unsafe_log_paths_are_refused(string path)
    {
        Assert.Throws<ArgumentException>(() => SbatchScript.Render(Request(stdout: path)));
        Assert.Throws<ArgumentException>(() => SbatchScript.Render(Request(stderr: path)));
    }

    [Fact]
    public void Log_paths_may_use_slurm_patterns() =>
        Assert.Contains("--output=/logs/%A_%a.out", SlurmDirectives(SbatchScript.Render(Request(stdout: "/logs/%A_%a.out"))));

    [Theory]
    [InlineData("0-99")]
    [InlineData("1,3,5")]
    [InlineData("0-99:2")]
    [InlineData("0-15%4")]
    [InlineData("1,5-9:2,20%3")]
    [InlineData("7")]
    public void Valid_array_specs_pass(string spec) =>
        Assert.Contains("--array=" + spec, SlurmDirectives(SbatchScript.Render(Request(array: spec))));

    [Theory]
    [InlineData("%4")]
    [InlineData("")]
    [InlineData("9-1")]
    [InlineData("0-9:0")]
    [InlineData("0-9%0")]
    [InlineData("0-99\n#SBATCH --partition=evil")]
    [InlineData("0-99 --partition=evil")]
    [InlineData("1,,2")]
    [InlineData("a-b")]
    [InlineData("-1")]
    public void Invalid_array_specs_are_refused(string spec) =>
        Assert.Contains("invalid array spec", Assert.Throws<ArgumentException>(() => SbatchScript.Render(Request(array: spec))).Message);

    [Theory]
    [InlineData("-q")]
    [InlineData("qos=high")]
    [InlineData("--qos=high\n#SBATCH --partition=evil")]
    [InlineData("--qos=high\r")]
    [InlineData("--qos=a b")]
    [InlineData("--qos='a'")]
    [InlineData("--qos=\"a\"")]
    [InlineData("--qos=a\\b")]
    [InlineData("--qos=a#b")]
    [InlineData("--")]
    [InlineData("--qos=")]
    [InlineData("--qos=\0")]
    public void Bad_extra_options_are_refused(string option) =>
        Assert.Contains("invalid extra sbatch option", Assert.Throws<ArgumentException>(() => SbatchScript.Render(Request(extra: [option]))).Message);

    [Theory]
    [InlineData("1;2")]
    [InlineData("abc")]
    [InlineData("1\n#SBATCH --x")]
    [InlineData("")]
    public void Bad_dependency_ids_are_refused(string id) =>
        Assert.Throws<ArgumentException>(() => SbatchScript.Render(Request(after: [id])));

    [Theory]
    [InlineData("bad id")]
    [InlineData("x\n#SBATCH --partition=evil")]
    [InlineData("../etc")]
    [InlineData("")]
    public void Bad_task_ids_are_refused(string id)
    {
        Assert.Throws<ArgumentException>(() => SbatchScript.Render(Request(taskId: id)));
        Assert.Throws<ArgumentException>(() => SbatchScript.Comment(id, 1));
    }

    [Theory]
    [InlineData("1BAD")]
    [InlineData("A-B")]
    [InlineData("A B")]
    [InlineData("")]
    [InlineData("X\n#SBATCH --partition=evil")]
    [InlineData("X\n")]
    [InlineData("$(touch PWNED)")]
    [InlineData("É")]
    public void Invalid_env_keys_are_errors_not_dropped(string key)
    {
        var e = Assert.Throws<ArgumentException>(() => SbatchScript.Render(Request(env: new Dictionary<string, string> { [key] = "v" })));
        Assert.Contains("invalid environment variable name", e.Message);
    }

    [Fact]
    public void Nul_is_refused_everywhere_it_could_go()
    {
        Assert.Throws<ArgumentException>(() => SbatchScript.Render(Request(argv: ["echo", "a\0b"])));
        Assert.Throws<ArgumentException>(() => SbatchScript.Render(Request(env: new Dictionary<string, string> { ["K"] = "a\0" })));
        Assert.Throws<ArgumentException>(() => SbatchScript.Render(Request(cwd: "/tmp\0x")));
    }

    [Fact]
    public void Empty_argv_or_program_is_refused()
    {
        Assert.Throws<ArgumentException>(() => SbatchScript.Render(Request(argv: [])));
        Assert.Throws<ArgumentException>(() => SbatchScript.Render(Request(argv: [""])));
    }

    [Fact]
    public void Comment_round_trips_to_task_id()
    {
        Assert.Equal("sparky:abc.1-2_3:2", SbatchScript.Comment("abc.1-2_3", 2));
        Assert.Equal("abc.1-2_3", SbatchScript.TaskIdFromComment("sparky:abc.1-2_3:2"));
        Assert.Equal(2, SbatchScript.AttemptFromComment("sparky:abc.1-2_3:2"));
        // An earlier daemon's comment, without the attempt: the task, and no attempt.
        Assert.Equal("abc.1-2_3", SbatchScript.TaskIdFromComment("sparky:abc.1-2_3"));
        Assert.Null(SbatchScript.AttemptFromComment("sparky:abc.1-2_3"));
        foreach (var bad in new[] { "sparky:abc:", "sparky:abc:x", "sparky:abc:-1", "sparky:abc:1:2", "sparky:abc:1234567890", "sparky::1" })
        {
            Assert.Null(SbatchScript.TaskIdFromComment(bad));
            Assert.Null(SbatchScript.AttemptFromComment(bad));
        }
        Assert.Null(SbatchScript.TaskIdFromComment("sparky:"));
        Assert.Null(SbatchScript.TaskIdFromComment("sparky:bad id"));
        Assert.Null(SbatchScript.TaskIdFromComment("other:abc"));
        Assert.Null(SbatchScript.TaskIdFromComment(null));
    }

    /// <summary>Hostile values in every body position: none adds a directive, and the directives are exactly
    /// those of the same request with tame values.</summary>
    [Fact]
    public void Hostile_body_values_never_add_directives()
    {
        foreach (var hostile in Hostile.Values)
        {
            var script = SbatchScript.Render(Request(argv: ["printf", hostile], cwd: hostile,
                env: new Dictionary<string, string> { ["EVIL"] = hostile }));
            Assert.Equal(SlurmDirectives(SbatchScript.Render(Request())), SlurmDirectives(script));
        }
    }
}

/// <summary>Values that would add directives or run code if they were not quoted right.</summary>
internal static class Hostile
{
    public static readonly string[] Values =
    [
        "a\n#SBATCH --partition=evil",
        "\n#SBATCH --partition=evil\n",
        "'; rm -f victim; '",
        "$(touch PWNED)",
        "`touch PWNED`",
        "#SBATCH --qos=evil",
        "\"; touch PWNED; \"",
        "'\\''",
        "\\",
        "$HOME ${HOME} $((1+1)) !! !$ ~ * ? [a] {a,b}",
        "a'b\"c\\d$e`f`g",
        "line1\nline2\r\nline3\r",
        "tab\there;touch PWNED&&touch PWNED|touch PWNED>PWNED<x",
        "héllo wörld ☃ 🎉 ä̈ \u200b \u202e",
        "",
        " ",
        "-n",
        "--",
        "'",
        "''",
        "'\n'",
        "\u0001\u0007\u001b[31m",
        new string('x', 50_000) + "'$(touch PWNED)'" + new string('y', 1000),
    ];
}
