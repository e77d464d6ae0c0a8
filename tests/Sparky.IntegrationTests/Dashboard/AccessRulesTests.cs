using Sparky.Core.Config;
using Sparky.Server.Http;

namespace Sparky.IntegrationTests.Dashboard;

/// <summary>Who may do what over HTTP (<see cref="AccessRules.Decide"/>), as a table: no daemon, no I/O.</summary>
public sealed class AccessRulesTests
{
    // The verdicts by name: the type is internal to the server, and a public test method cannot take it.
    private const string Allow = "Allow", Unauthorized = "Unauthorized", Forbidden = "Forbidden";

    [Theory]
    // method, path, bearer, session, csrf, from the dashboard, cross-origin, token set, dashboard → verdict
    // No token (loopback): everything but a cross-origin write, and the read-only dashboard's writes.
    [InlineData("POST", "/api/v1/tasks", false, false, false, false, false, false, "on", Allow)]
    [InlineData("DELETE", "/api/v1/tasks/a", false, false, false, true, false, false, "on", Allow)]
    [InlineData("DELETE", "/api/v1/tasks/a", false, false, false, true, false, false, "read-only", Forbidden)]
    [InlineData("DELETE", "/api/v1/tasks/a", false, false, false, false, false, false, "read-only", Allow)]
    [InlineData("GET", "/api/v1/tasks/a", false, false, false, true, false, false, "read-only", Allow)]
    [InlineData("POST", "/api/v1/tasks", false, false, false, false, true, false, "on", Forbidden)]
    [InlineData("GET", "/api/v1/tasks", false, false, false, false, true, false, "on", Allow)]
    // A token: the page's files and the sign-in are open, the rest needs the bearer or a session.
    [InlineData("GET", "/", false, false, false, false, false, true, "on", Allow)]
    [InlineData("GET", "/assets/js/main.js", false, false, false, false, false, true, "on", Allow)]
    [InlineData("POST", "/dashboard/signin", false, false, false, false, false, true, "on", Allow)]
    [InlineData("POST", "/dashboard/signin", false, false, false, false, true, true, "on", Forbidden)]
    [InlineData("GET", "/api/v1/status", false, false, false, false, false, true, "on", Unauthorized)]
    [InlineData("GET", "/api/v1/status", true, false, false, false, false, true, "on", Allow)]
    [InlineData("GET", "/api/v1/events", false, true, false, false, false, true, "on", Allow)]
    [InlineData("GET", "/api/v1/events", false, true, false, false, false, true, "off", Unauthorized)]
    // A session changes state only with the CSRF header, and never while the dashboard is read-only.
    [InlineData("DELETE", "/api/v1/tasks/a", false, true, false, true, false, true, "on", Forbidden)]
    [InlineData("DELETE", "/api/v1/tasks/a", false, true, true, true, false, true, "on", Allow)]
    [InlineData("DELETE", "/api/v1/tasks/a", false, true, true, false, false, true, "read-only", Forbidden)]
    // The bearer token is not the dashboard: read-only does not bind it, unless it says it is the dashboard.
    [InlineData("DELETE", "/api/v1/tasks/a", true, false, false, false, false, true, "read-only", Allow)]
    [InlineData("DELETE", "/api/v1/tasks/a", true, false, false, true, false, true, "read-only", Forbidden)]
    public void Decides(string method, string path, bool bearer, bool session, bool csrf, bool fromDashboard, bool crossOrigin,
        bool tokenSet, string dashboard, string expected)
    {
        var r = new AccessRequest(method, path, bearer, () => session, () => csrf, fromDashboard, crossOrigin);
        var (verdict, why) = AccessRules.Decide(r, tokenSet, DashboardModes.Parse(dashboard));
        Assert.Equal(expected, verdict.ToString());
        Assert.Equal(verdict == AccessVerdict.Forbidden, why is not null);
    }

    [Theory]
    // A request addressed to a name that is not loopback's (DNS rebinding): refused without a token, reads too; with a
    // token the token decides (a rebinding page has neither it nor the session cookie, which is per name).
    [InlineData("GET", false, false, Forbidden)]
    [InlineData("POST", false, false, Forbidden)]
    [InlineData("GET", true, false, Unauthorized)]
    [InlineData("GET", true, true, Allow)]
    public void A_foreign_host(string method, bool tokenSet, bool bearer, string expected)
    {
        var r = new AccessRequest(method, "/api/v1/tasks", bearer, () => false, () => false, false, false, ForeignHost: true);
        Assert.Equal(expected, AccessRules.Decide(r, tokenSet, DashboardMode.On).Verdict.ToString());
    }

    [Fact]
    public void The_session_is_not_looked_at_where_the_bearer_token_decides()
    {
        var r = new AccessRequest("POST", "/api/v1/tasks", true, () => throw new InvalidOperationException("session read"),
            () => throw new InvalidOperationException("csrf read"), false, false);
        Assert.Equal(AccessVerdict.Allow, AccessRules.Decide(r, tokenSet: true, DashboardMode.On).Verdict);
    }
}
