using static Sparky.Plans.Tests.PlanFileTests;

namespace Sparky.Plans.Tests;

public class SpecHashTests
{
    private static string[] Hashes(Plan p) => p.Phases.SelectMany(ph => ph.Workstreams.Select(w => w.Hash)).ToArray();

    [Fact]
    public void The_same_file_gives_the_same_hashes()
    {
        Assert.Equal(Hashes(Parse(SpecExample)), Hashes(Parse(SpecExample)));
        Assert.Equal(Parse(SpecExample).Phases.Select(p => p.GateKey), Parse(SpecExample).Phases.Select(p => p.GateKey));
        // Pinned: a hash that moved between versions would re-run every finished workstream after an upgrade.
        var plan = Parse(SpecExample);
        Assert.Equal("""{"phase":"prepare","workstream":"fetch","tasks":[{"name":"fetch","shell":"./fetch.sh"}]}""",
            SpecHash.CanonicalJson("prepare", plan.Phases[0].Workstreams[0]));
        Assert.Equal("5ff828ec8110dd2c234233a348b3bd4b2df89a06d347de3ce6a5a219a4d8c6b1", Hashes(plan)[0]);
    }

    [Fact]
    public void Comments_whitespace_style_and_key_order_do_not_change_a_hash()
    {
        var restyled = """
            # the nightly run
            name: nightly

            phases:
              - workstreams:
                  - run: "./fetch.sh"      # same command, quoted
                    name: fetch
                  - {name: tokenize, class: cpu_long, run: [python, "tok.py", '--shards', "8"]}
                name: prepare
                gate:
                  - run: 'test -s data/tokens.bin'
              - name: train
                gate:
                  - metric:
                      path: accuracy
                      min: 0.80
                      file: out/eval.json
                workstreams:
                  - name: sft
                    retries: 2
                    gpus: 1
                    class: gpu
                    run: torchrun train.py
            """;
        Assert.Equal(Hashes(Parse(SpecExample)), Hashes(Parse(restyled)));
        Assert.Equal(Parse(SpecExample).Phases.Select(p => p.GateKey), Parse(restyled).Phases.Select(p => p.GateKey));
    }

    [Fact]
    public void A_changed_run_changes_its_hash_and_every_later_one_but_not_its_siblings_or_earlier_ones()
    {
        var before = Hashes(Parse(SpecExample));
        var after = Hashes(Parse(SpecExample.Replace("run: ./fetch.sh", "run: ./fetch.sh --all")));
        Assert.NotEqual(before[0], after[0]);      // prepare/fetch: changed
        Assert.Equal(before[1], after[1]);         // prepare/tokenize: a sibling, unchanged
        Assert.NotEqual(before[2], after[2]);      // train/sft: after a change, so new

        var late = Hashes(Parse(SpecExample.Replace("retries: 2", "retries: 3")));
        Assert.Equal(before[..2], late[..2]);
        Assert.NotEqual(before[2], late[2]);
    }

    [Fact]
    public void Defaults_and_vars_count_as_resolved_so_the_same_task_written_two_ways_hashes_alike()
    {
        var direct = Parse("""
            name: x
            phases:
              - name: p
                workstreams:
                  - {name: w, run: "python t.py --data /d", class: cpu_long, retries: 1, env: {A: "1"}}
            """);
        var indirect = Parse("""
            name: x
            vars: {data: /d}
            env: {A: "1"}
            defaults: {class: cpu_long, retries: 1}
            phases:
              - name: p
                workstreams:
                  - {name: w, run: "python t.py --data ${data}"}
            """);
        Assert.Equal(Hashes(direct), Hashes(indirect));
        var otherVar = Parse("""
            name: x
            vars: {data: /d}
            env: {A: "1"}
            defaults: {class: cpu_long, retries: 1}
            phases:
              - name: p
                workstreams:
                  - {name: w, run: "python t.py --data ${data}"}
            """, new Dictionary<string, string> { ["data"] = "/e" });
        Assert.NotEqual(Hashes(direct), Hashes(otherVar));
    }

    [Fact]
    public void A_changed_gate_changes_the_gate_key_but_not_the_workstreams()
    {
        var a = Parse(SpecExample);
        var b = Parse(SpecExample.Replace("min: 0.8", "min: 0.9"));
        Assert.Equal(Hashes(a), Hashes(b));
        Assert.Equal(a.Phases[0].GateKey, b.Phases[0].GateKey);
        Assert.NotEqual(a.Phases[1].GateKey, b.Phases[1].GateKey);
    }
}
