using static Sparky.Plans.Tests.PlanFileTests;

namespace Sparky.Plans.Tests;

/// <summary>Each error the parser gives, with its exact message, line and column.</summary>
public class PlanErrorTests
{
    [Fact]
    public void Unknown_key_in_a_phase()
    {
        Assert.Equal(["plan.yaml:4:5: unknown key 'wrkstreams' in a phase (known: name, workstreams, gate)",
                      "plan.yaml:3:5: phase 'p' has no workstreams"], Errors("""
            name: x
            phases:
              - name: p
                wrkstreams:
                  - {name: w, run: x}
            """).OrderBy(e => e.Contains("unknown") ? 0 : 1));
    }

    [Fact]
    public void Unknown_keys_anywhere_are_all_reported()
    {
        Assert.Equal([
            "plan.yaml:2:1: unknown key 'varz' in the plan (known: name, vars, env, defaults, phases)",
            "plan.yaml:4:3: unknown key 'gpu' in defaults (known: class, cpus, mem, gpus, gpu_mem, port, nodes, gpus_per_node, procs_per_node, exclusive, retries, timeout, env, cwd)",
            "plan.yaml:10:9: unknown key 'retry' in a workstream (known: name, run, class, cpus, mem, gpus, gpu_mem, port, nodes, gpus_per_node, procs_per_node, exclusive, retries, timeout, env, cwd, array, on_failure)",
            "plan.yaml:14:13: unknown key 'afer' in a task (known: name, run, class, cpus, mem, gpus, gpu_mem, port, nodes, gpus_per_node, procs_per_node, exclusive, retries, timeout, env, cwd, after, array)",
            "plan.yaml:17:36: unknown key 'min_value' in metric (known: file, path, min, max, equals)",
        ], Errors("""
            name: x
            varz: {a: 1}
            defaults:
              gpu: 1
            phases:
              - name: p
                workstreams:
                  - name: w
                    run: x
                    retry: 2
                  - name: v
                    tasks:
                      - name: t
                        afer: w
                        run: y
                gate:
                  - metric: {file: f, path: a, min_value: 1, min: 1}
            """));
    }

    [Fact]
    public void Duplicate_names()
    {
        Assert.Equal([
            "plan.yaml:7:15: duplicate workstream name 'w' in phase 'p' (first at 5:15)",
            "plan.yaml:13:19: duplicate task name 't' in workstream 'v' (first at 11:19)",
            "plan.yaml:15:11: duplicate phase name 'p' (first at 3:11)",
        ], Errors("""
            name: x
            phases:
              - name: p
                workstreams:
                  - name: w
                    run: a
                  - name: w
                    run: b
                  - name: v
                    tasks:
                      - name: t
                        run: a
                      - name: t
                        run: b
              - name: p
                workstreams: [{name: z, run: c}]
            """).Select(e => e).ToArray());
    }

    [Fact]
    public void An_empty_phase()
    {
        Assert.Equal(["plan.yaml:3:5: phase 'empty' has no workstreams",
                      "plan.yaml:6:18: phase 'also' has no workstreams"], Errors("""
            name: x
            phases:
              - name: empty
                gate: [{file: a}]
              - name: also
                workstreams: []
            """));
    }

    [Fact]
    public void A_cycle_in_after_is_named()
    {
        Assert.Equal(["plan.yaml:10:21: a cycle in after: a -> b -> a",
                      "plan.yaml:13:38: a cycle in after: c -> c"], Errors("""
            name: x
            phases:
              - name: p
                workstreams:
                  - name: w
                    tasks:
                      - {name: a, run: x, after: b}
                      - name: b
                        run: y
                        after: [a]
                  - name: self
                    tasks:
                      - {name: c, run: z, after: c}
            """));
    }

    [Fact]
    public void A_longer_cycle_is_reported_once()
    {
        Assert.Equal(["plan.yaml:8:38: a cycle in after: a -> c -> b -> a"], Errors("""
            name: x
            phases:
              - name: p
                workstreams:
                  - name: w
                    tasks:
                      - {name: a, run: x, after: c}
                      - {name: b, run: x, after: a}
                      - {name: c, run: x, after: [b]}
            """));
    }

    [Fact]
    public void After_naming_an_unknown_task()
    {
        Assert.Equal(["plan.yaml:9:21: after: 'fetchh' is not a task of workstream 'w' (tasks: fetch, use)"], Errors("""
            name: x
            phases:
              - name: p
                workstreams:
                  - name: w
                    tasks:
                      - {name: fetch, run: x}
                      - name: use
                        after: [fetchh]
                        run: y
            """));
    }

    [Fact]
    public void A_gate_check_of_an_unknown_kind()
    {
        Assert.Equal([
            "plan.yaml:6:9: a gate check of an unknown kind 'script' (known: run, metric, file)",
            "plan.yaml:7:18: a gate check has one kind, not both 'run' and 'file'",
            "plan.yaml:8:9: a gate check must be a mapping with one of run, metric, file; got 'test -s x'",
        ], Errors("""
            name: x
            phases:
              - name: p
                workstreams: [{name: w, run: x}]
                gate:
                  - script: test -s x
                  - {run: a, file: b}
                  - test -s x
            """));
    }

    [Fact]
    public void Wrong_types()
    {
        Assert.Equal([
            "plan.yaml:2:9: phases must be a list of phases, got a number (5)",
        ], Errors("""
            name: x
            phases: 5
            """));
        Assert.Equal([
            "plan.yaml:7:16: tasks must be a list of tasks, got a number (3)",
            "plan.yaml:9:14: run must be a list of strings or a shell string, got a mapping",
            "plan.yaml:10:15: cpus must be a non-negative number, got 'many'",
            "plan.yaml:11:15: gpus must be an integer from 0 to 1024, got a number (1.5)",
            "plan.yaml:12:18: retries must be an integer from 0 to 100, got a number (-1)",
            "plan.yaml:13:14: env must be a mapping of names to values, got a list",
            "plan.yaml:14:43: after must list task names, got a mapping",
            "plan.yaml:16:11: gate must be a list of checks, got 'yes'",
        ], Errors("""
            name: x
            phases:
              - name: p
                workstreams:
                  - name: a
                    on_failure: stop
                    tasks: 3
                  - name: b
                    run: {cmd: x}
                    cpus: many
                    gpus: 1.5
                    retries: -1
                    env: [A=1]
                  - tasks: [{name: t, run: x, after: [{x: 1}]}]
                    name: c
                gate: yes
            """));
    }

    [Fact]
    public void Missing_name_and_run()
    {
        Assert.Equal([
            "plan.yaml:1:1: the plan needs a name",
            "plan.yaml:2:5: a phase needs a name",
            "plan.yaml:5:9: workstream 'w' needs run: (one task) or tasks: (a list of tasks)",
            "plan.yaml:7:9: a workstream needs a name",
            "plan.yaml:8:13: a task needs a name",
            "plan.yaml:9:13: task 't' needs run: (a command: a list of arguments or a shell string)",
        ], Errors("""
            phases:
              - workstreams: [{name: v, run: x}]
              - name: p
                workstreams:
                  - name: w
                    tasks_: []
                  - tasks:
                      - run: x
                      - name: t
            """).Where(e => !e.Contains("unknown key")));
    }

    [Fact]
    public void Bad_durations_sizes_arrays_and_on_failure()
    {
        Assert.Equal([
            "plan.yaml:3:12: timeout must be a duration such as 90, 30s, 5m, 1h; got 'soon'",
            "plan.yaml:9:14: mem must be a size such as 512M or 4G; got 'lots'",
            "plan.yaml:10:18: gpu_mem must be a size such as 20G or 512M; got '0'".Replace("20G or 512M", "512M or 4G"),
            "plan.yaml:11:16: array range '9-1' is not FIRST-LAST[:STEP] with FIRST <= LAST",
            "plan.yaml:12:21: on_failure must be stop or continue, got 'ignore'",
            "plan.yaml:15:18: timeout must be a duration such as 90, 30s, 5m, 1h; got '-5'",
        ], Errors("""
            name: x
            defaults:
              timeout: soon
            phases:
              - name: p
                workstreams:
                  - name: w
                    run: x
                    mem: lots
                    gpu_mem: 0
                    array: 9-1
                    on_failure: ignore
                gate:
                  - run: x
                    timeout: -5
            """));
    }

    [Fact]
    public void A_gpu_share_cannot_go_with_several_gpus()
    {
        Assert.Equal(["plan.yaml:7:18: gpu_mem is a share of one GPU; it cannot go with gpus > 1 (ask for whole GPUs, or for a share)"], Errors("""
            name: x
            phases:
              - name: p
                workstreams:
                  - name: w
                    run: x
                    gpu_mem: 10G
                    gpus: 2
            """));
    }

    [Fact]
    public void An_undefined_var()
    {
        Assert.Equal([
            "plan.yaml:7:14: undefined variable 'dta' (known: data, n)",
            "plan.yaml:8:18: undefined variable 'nn' (known: data, n)",
            "plan.yaml:10:22: undefined variable 'x' (known: data, n)",
        ], Errors("""
            name: x
            vars: {data: /d, n: 2}
            phases:
              - name: p
                workstreams:
                  - name: w
                    run: ls ${dta}
                    env: {N: "${nn}"}
                gate:
                  - file: {path: "${x}/y"}
            """).Select(e => e).ToArray());
        Assert.Equal(["plan.yaml:4:34: undefined variable 'out' (the plan defines no vars)"], Errors("""
            name: x
            phases:
              - name: p
                workstreams: [{name: w, run: "cd ${out}"}]
            """));
    }

    [Fact]
    public void Malformed_yaml_keeps_the_same_shape()
    {
        var errors = Errors("""
            name: x
            phases:
              - name: p
                workstreams: [{name: w, run: x}
              - name: q
            """);
        var e = Assert.Single(errors);
        Assert.Matches(@"^plan\.yaml:\d+:\d+: malformed YAML: \S", e);
        Assert.DoesNotContain("Line:", e);
        Assert.Equal(["plan.yaml:1:1: the plan file is empty (want name and phases)"], Errors("# nothing\n"));
        Assert.Equal(["plan.yaml:1:1: a plan must be a mapping with name and phases, got a list"], Errors("- a\n- b\n"));
        var dup = Assert.Single(Errors("name: x\nname: y\nphases: []\n"));
        Assert.StartsWith("plan.yaml:2:1: malformed YAML: ", dup);
    }

    [Fact]
    public void A_bad_plan_name_and_a_bad_metric()
    {
        Assert.Equal([
            "plan.yaml:1:7: plan name 'my plan' must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit (it names the plan's folder and URL)",
            "plan.yaml:6:17: metric needs min, max or equals",
            "plan.yaml:7:33: metric path 'a..b' is malformed (want dot-separated keys and [index], such as eval.scores[0].f1)",
            "plan.yaml:8:41: metric min 2 is above max 1: nothing can pass",
            "plan.yaml:9:17: metric needs path",
        ], Errors("""
            name: my plan
            phases:
              - name: p
                workstreams: [{name: w, run: x}]
                gate:
                  - metric: {file: f, path: a}
                  - metric: {file: f, path: "a..b", min: 1}
                  - metric: {file: f, path: a, min: 2, max: 1}
                  - metric: {file: f, min: 1}
            """));
    }

    [Fact]
    public void Load_names_the_file_and_reports_a_missing_one()
    {
        var dir = Directory.CreateTempSubdirectory("sparky-plan-");
        try
        {
            var path = Path.Combine(dir.FullName, "p.yaml");
            File.WriteAllText(path, "name: x\nphases:\n  - name: p\n    workstreams: [{name: w, run: x, bogus: 1}]\n");
            var r = PlanFile.Load(path);
            Assert.Equal($"{path}:4:37: unknown key 'bogus' in a workstream (known: name, run, class, cpus, mem, gpus, gpu_mem, port, nodes, gpus_per_node, procs_per_node, exclusive, retries, timeout, env, cwd, array, on_failure)", r.ErrorText);
            var missing = PlanFile.Load(Path.Combine(dir.FullName, "nope.yaml"));
            Assert.StartsWith($"{Path.Combine(dir.FullName, "nope.yaml")}:0:0: cannot read the plan file:", missing.ErrorText);
        }
        finally { dir.Delete(true); }
    }
}
