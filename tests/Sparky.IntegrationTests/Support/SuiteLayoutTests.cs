using System.Reflection;

namespace Sparky.IntegrationTests.Support;

/// <summary>
/// test.sh splits this suite by trait: the classes on the test Slurm cluster (<c>Needs=slurm</c>) run in a test process
/// of their own beside the rest. A class put in <see cref="SlurmCollection"/> without the trait would run in the main
/// process and set SLURM_CONF under every daemon started beside it; one with the trait but outside the collection would
/// run with no cluster.
/// </summary>
public sealed class SuiteLayoutTests
{
    [Fact]
    public void Every_class_on_the_Slurm_cluster_and_only_those_carry_the_slurm_trait()
    {
        var classes = typeof(SuiteLayoutTests).Assembly.GetTypes().Where(t => t.IsClass && !t.IsAbstract).ToList();
        var onCluster = classes.Where(t => t.GetCustomAttributesData().Any(a =>
            a.AttributeType == typeof(CollectionAttribute) && Equals(a.ConstructorArguments[0].Value, SlurmCollection.Name))).ToHashSet();
        var traited = classes.Where(t => t.GetCustomAttributesData().Any(a =>
            a.AttributeType == typeof(TraitAttribute) && a.ConstructorArguments.Select(c => c.Value).SequenceEqual(["Needs", "slurm"]))).ToHashSet();

        Assert.NotEmpty(onCluster);
        Assert.Empty(onCluster.Except(traited).Select(t => t.FullName));
        Assert.Empty(traited.Except(onCluster).Select(t => t.FullName));
    }
}
