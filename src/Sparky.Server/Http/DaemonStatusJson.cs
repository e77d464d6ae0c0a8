using System.Reflection;
using System.Text.Json.Nodes;
using Sparky.Core.Config;
using Sparky.Core.Tasks;
using Sparky.Server.Daemon;

namespace Sparky.Server.Http;

/// <summary>
/// <c>GET /api/v1/status</c>: the daemon at a glance, for the dashboard's overview and any other client. Its version,
/// mode, start and uptime, the dashboard setting, and per class the tasks in each state (from the counters, never a
/// scan), the concurrency limit in force now with the range it moves in, and where the class runs.
/// </summary>
internal static class DaemonStatusJson
{
    /// <summary>The product version the build stamped (<c>Version</c> in Directory.Build.props, with the commit where
    /// the build knew it).</summary>
    public static readonly string Version =
        typeof(DaemonStatusJson).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "unknown";

    private static readonly TaskState[] States = Enum.GetValues<TaskState>();

    public static JsonObject Of(SparkyDaemon d)
    {
        var now = d.Clock.GetUtcNow();
        var c = d.Store.Counters;
        var classes = new JsonArray();
        var totals = new long[States.Length];
        // The configured classes in their order, then any the store holds tasks of that are no longer configured.
        foreach (var cls in SparkyConfig.Classes.Concat(c.Classes.Where(x => !SparkyConfig.Classes.Contains(x)).Order(StringComparer.Ordinal)))
        {
            var o = new JsonObject { ["class"] = cls };
            for (int i = 0; i < States.Length; i++)
            {
                long n = c.Get(cls, States[i]);
                o[States[i].Name()] = n;
                totals[i] += n;
            }
            if (d.Engine.KnownClasses.Contains(cls))
            {
                var range = d.Config.ClassLimit(cls);
                o["limit"] = d.Engine.Limit(cls);
                o["min_slots"] = range.Min;
                o["max_slots"] = range.Max;
                o["limiter"] = range.Limiter;
                o["runs_on"] = d.Config.PilotClasses.Contains(cls) ? "pilots" : d.Config.WorkerClasses.Contains(cls) ? "workers"
                    : d.Engine.RunsOnSlurm(cls) ? "slurm" : "local";
            }
            classes.Add((JsonNode)o);
        }
        var total = new JsonObject();
        for (int i = 0; i < States.Length; i++) total[States[i].Name()] = totals[i];
        return new JsonObject
        {
            ["version"] = Version,
            ["mode"] = d.Config.Mode,
            ["started_at"] = d.StartedAt.ToString("O"),
            ["now"] = now.ToString("O"),
            ["uptime_seconds"] = Math.Round((now - d.StartedAt).TotalSeconds, 3),
            ["dashboard"] = d.Config.Dashboard.Name(),
            ["token_required"] = d.Config.Token is not null,
            ["max_concurrency"] = d.Config.MaxConcurrency,
            ["totals"] = total,
            ["classes"] = classes,
        };
    }
}
