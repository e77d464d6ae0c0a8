namespace Sparky.Plans.Tests;

public class ExampleTests
{
    [Theory]
    [InlineData("demo.yaml")]
    [InlineData("ml-pipeline.yaml")]
    public void The_example_plans_parse(string file)
    {
        var r = PlanFile.Load(Path.Combine(AppContext.BaseDirectory, "plans", file));
        Assert.True(r.Ok, r.ErrorText);
        Assert.Equal(3, r.Plan!.Phases.Count);
        Assert.All(r.Plan.Phases, p => Assert.NotEmpty(p.Gate));
    }

    [Fact]
    public void The_demo_fans_out_and_ends_on_a_metric_gate()
    {
        var plan = PlanFile.Load(Path.Combine(AppContext.BaseDirectory, "plans", "demo.yaml")).Plan!;
        Assert.Contains(plan.Phases[1].Workstreams, w => w.Tasks.Any(t => t.Array is { Count: 8 }));
        Assert.True(plan.Phases[1].Workstreams.Count > 1);
        Assert.Contains(plan.Phases[2].Gate, c => c is MetricCheck);
    }

    [Fact]
    public void The_ml_pipeline_trains_with_retries()
    {
        var plan = PlanFile.Load(Path.Combine(AppContext.BaseDirectory, "plans", "ml-pipeline.yaml")).Plan!;
        Assert.Equal(["prepare", "train", "evaluate"], plan.Phases.Select(p => p.Name));
        Assert.Equal(2, plan.Phases[1].Workstreams[0].Tasks[0].Options.Retries);
        Assert.Contains(plan.Phases[2].Gate, c => c is MetricCheck { Path: "eval.r2" });
    }
}
