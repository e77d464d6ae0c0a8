using System.Diagnostics;
using Sparky.Execution.Slurm;
using static Sparky.Execution.Tests.Slurm.SbatchScriptTests;

namespace Sparky.Execution.Tests.Slurm;

/// <summary><c>&lt;class&gt;_sbatch_template</c>: placeholders filled from a payload, every value checked, and the script
/// Sparky writes around the template (its directives after the template's, so they win).</summary>
public sealed class SbatchTemplateTests
{
    private const string Template = """
        #!/bin/bash
        #SBATCH -J train_{{payload.method|grpo}}
        #SBATCH --gpus-per-node={{payload.gpus|1}}
        #SBATCH --output=/somewhere/else.out
        # Task: {{task_id}}

        set -euo pipefail
        echo "method={{payload.method}} module={{payload.module|orchestrator}} model={{ payload.model }} lr={{payload.opt.lr}} fast={{payload.fast}}"
        """;

    [Fact]
    public void Placeholders_take_strings_numbers_booleans_nested_fields_and_defaults()
    {
        var (text, errors) = SbatchTemplate.Fill(Template,
            """{"method":"grpo","model":"meta-llama/Llama-3-8B","opt":{"lr":1e-5},"fast":true,"gpus":2}""", "t-42");
        Assert.Empty(errors);
        Assert.Contains("#SBATCH -J train_grpo\n", text);
        Assert.Contains("#SBATCH --gpus-per-node=2\n", text);
        Assert.Contains("# Task: t-42\n", text);
        Assert.Contains("""echo "method=grpo module=orchestrator model=meta-llama/Llama-3-8B lr=1e-5 fast=true" """.TrimEnd(), text);
    }

    [Theory]
    [InlineData("""{"method":"grpo","model":"x; rm -rf /","opt":{"lr":1},"fast":true}""", "payload.model", "';'")]
    [InlineData("""{"method":"grpo","model":"a\nb","opt":{"lr":1},"fast":true}""", "payload.model", "a newline")]
    [InlineData("""{"method":"grpo","model":"a b","opt":{"lr":1},"fast":true}""", "payload.model", "a space")]
    [InlineData("""{"method":"$(touch PWNED)","model":"m","opt":{"lr":1},"fast":true}""", "payload.method", "'$'")]
    [InlineData("""{"method":"grpo","model":"it's","opt":{"lr":1},"fast":true}""", "payload.model", "'''")]
    [InlineData("""{"method":"grpo","model":"\"q\"","opt":{"lr":1},"fast":true}""", "payload.model", "'\"'")]
    [InlineData("""{"method":"grpo","model":"a`id`","opt":{"lr":1},"fast":true}""", "payload.model", "'`'")]
    [InlineData("""{"method":"grpo","model":"m","opt":{"lr":"1\r"},"fast":true}""", "payload.opt.lr", "a carriage return")]
    [InlineData("""{"method":"grpo","opt":{"lr":1},"fast":true}""", "payload.model", "has no payload.model")]
    [InlineData("""{"method":"grpo","model":"m","opt":5,"fast":true}""", "payload.opt is a number", "not an object")]
    [InlineData("""{"method":"grpo","model":"m","opt":{"lr":[1]},"fast":true}""", "payload.opt.lr is an array", "string, a number or a boolean")]
    [InlineData("""{"method":"grpo","model":null,"opt":{"lr":1},"fast":true}""", "payload.model is null", "string, a number or a boolean")]
    [InlineData("\"just a string\"", "payload is a string", "not an object")]
    public void A_value_that_could_break_out_is_refused_naming_its_field(string payload, string field, string why)
    {
        var (text, errors) = SbatchTemplate.Fill(Template, payload, "t-1");
        Assert.Null(text);
        Assert.Contains(errors, e => e.Contains(field, StringComparison.Ordinal) && e.Contains(why, StringComparison.Ordinal));
    }

    [Fact]
    public void Every_refused_field_is_named_at_once_and_unknown_placeholders_are_the_templates_fault()
    {
        var (_, errors) = SbatchTemplate.Fill(Template, """{"method":"a;b","model":"c d","opt":{},"fast":{}}""", "t");
        Assert.Equal(4, errors.Count); // method, model, opt.lr (missing), fast (an object)
        var (_, bad) = SbatchTemplate.Fill("echo {{home}} {{payload.a b}} {{payload.x|a b}}", """{"x":null}""", "t");
        Assert.Contains(bad, e => e.Contains("{{home}} at line 1", StringComparison.Ordinal));
        Assert.Contains(bad, e => e.Contains("{{payload.a b}}", StringComparison.Ordinal));
        Assert.Contains(bad, e => e.Contains("the template's default for payload.x", StringComparison.Ordinal));
    }

    [Fact]
    public void Sparkys_directives_come_after_the_templates_so_sbatch_keeps_sparkys()
    {
        var (filled, _) = SbatchTemplate.Fill(Template, """{"method":"sft","model":"gpt2","opt":{"lr":0.1},"fast":false}""", "01jb3kz8m2q");
        var script = SbatchScript.Render(Request(argv: [], env: new Dictionary<string, string> { ["SPARKY_PAYLOAD_FILE"] = "/d/run/t.1.payload.json" }) with { Template = filled });
        Assert.StartsWith("#!/bin/bash\n#SBATCH -J train_sft\n", script);
        Assert.Single(script.Split('\n'), l => l.StartsWith("#!", StringComparison.Ordinal));
        var directives = SlurmDirectives(script);
        Assert.Equal(new[]
        {
            "-J train_sft", "--gpus-per-node=1", "--output=/somewhere/else.out",
            "--job-name=01jb3kz8m2q", "--output=/var/sparky/logs/t.out", "--error=/var/sparky/logs/t.err",
            "--comment=sparky:01jb3kz8m2q:1", "--open-mode=append",
        }, directives);
        // Then Sparky's environment, then the template's body as it is.
        var body = script[script.IndexOf("\nexport SPARKY_PAYLOAD_FILE=", StringComparison.Ordinal)..];
        Assert.Contains("export SPARKY_TASK_ID='01jb3kz8m2q' SPARKY_ATTEMPT='1'\nset -euo pipefail\necho \"method=sft ", body);
        Assert.DoesNotContain("exec", body);
    }

    [Fact]
    public void A_handler_on_slurm_reads_its_payload_on_stdin()
    {
        var script = SbatchScript.Render(Request(argv: ["python3", "/opt/h.py"]) with { StdinPath = "/d/run/it's.payload.json" });
        Assert.EndsWith("\nexec 'python3' '/opt/h.py' <'/d/run/it'\\''s.payload.json'\n", script);
    }

    [Fact]
    public void A_filled_template_runs_in_bash_with_the_values_in_place()
    {
        var root = Directory.CreateTempSubdirectory("sparky-template-").FullName;
        try
        {
            var (filled, errors) = SbatchTemplate.Fill("#!/bin/bash\nset -eu\nprintf '%s|%s|%s\\n' {{payload.model}} \"{{payload.n}}\" {{task_id}} > out.txt\n",
                """{"model":"org/model-7b:v1","n":3}""", "task-9");
            Assert.Empty(errors);
            var script = SbatchScript.Render(Request(argv: [], taskId: "task-9") with { Template = filled });
            File.WriteAllText(Path.Combine(root, "job.sh"), script);
            var psi = new ProcessStartInfo("bash", ["job.sh"]) { WorkingDirectory = root, RedirectStandardError = true };
            using var p = Process.Start(psi)!;
            Assert.True(p.WaitForExit(30_000));
            Assert.True(p.ExitCode == 0, p.StandardError.ReadToEnd());
            Assert.Equal("org/model-7b:v1|3|task-9\n", File.ReadAllText(Path.Combine(root, "out.txt")));
        }
        finally { Directory.Delete(root, recursive: true); }
    }

    [Fact]
    public void The_shipped_example_template_fills_from_the_replaced_systems_payload_and_is_valid_bash()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (!File.Exists(Path.Combine(dir!.FullName, "Sparky.slnx"))) dir = dir.Parent;
        var template = File.ReadAllText(Path.Combine(dir.FullName, "examples", "handlers", "train_methodology.sbatch"));
        var (filled, errors) = SbatchTemplate.Fill(template, """{"method":"grpo","module":"orchestrator","model":"gpt2","dataset":"test_dataset.jsonl","gpus":2}""", "test_slurm_001");
        Assert.Empty(errors);
        var script = SbatchScript.Render(Request(argv: [], taskId: "test_slurm_001") with { Template = filled });
        var directives = SlurmDirectives(script);
        Assert.Contains("--gpus-per-node=2", directives);
        Assert.Contains("--time=01:00:00", directives);
        Assert.Equal("--comment=sparky:test_slurm_001:1", directives.Single(x => x.StartsWith("--comment", StringComparison.Ordinal)));
        Assert.Contains("MODEL=gpt2\n", script);
        var root = Directory.CreateTempSubdirectory("sparky-example-").FullName;
        try
        {
            File.WriteAllText(Path.Combine(root, "job.sh"), script);
            using var p = Process.Start(new ProcessStartInfo("bash", ["-n", Path.Combine(root, "job.sh")]) { RedirectStandardError = true })!;
            Assert.True(p.WaitForExit(30_000));
            Assert.True(p.ExitCode == 0, p.StandardError.ReadToEnd());
        }
        finally { Directory.Delete(root, recursive: true); }
        Assert.Contains(SbatchTemplate.Fill(template, """{"method":"grpo","model":"x; rm -rf /"}""", "t").Errors, e => e.Contains("payload.model", StringComparison.Ordinal));
    }
}
