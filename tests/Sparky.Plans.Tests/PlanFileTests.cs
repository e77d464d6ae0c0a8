namespace Sparky.Plans.Tests;

public class PlanFileTests
{
    internal const string SpecExample = """
        name: nightly
        phases:
          - name: prepare
            workstreams:
              - name: fetch
                run: ./fetch.sh
              - name: tokenize
                run: [python, tok.py, --shards, "8"]
                class: cpu_long
            gate:
              - run: test -s data/tokens.bin           # exit 0 passes
          - name: train
            workstreams:
              - name: sft
                run: torchrun train.py
                class: gpu
                gpus: 1
                retries: 2
            gate:
              - metric: {file: out/eval.json, path: accuracy, min: 0.8}
        """;

    internal static Plan Parse(string yaml, IReadOnlyDictionary<string, string>? vars = null)
    {
        var r = PlanFile.Parse(yaml, "plan.yaml", vars);
        Assert.True(r.Ok, r.ErrorText);
        return r.Plan!;
    }

    /// <summary>Every error as <c>file:line:col: message</c>.</summary>
    internal static string[] Errors(string yaml)
    {
        var r = PlanFile.Parse(yaml, "plan.yaml");
        Assert.False(r.Ok);
        Assert.Null(r.Plan);
        return r.Errors.Select(e => e.ToString()).ToArray();
    }

    [Fact]
    public void The_spec_example_parses()
    {
        var plan = Parse(SpecExample);
        Assert.Equal("nightly", plan.Name);
        Assert.Equal(["prepare", "train"], plan.Phases.Select(p => p.Name));

        var prepare = plan.Phases[0];
        Assert.Equal(["fetch", "tokenize"], prepare.Workstreams.Select(w => w.Name));
        var fetch = Assert.Single(prepare.Workstreams[0].Tasks);
        Assert.True(prepare.Workstreams[0].Single);
        Assert.Equal("fetch", fetch.Name);
        Assert.Equal("./fetch.sh", fetch.Shell);
        Assert.Null(fetch.Argv);
        Assert.Null(fetch.Options.Class);
        var tok = prepare.Workstreams[1].Tasks[0];
        Assert.Equal(["python", "tok.py", "--shards", "8"], tok.Argv!);
        Assert.Equal("cpu_long", tok.Options.Class);
        var gate = Assert.IsType<RunCheck>(Assert.Single(prepare.Gate));
        Assert.Equal("test -s data/tokens.bin", gate.Shell);

        var sft = plan.Phases[1].Workstreams[0].Tasks[0];
        Assert.Equal("gpu", sft.Options.Class);
        Assert.Equal(1, sft.Options.Gpus);
        Assert.Equal(2, sft.Options.Retries);
        var metric = Assert.IsType<MetricCheck>(Assert.Single(plan.Phases[1].Gate));
        Assert.Equal(("out/eval.json", "accuracy", 0.8, (double?)null), (metric.File, metric.Path, metric.Min!.Value, metric.Max));
        Assert.Equal(OnFailure.Stop, plan.Phases[1].Workstreams[0].OnFailure);
        Assert.All(plan.Phases.SelectMany(p => p.Workstreams), w => Assert.Matches("^[0-9a-f]{64}$", w.Hash));
    }

    [Fact]
    public void Every_submit_option_has_a_key()
    {
        var plan = Parse("""
            name: all
            phases:
              - name: p
                workstreams:
                  - name: w
                    run: [./x, "a b"]
                    class: gpu
                    cpus: 2.5
                    mem: 4G
                    gpus: 0
                    gpu_mem: 20G
                    retries: 3
                    timeout: 1h30m
                    env: {SEED: 1, MODE: fast}
                    cwd: work/dir
                    array: 0-9:3
                    on_failure: continue
            """);
        var w = plan.Phases[0].Workstreams[0];
        var t = w.Tasks[0];
        Assert.Equal(OnFailure.Continue, w.OnFailure);
        Assert.Equal("gpu", t.Options.Class);
        Assert.Equal(2.5, t.Options.Cpus);
        Assert.Equal(4096, t.Options.MemoryMb);
        Assert.Equal(0, t.Options.Gpus);
        Assert.Equal(20480, t.Options.GpuMemoryMb);
        Assert.Equal(3, t.Options.Retries);
        Assert.Equal(5400, t.Options.TimeoutSeconds);
        Assert.Equal(new Dictionary<string, string> { ["SEED"] = "1", ["MODE"] = "fast" }, t.Options.Env);
        Assert.Equal("work/dir", t.Options.Cwd);
        Assert.Equal("0-9:3", t.Array!.Value.ToString());
    }

    [Fact]
    public void A_workstream_of_tasks_with_after()
    {
        var plan = Parse("""
            name: chain
            phases:
              - name: build
                workstreams:
                  - name: pipeline
                    on_failure: continue
                    tasks:
                      - name: a
                        run: echo a
                      - name: b
                        run: echo b
                        after: a
                      - name: c
                        run: echo c
                        after: [a, b]
            """);
        var w = plan.Phases[0].Workstreams[0];
        Assert.False(w.Single);
        Assert.Equal(["a", "b", "c"], w.Tasks.Select(t => t.Name));
        Assert.Equal([], w.Tasks[0].After);
        Assert.Equal(["a"], w.Tasks[1].After);
        Assert.Equal(["a", "b"], w.Tasks[2].After);
    }

    [Fact]
    public void Defaults_apply_where_a_task_sets_nothing_and_env_merges()
    {
        var plan = Parse("""
            name: d
            env: {A: plan, B: plan}
            defaults:
              class: cpu_long
              retries: 1
              timeout: 10m
              mem: 512M
              cwd: /srv
              env: {B: defaults, C: defaults}
            phases:
              - name: p
                workstreams:
                  - name: plain
                    run: x
                  - name: own
                    run: y
                    class: gpu
                    retries: 0
                    cwd: /tmp
                    env: {C: task}
            """);
        var plain = plan.Phases[0].Workstreams[0].Tasks[0];
        var own = plan.Phases[0].Workstreams[1].Tasks[0];
        Assert.Equal(("cpu_long", 1, 600.0, 512L, "/srv"), (plain.Options.Class, plain.Options.Retries!.Value, plain.Options.TimeoutSeconds!.Value, plain.Options.MemoryMb!.Value, plain.Options.Cwd));
        Assert.Equal(("gpu", 0, 600.0, "/tmp"), (own.Options.Class, own.Options.Retries!.Value, own.Options.TimeoutSeconds!.Value, own.Options.Cwd));
        Assert.Equal(new Dictionary<string, string> { ["A"] = "plan", ["B"] = "defaults", ["C"] = "defaults" }, plain.Options.Env);
        Assert.Equal(new Dictionary<string, string> { ["A"] = "plan", ["B"] = "defaults", ["C"] = "task" }, own.Options.Env);
        Assert.Equal("cpu_long", plan.Defaults.Class);
    }

    [Fact]
    public void Vars_are_substituted_in_every_string_and_escaped_with_a_double_dollar()
    {
        var plan = Parse("""
            name: v
            vars: {data: /mnt/data, n: "8", model: base}
            env: {ROOT: "${data}"}
            phases:
              - name: p
                workstreams:
                  - name: w
                    run: [python, tok.py, --shards, "${n}", --out, "${data}/tok"]
                    cwd: ${data}/work
                    gpus: ${n}
                    env: {M: "${model}-v2", HOME_AS_IS: "$${HOME}", PLAIN: $HOME}
                  - name: s
                    run: echo ${model} $$HOME $${x}
                gate:
                  - run: test -s ${data}/tok
                  - metric: {file: "${data}/eval.json", path: "scores.${model}", min: 0.5}
                  - file: {path: "${data}/x", non_empty: true}
            """);
        var w = plan.Phases[0].Workstreams[0].Tasks[0];
        Assert.Equal(["python", "tok.py", "--shards", "8", "--out", "/mnt/data/tok"], w.Argv!);
        Assert.Equal("/mnt/data/work", w.Options.Cwd);
        Assert.Equal(8, w.Options.Gpus);
        Assert.Equal("/mnt/data", w.Options.Env["ROOT"]);
        Assert.Equal("base-v2", w.Options.Env["M"]);
        Assert.Equal("${HOME}", w.Options.Env["HOME_AS_IS"]);
        Assert.Equal("$HOME", w.Options.Env["PLAIN"]);
        Assert.Equal("echo base $$HOME ${x}", plan.Phases[0].Workstreams[1].Tasks[0].Shell);
        var gate = plan.Phases[0].Gate;
        Assert.Equal("test -s /mnt/data/tok", ((RunCheck)gate[0]).Shell);
        Assert.Equal(("/mnt/data/eval.json", "scores.base"), (((MetricCheck)gate[1]).File, ((MetricCheck)gate[1]).Path));
        Assert.Equal("/mnt/data/x", ((FileCheck)gate[2]).Path);
        Assert.True(((FileCheck)gate[2]).NonEmpty);
    }

    [Fact]
    public void Vars_given_by_the_caller_override_the_file()
    {
        var plan = Parse("""
            name: v
            vars: {out: /tmp/a}
            phases:
              - name: p
                workstreams:
                  - {name: w, run: "ls ${out} ${extra}"}
            """, new Dictionary<string, string> { ["out"] = "/data/b", ["extra"] = "-l" });
        Assert.Equal("ls /data/b -l", plan.Phases[0].Workstreams[0].Tasks[0].Shell);
    }

    [Fact]
    public void A_var_from_outside_must_have_a_var_name()
    {
        Assert.Null(PlanFile.CheckVars(new Dictionary<string, string> { ["out"] = "/x", ["_n2"] = "" }));
        Assert.Contains("'2x'", PlanFile.CheckVars(new Dictionary<string, string> { ["2x"] = "y" }));
        Assert.Contains("'a-b'", PlanFile.CheckVars(new Dictionary<string, string> { ["a-b"] = "y" }));
        var r = PlanFile.Parse("name: v\nphases:\n  - name: p\n    workstreams: [{name: w, run: x}]\n", "plan.yaml", new Dictionary<string, string> { ["a b"] = "y" });
        Assert.False(r.Ok);
        Assert.Contains("'a b'", r.ErrorText);
    }

    [Fact]
    public void Gate_checks_of_every_kind()
    {
        var plan = Parse("""
            name: g
            phases:
              - name: p
                workstreams: [{name: w, run: x}]
                gate:
                  - run: [test, -s, out.bin]
                    timeout: 30s
                    name: output exists
                  - metric: {file: m.json, path: "eval.scores[2].f1", max: 0.5, min: 0.1}
                  - metric: {file: m.json, path: status, equals: done}
                  - file: plain.txt
                  - file: {path: nonempty.txt, non_empty: true}
            """);
        var gate = plan.Phases[0].Gate;
        var run = Assert.IsType<RunCheck>(gate[0]);
        Assert.Equal(["test", "-s", "out.bin"], run.Argv!);
        Assert.Equal(30, run.TimeoutSeconds);
        Assert.Equal("output exists", run.Name);
        var m = Assert.IsType<MetricCheck>(gate[1]);
        Assert.Equal((0.1, 0.5), (m.Min!.Value, m.Max!.Value));
        Assert.Equal("metric m.json eval.scores[2].f1 >= 0.1, <= 0.5", m.Describe());
        Assert.Equal("done", Assert.IsType<MetricCheck>(gate[2]).EqualsValue);
        Assert.False(Assert.IsType<FileCheck>(gate[3]).NonEmpty);
        Assert.True(Assert.IsType<FileCheck>(gate[4]).NonEmpty);
        Assert.Equal(new SourcePos(6, 9), run.Pos);
    }

    [Fact]
    public void A_phase_without_a_gate_has_an_empty_one_and_positions_point_at_names()
    {
        var plan = Parse("""
            name: x
            phases:
              - name: only
                workstreams:
                  - name: w
                    run: true
            """);
        Assert.Empty(plan.Phases[0].Gate);
        Assert.Equal(new SourcePos(3, 11), plan.Phases[0].Pos);
        Assert.Equal(new SourcePos(5, 15), plan.Phases[0].Workstreams[0].Pos);
    }
}
