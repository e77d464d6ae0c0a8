using PuppeteerSharp;

namespace Sparky.IntegrationTests.Support;

/// <summary>
/// One headless Chromium (Debian's <c>chromium</c>, or <c>$CHROMIUM</c>) for a test class, driven over the DevTools
/// protocol by PuppeteerSharp. A browser takes a second or two to start and a hundred MB to run, so a class shares one;
/// each test opens its own incognito context (its own cookies) and pages in it.
/// </summary>
public sealed class Chromium : IAsyncLifetime
{
    private IBrowser? _browser;

    public IBrowser Browser => _browser ?? throw new InvalidOperationException("the browser has not started");

    /// <summary>The binary: $CHROMIUM, else /usr/bin/chromium; null where there is none.</summary>
    public static string? Find()
    {
        if (Environment.GetEnvironmentVariable("CHROMIUM") is { Length: > 0 } c) return File.Exists(c) ? c : null;
        return new[] { "/usr/bin/chromium", "/usr/bin/chromium-browser" }.FirstOrDefault(File.Exists);
    }

    public async Task InitializeAsync()
    {
        // Never skipped: a missing browser fails the class, saying how to get one (test.sh installs it).
        var binary = Find() ?? throw new InvalidOperationException(Environment.GetEnvironmentVariable("CI") == "true"
            ? "chromium is not installed on this CI machine; test.sh installs it (apt-get install chromium) when run as root"
            : "chromium is not installed: run test.sh as root, or apt-get install --no-install-recommends chromium (or set CHROMIUM=/path/to/chromium)");
        _browser = await Puppeteer.LaunchAsync(new LaunchOptions
        {
            ExecutablePath = binary,
            HeadlessMode = HeadlessMode.True,
            // Root (CI) cannot use Chromium's sandbox; /dev/shm is small in containers.
            Args = ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--no-first-run", "--disable-extensions"],
            Timeout = 60_000,
            ProtocolTimeout = 60_000,
        });
    }

    public async Task DisposeAsync()
    {
        if (_browser is not null) await _browser.CloseAsync();
    }
}
