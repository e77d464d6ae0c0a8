using System.Text.Json.Nodes;
using Spectre.Console;

namespace Sparky.Cli;

/// <summary>Waits for tasks to finish, with a live progress view when a person is watching.</summary>
internal static class Waiter
{
    public static async Task<Dictionary<string, JsonNode>> WaitAsync(DaemonClient client, IReadOnlyList<string> ids, bool progress, string title, CancellationToken ct)
    {
        var final = new Dictionary<string, JsonNode>(StringComparer.Ordinal);
        var last = new Dictionary<string, JsonNode>(StringComparer.Ordinal);

        async Task PollOnce()
        {
            foreach (var id in ids)
            {
                if (final.ContainsKey(id)) continue;
                var t = await client.GetAsync($"api/v1/tasks/{Uri.EscapeDataString(id)}", ct);
                last[id] = t;
                if ((string?)t["state"] is "succeeded" or "failed" or "cancelled") final[id] = t;
            }
        }

        var delay = TimeSpan.FromMilliseconds(50);
        if (progress && AnsiConsole.Profile.Capabilities.Interactive)
        {
            await AnsiConsole.Progress()
                .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new SpinnerColumn())
                .StartAsync(async ctx =>
                {
                    var bar = ctx.AddTask(title, maxValue: ids.Count);
                    while (final.Count < ids.Count)
                    {
                        await PollOnce();
                        int running = last.Values.Count(t => (string?)t["state"] == "running");
                        int failed = final.Values.Count(t => (string?)t["state"] != "succeeded");
                        bar.Description = $"{Markup.Escape(title)}: [green]{final.Count - failed} done[/] [blue]{running} running[/]{(failed > 0 ? $" [red]{failed} failed[/]" : "")}";
                        bar.Value = final.Count;
                        if (final.Count < ids.Count) await Task.Delay(delay, ct);
                        delay = TimeSpan.FromMilliseconds(Math.Min(300, delay.TotalMilliseconds * 1.5));
                    }
                });
        }
        else
        {
            while (final.Count < ids.Count)
            {
                await PollOnce();
                if (final.Count < ids.Count) await Task.Delay(delay, ct);
                delay = TimeSpan.FromMilliseconds(Math.Min(500, delay.TotalMilliseconds * 1.5));
            }
        }
        return final;
    }

    /// <summary>The exit code `sparky wait` returns: the task's own, 1 if it failed without one, 130 if cancelled.</summary>
    public static int ExitCodeOf(JsonNode t) => (string?)t["state"] switch
    {
        "succeeded" => 0,
        "cancelled" => 130,
        _ => t["exit_code"] is { } e && (int)e != 0 ? (int)e : 1,
    };
}
