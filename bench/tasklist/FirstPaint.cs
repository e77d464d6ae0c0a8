using System.Text.Json.Nodes;
using PuppeteerSharp;

/// <summary>
/// The dashboard's first paint on a large store, in Debian's headless Chromium (as the browser tests drive it): each
/// view opened in a fresh page (no cache), timed from navigation start by the page's own clock to its first
/// contentful paint and to the moment its content is there (the class table on the overview, the first page of rows
/// on the task list).
/// </summary>
internal static class FirstPaint
{
    public const double TargetMs = 1000;

    public sealed record View(string Name, string Hash, string Ready);

    public static readonly View[] Views =
    [
        new("overview", "#/", ".card[data-class] .counts a"),
        new("tasks, no filter", "#/tasks", "table.tasks tbody tr[data-id]"),
        new("tasks, two states + search", "#/tasks?state=failed,cancelled&q=train.py", "table.tasks tbody tr[data-id]"),
    ];

    public sealed record Sample(double PaintMs, double ReadyMs);

    public static string? Browser() =>
        Environment.GetEnvironmentVariable("CHROMIUM") is { Length: > 0 } env ? env
        : new[] { "/usr/bin/chromium", "/usr/bin/chromium-browser" }.FirstOrDefault(File.Exists);

    public static async Task<Dictionary<View, List<Sample>>> MeasureAsync(string browserPath, string baseUrl, int rounds)
    {
        await using var browser = await Puppeteer.LaunchAsync(new LaunchOptions
        {
            ExecutablePath = browserPath,
            HeadlessMode = HeadlessMode.True,
            // Root cannot use Chromium's sandbox; /dev/shm is small in containers.
            Args = ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--no-first-run", "--disable-extensions"],
            Timeout = 60_000,
        });
        var samples = Views.ToDictionary(v => v, _ => new List<Sample>());
        // Round one warms the browser's own start (its first page pays for process launch, not the dashboard's).
        for (int round = -1; round < rounds; round++)
            foreach (var view in Views)
            {
                var page = await browser.NewPageAsync();
                try
                {
                    await page.SetCacheEnabledAsync(false);
                    await page.GoToAsync(baseUrl + "/" + view.Hash, WaitUntilNavigation.DOMContentLoaded);
                    await page.WaitForSelectorAsync(view.Ready, new WaitForSelectorOptions { Timeout = 30_000 });
                    var t = JsonNode.Parse(await page.EvaluateExpressionAsync<string>(
                        "JSON.stringify({ready: performance.now(), paint: (performance.getEntriesByName('first-contentful-paint')[0] || {}).startTime ?? null})"))!;
                    if (round >= 0) samples[view].Add(new Sample((double?)t["paint"] ?? double.NaN, (double)t["ready"]!));
                }
                finally { await page.CloseAsync(); }
            }
        return samples;
    }
}
