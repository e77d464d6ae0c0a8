using System.Text.Json.Nodes;
using Sparky.Core.Tasks;

namespace Sparky.Core.Tests.Tasks;

public class TaskOptionsTests
{
    private static readonly TaskOptions Defaults = new()
    {
        Class = "cpu_long", Cpus = 1, MemoryMb = 512, Gpus = 0, GpuMemoryMb = 100, Retries = 1, TimeoutSeconds = 600,
        Env = new Dictionary<string, string> { ["A"] = "defaults", ["B"] = "defaults" }, Cwd = "/defaults",
    };

    [Fact]
    public void A_field_set_in_the_task_wins_over_the_workstreams_which_wins_over_the_defaults()
    {
        var workstream = new TaskOptions { Class = "gpu", Gpus = 1, Retries = 2, Env = new Dictionary<string, string> { ["B"] = "ws", ["C"] = "ws" } };
        var task = new TaskOptions { Retries = 5, Cwd = "/task", Env = new Dictionary<string, string> { ["C"] = "task", ["D"] = "task" } };

        var o = task.Or(workstream).Or(Defaults);

        Assert.Equal(5, o.Retries);                 // the task's, over both
        Assert.Equal("/task", o.Cwd);               // the task's, over the defaults'
        Assert.Equal("gpu", o.Class);               // the workstream's, over the defaults'
        Assert.Equal(1, o.Gpus);
        Assert.Equal(1.0, o.Cpus);                  // only the defaults set these
        Assert.Equal(512, o.MemoryMb);
        Assert.Equal(100, o.GpuMemoryMb);
        Assert.Equal(600.0, o.TimeoutSeconds);
        // Variables merge: each level's over the next, in the fallback's order, new ones after.
        Assert.Equal([("A", "defaults"), ("B", "ws"), ("C", "task"), ("D", "task")], o.Env.Select(kv => (kv.Key, kv.Value)));
        // Grouped either way, the same.
        Assert.Equal(Flat(o), Flat(task.Or(workstream.Or(Defaults))));
    }

    [Fact]
    public void What_nothing_sets_stays_unset_and_a_set_zero_is_kept()
    {
        var o = TaskOptions.None.Or(new TaskOptions { Retries = 3 }).Or(TaskOptions.None);
        Assert.Equal(3, o.Retries);
        Assert.Equal(Flat(new TaskOptions { Retries = 3 }), Flat(o));
        Assert.Null(o.Class);
        Assert.Null(o.Cpus);
        Assert.Null(o.MemoryMb);
        Assert.Null(o.Gpus);
        Assert.Null(o.GpuMemoryMb);
        Assert.Null(o.TimeoutSeconds);
        Assert.Null(o.Cwd);
        Assert.Empty(o.Env);

        // 0 is a value, not "unset": a task that asks for no retries gets none whatever the fallback says.
        Assert.Equal(0, new TaskOptions { Retries = 0, Gpus = 0 }.Or(Defaults with { Gpus = 2 }).Retries);
        Assert.Equal(0, new TaskOptions { Retries = 0, Gpus = 0 }.Or(Defaults with { Gpus = 2 }).Gpus);
    }

    [Fact]
    public void A_spec_takes_the_daemons_defaults_for_what_its_options_leave_unset()
    {
        var spec = TaskSpec.Of(["true"], null, TaskOptions.None);
        Assert.Equal((Classes.CpuShort, (double?)null, 0L, 0, 0L, 0, (double?)null, (string?)null),
            (spec.Class, spec.Cpus, spec.MemoryMb, spec.Gpus, spec.GpuMemoryMb, spec.Retries, spec.TimeoutSeconds, spec.Cwd));
        Assert.Empty(spec.Env);

        var set = TaskSpec.Of(null, "echo hi", Defaults);
        Assert.Equal(("cpu_long", (double?)1, 512L, 0, 100L, 1, (double?)600, "/defaults", "echo hi"),
            (set.Class, set.Cpus, set.MemoryMb, set.Gpus, set.GpuMemoryMb, set.Retries, set.TimeoutSeconds, set.Cwd, set.Shell));
        Assert.Equal("defaults", set.Env["A"]);
    }

    [Fact]
    public void The_envelope_parser_gives_an_envelope_without_options_the_daemons_defaults()
    {
        var known = new HashSet<string> { "cpu_short" };
        foreach (var text in new[] { """{"payload": {"command": ["true"]}}""", """{"execution": {"command": ["true"]}}""", """{"command": ["true"]}""" })
        {
            var r = EnvelopeParser.Parse(JsonNode.Parse(text), known);
            Assert.True(r.Ok, r.Error);
            Assert.Equal(Flat(TaskSpec.Of(["true"], null, TaskOptions.None)), Flat(r.Submission!.Spec));
        }
    }

    [Fact]
    public void An_attempts_outcome_is_stored_and_shown_by_the_same_names_as_before()
    {
        Assert.Equal(["succeeded", "failed", "cancelled"], Enum.GetValues<AttemptOutcome>().Select(o => o.Name()));
        foreach (var o in Enum.GetValues<AttemptOutcome>()) Assert.Equal(o, AttemptOutcomes.Parse(o.Name()));
        Assert.Null(AttemptOutcomes.Parse(null));
        Assert.Null(AttemptOutcomes.Parse("exploded"));
        Assert.Equal(AttemptOutcome.Succeeded, AttemptOutcomes.Of(TaskState.Succeeded));
        Assert.Equal(AttemptOutcome.Cancelled, AttemptOutcomes.Of(TaskState.Cancelled));
        Assert.Equal(AttemptOutcome.Failed, AttemptOutcomes.Of(TaskState.Failed));
    }

    private static string Flat(TaskOptions o) =>
        $"{o.Class}|{o.Cpus}|{o.MemoryMb}|{o.Gpus}|{o.GpuMemoryMb}|{o.Retries}|{o.TimeoutSeconds}|{o.Cwd}|{string.Join(",", o.Env.Select(kv => kv.Key + "=" + kv.Value))}";

    private static string Flat(TaskSpec s) =>
        $"{string.Join(" ", s.Argv ?? [])}|{s.Shell}|{s.Class}|{s.Cpus}|{s.MemoryMb}|{s.Gpus}|{s.GpuMemoryMb}|{s.Retries}|{s.TimeoutSeconds}|{s.Cwd}|" +
        string.Join(",", s.Env.Select(kv => kv.Key + "=" + kv.Value));
}
