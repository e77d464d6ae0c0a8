using PuppeteerSharp;
using Xunit.Abstractions;

namespace Sparky.IntegrationTests.Support;

/// <summary>A page in a context of its own, with every console error, page error and dialog it met.</summary>
internal sealed class BrowserTab : IAsyncDisposable
{
    public const int WaitMs = 30_000;

    public required IBrowserContext Context { get; init; }
    public required IPage Page { get; init; }
    public List<string> Errors { get; } = [];
    public List<string> PageErrors { get; } = [];
    public List<string> Dialogs { get; } = [];
    private ITestOutputHelper? _output;

    public static async Task<BrowserTab> OpenAsync(Chromium chromium, string? url, ITestOutputHelper output)
    {
        var context = await chromium.Browser.CreateBrowserContextAsync();
        var page = await context.NewPageAsync();
        var tab = new BrowserTab { Context = context, Page = page, _output = output };
        page.Console += (_, e) =>
        {
            if (e.Message.Type == ConsoleType.Error) lock (tab.Errors) tab.Errors.Add($"console: {e.Message.Text} ({e.Message.Location?.URL})");
        };
        page.PageError += (_, e) => { lock (tab.Errors) { tab.Errors.Add("page error: " + e.Message); tab.PageErrors.Add(e.Message); } };
        page.Dialog += async (_, e) => { lock (tab.Dialogs) tab.Dialogs.Add(e.Dialog.Message); await e.Dialog.Dismiss(); };
        page.DefaultTimeout = WaitMs;
        await page.SetViewportAsync(new ViewPortOptions { Width = 1280, Height = 900 });
        if (url is not null) await page.GoToAsync(url);
        return tab;
    }

    public async Task WaitAsync(string predicate, int timeoutMs = WaitMs)
    {
        try
        {
            await Page.WaitForFunctionAsync(predicate, new WaitForFunctionOptions { Timeout = timeoutMs, PollingInterval = 50 });
        }
        catch (WaitTaskTimeoutException)
        {
            var main = await Page.EvaluateExpressionAsync<string>("document.querySelector('main')?.innerText ?? ''");
            throw new TimeoutException($"waited {timeoutMs} ms for {predicate}; errors: [{string.Join("; ", Errors)}]; the page shows:\n{main}");
        }
    }

    /// <summary>To another view of the page (no reload), then waits for it to show.</summary>
    public async Task GoAsync(string hash, string shown)
    {
        await Page.EvaluateFunctionAsync("h => { location.hash = h; }", hash);
        await WaitAsync(shown);
    }

    public async Task<string> ShotAsync(string dir, string name, bool fullPage = false)
    {
        var path = Path.Combine(dir, name + ".png");
        await Page.ScreenshotAsync(path, new ScreenshotOptions { FullPage = fullPage });
        return path;
    }

    /// <param name="allow">A console error that says this is expected (the browser logs each refused request).</param>
    public void AssertNoErrors(string? allow = null)
    {
        lock (Errors)
        {
            foreach (var e in Errors) _output?.WriteLine(e);
            Assert.Empty(allow is null ? Errors : Errors.Where(e => !e.Contains(allow, StringComparison.Ordinal)));
        }
    }

    public async ValueTask DisposeAsync() => await Context.CloseAsync();
}
