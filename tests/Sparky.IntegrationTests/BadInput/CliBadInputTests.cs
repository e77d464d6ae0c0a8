using System.Net;
using System.Net.Sockets;
using System.Text;
using Sparky.IntegrationTests.Support;
using Xunit.Abstractions;
using static Sparky.IntegrationTests.BadInput.BadInputSupport;

namespace Sparky.IntegrationTests.BadInput;

/// <summary>
/// Bad input at the real <c>sparky</c> executable: every refusal is a non-zero exit and exactly one line on
/// stderr, starting with <c>sparky:</c>, with no stack trace; and nothing reaches the daemon's queue.
/// </summary>
public sealed class CliBadInputTests(ITestOutputHelper output)
{
    /// <summary>
    /// Every run gets SPARKY_SERVER pointing at a port nobody listens on, so a command line that slips past
    /// the parser can never reach a daemon that happens to run on this machine's default port.
    /// </summary>
    private static Dictionary<string, string> Env() => new() { ["SPARKY_SERVER"] = $"http://127.0.0.1:{SparkyCli.FreePort()}" };

    [Fact]
    public async Task Bad_command_lines_exit_non_zero_with_one_sparky_line_and_no_stack_trace()
    {
        await using var d = await TestDaemon.StartAsync();
        var server = d.Daemon.Url;
        var counter = new CaseCounter(output, "cli");
        var cases = new (string Name, string[] Args)[]
        {
            ("unknown flag", ["--bogus"]),
            ("unknown verb", ["frobnicate"]),
            ("no verb at all", []),
            ("submit with no command", ["submit"]),
            ("submit with -- and no command", ["submit", "--"]),
            ("submit --timeout banana", ["submit", "--timeout", "banana", "--", "true"]),
            ("submit --timeout 0", ["submit", "--timeout", "0", "--", "true"]),
            ("submit --mem lots", ["submit", "--mem", "lots", "--", "true"]),
            ("submit --env NOEQUALS", ["submit", "--env", "NOEQUALS", "--", "true"]),
            ("submit --env =V (no name)", ["submit", "--env", "=V", "--", "true"]),
            ("submit --retries x", ["submit", "--retries", "x", "--", "true"]),
            ("submit --cpus many", ["submit", "--cpus", "many", "--", "true"]),
            ("submit --gpus 1.5", ["submit", "--gpus", "1.5", "--", "true"]),
            ("submit --timeout with no value", ["submit", "--timeout"]),
            ("logs with no id", ["logs"]),
            ("wait with no id", ["wait"]),
            ("cancel with no id", ["cancel"]),
            ("retry with no id", ["retry"]),
            ("status with two ids", ["status", "a", "b", "--server", server]),
            ("status ../../etc/passwd", ["status", "../../etc/passwd", "--server", server]),
            ("logs ../../etc/passwd", ["logs", "../../etc/passwd", "--server", server]),
            ("status of a task nobody submitted", ["status", "no-such-task", "--server", server]),
            ("cancel ../../etc/passwd", ["cancel", "../../etc/passwd", "--server", server]),
            ("retry a/b", ["retry", "a/b", "--server", server]),
            ("submit --id ../../etc/passwd", ["submit", "--id", "../../etc/passwd", "--server", server, "--", "true"]),
            ("submit --class quantum", ["submit", "--class", "quantum", "--server", server, "--", "true"]),
            ("submit --array banana", ["submit", "--array", "banana", "--server", server, "--", "true"]),
            ("submit --after an unknown task", ["submit", "--after", "no-such-task", "--server", server, "--", "true"]),
            ("submit --cpus -1", ["submit", "--cpus=-1", "--server", server, "--", "true"]),
            ("ls --state bogus", ["ls", "--state", "bogus", "--server", server]),
            ("ls --state queued,done", ["ls", "--state", "queued,done", "--server", server]),
            ("ls --class quantum", ["ls", "--class", "quantum", "--server", server]),
            ("ls --search ab (too short)", ["ls", "--search", "ab", "--server", server]),
            ("submit to a server that is not listening", ["submit", "--server", $"http://127.0.0.1:{SparkyCli.FreePort()}", "--", "true"]),
            ("status from a server that is not listening", ["status", "--server", $"127.0.0.1:{SparkyCli.FreePort()}"]),
        };

        var failures = new List<string>();
        foreach (var (name, args) in cases)
        {
            var r = await SparkyCli.RunAsync(args, Env());
            if (AssertOneLineError(name, args, r) is { } problem) failures.Add(problem);
            else counter.Passed(name, $"exit {r.ExitCode}: {r.Stderr.TrimEnd()}");
        }
        counter.Report();
        foreach (var f in failures) output.WriteLine("FAILED: " + f);
        Assert.True(failures.Count == 0, $"{failures.Count} command lines were not refused as they should be:\n{string.Join("\n", failures)}");
        // None of it reached the queue.
        Assert.Equal(0, await SubmittedAsync(d.Http));
    }

    /// <summary>
    /// <c>sparky submit --bogus -- true</c>: an option submit doesn't know, before the <c>--</c>. It must be refused
    /// like any unknown option, not queued as the task's command (argv <c>["--bogus","true"]</c>, which then fails
    /// to spawn).
    /// </summary>
    [Fact]
    public async Task An_unknown_option_before_the_double_dash_is_refused_not_queued_as_the_command()
    {
        await using var d = await TestDaemon.StartAsync();
        var counter = new CaseCounter(output, "cli");
        var failures = new List<string>();
        foreach (var args in new[]
        {
            new[] { "submit", "--server", d.Daemon.Url, "--bogus", "--", "true" },
            ["submit", "--server", d.Daemon.Url, "--cpu", "2", "--", "true"],   // a typo for --cpus
            ["submit", "--server", d.Daemon.Url, "--bogus", "true"],
        })
        {
            var r = await SparkyCli.RunAsync(args, Env());
            var name = string.Join(' ', args.Where(a => a != d.Daemon.Url && a != "--server"));
            if (AssertOneLineError(name, args, r) is { } problem) failures.Add(problem);
            else counter.Passed(name, $"exit {r.ExitCode}: {r.Stderr.TrimEnd()}");
        }
        counter.Report();
        var queued = await AllTasksAsync(d.Http);
        foreach (var t in queued) output.WriteLine($"queued: {t["id"]} command {t["command"]?.ToJsonString()}");
        Assert.True(failures.Count == 0, string.Join("\n", failures));
        Assert.Empty(queued);
    }

    /// <summary>A --server (or SPARKY_SERVER) that is not a URL is bad input like any other: one line, not a crash.</summary>
    [Fact]
    public async Task A_malformed_server_address_is_a_one_line_error()
    {
        var counter = new CaseCounter(output, "cli");
        var failures = new List<string>();
        var cases = new (string Name, string[] Args, Dictionary<string, string> Env)[]
        {
            ("--server http://[bad", ["submit", "--server", "http://[bad", "--", "true"], Env()),
            ("--server :::", ["status", "--server", ":::"], Env()),
            ("--server 'http://exa mple'", ["ls", "--server", "http://exa mple"], Env()),
            ("SPARKY_SERVER=http://[bad", ["status"], new() { ["SPARKY_SERVER"] = "http://[bad" }),
        };
        foreach (var (name, args, env) in cases)
        {
            var r = await SparkyCli.RunAsync(args, env);
            if (AssertOneLineError(name, args, r) is { } problem) failures.Add(problem);
            else counter.Passed(name, $"exit {r.ExitCode}: {r.Stderr.TrimEnd()}");
        }
        counter.Report();
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    /// <summary>
    /// --server pointed at something that is not Sparky (a web page, a proxy's error page): the CLI says so in
    /// one line, instead of a JSON parser's stack trace or a page of HTML.
    /// </summary>
    [Fact]
    public async Task A_server_that_is_not_sparky_gets_a_one_line_error()
    {
        var counter = new CaseCounter(output, "cli");
        var failures = new List<string>();
        const string html = "<!DOCTYPE html>\n<html>\n  <head><title>Hello</title></head>\n  <body>\n    <h1>It works!</h1>\n  </body>\n</html>\n";
        var answers = new (string Name, string Response, string[] Verbs)[]
        {
            ("200 with an HTML page", Http(200, "OK", "text/html", html), ["status", "submit"]),
            ("502 with a multi-line HTML error page", Http(502, "Bad Gateway", "text/html", html.Replace("It works!", "Bad gateway")), ["status", "submit"]),
            // `status` shows whatever counts it finds; `submit` needs the ids it was promised.
            ("200 with JSON that is not Sparky's", Http(200, "OK", "application/json", "{\"hello\":\"world\"}"), ["submit"]),
        };
        foreach (var (name, response, verbs) in answers)
        {
            await using var fake = FakeServer.Start(response);
            foreach (var verb in verbs)
            {
                string[] args = verb == "submit" ? ["submit", "--server", fake.Url, "--", "true"] : [verb, "--server", fake.Url];
                var label = $"{verb} against a server answering {name}";
                var r = await SparkyCli.RunAsync(args, Env());
                if (AssertOneLineError(label, args, r) is { } problem) failures.Add(problem);
                else counter.Passed(label, $"exit {r.ExitCode}: {r.Stderr.TrimEnd()}");
            }
        }
        counter.Report();
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    /// <summary>The one line is of use only if it names what was wrong: the unknown verb or flag itself.</summary>
    [Fact]
    public async Task The_error_for_an_unknown_verb_or_flag_names_it()
    {
        var counter = new CaseCounter(output, "cli");
        var failures = new List<string>();
        foreach (var (args, word) in new[] { (new[] { "frobnicate" }, "frobnicate"), (["--bogus"], "--bogus"), (["stauts", "abc"], "stauts") })
        {
            var r = await SparkyCli.RunAsync(args, Env());
            var label = $"sparky {string.Join(' ', args)}";
            var problem = AssertOneLineError(label, args, r);
            if (problem is null && !r.Stderr.Contains(word, StringComparison.Ordinal))
                problem = $"{label}: the error does not name '{word}': {r.Stderr.TrimEnd()}";
            if (problem is not null) failures.Add(problem);
            else counter.Passed(label, $"exit {r.ExitCode}: {r.Stderr.TrimEnd()}");
        }
        counter.Report();
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    // ---------- helpers ----------

    /// <summary>Null when the run is a proper refusal; otherwise what is wrong with it.</summary>
    private static string? AssertOneLineError(string name, string[] args, SparkyCli.Result r)
    {
        var label = $"{name} (sparky {string.Join(' ', args)})";
        var lines = r.Stderr.Replace("\r\n", "\n").TrimEnd('\n').Split('\n');
        if (r.ExitCode == 0) return $"{label}: exit 0 (stdout: {Clip(r.Stdout)}; stderr: {Clip(r.Stderr)})";
        if (r.Stderr.Trim().Length == 0) return $"{label}: exit {r.ExitCode} with nothing on stderr";
        if (lines.Length != 1) return $"{label}: exit {r.ExitCode}, {lines.Length} lines on stderr: {Clip(r.Stderr)}";
        if (!lines[0].StartsWith("sparky:", StringComparison.Ordinal)) return $"{label}: stderr does not start with 'sparky:': {Clip(r.Stderr)}";
        if (r.Stderr.Contains("Exception", StringComparison.Ordinal) || r.Stderr.Contains("   at ", StringComparison.Ordinal))
            return $"{label}: a stack trace or exception name on stderr: {Clip(r.Stderr)}";
        if (r.Stdout.Trim().Length > 0) return $"{label}: an error, yet stdout holds: {Clip(r.Stdout)}";
        return null;
    }

    private static string Clip(string s)
    {
        s = s.Replace("\n", "⏎");
        return s.Length <= 400 ? s : s[..400] + "…";
    }

    private static string Http(int status, string reason, string contentType, string body)
    {
        var bytes = Encoding.UTF8.GetByteCount(body);
        return $"HTTP/1.1 {status} {reason}\r\nContent-Type: {contentType}\r\nContent-Length: {bytes}\r\nConnection: close\r\n\r\n{body}";
    }

    /// <summary>A loopback TCP server that answers every request with one fixed HTTP response, then closes.</summary>
    private sealed class FakeServer : IAsyncDisposable
    {
        private readonly TcpListener _listener;
        private readonly CancellationTokenSource _stop = new();
        private readonly Task _loop;

        public string Url { get; }

        private FakeServer(string response)
        {
            _listener = new TcpListener(IPAddress.Loopback, 0);
            _listener.Start();
            Url = $"http://127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}";
            var bytes = Encoding.UTF8.GetBytes(response);
            _loop = Task.Run(async () =>
            {
                while (!_stop.IsCancellationRequested)
                {
                    TcpClient client;
                    try { client = await _listener.AcceptTcpClientAsync(_stop.Token); }
                    catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException) { return; }
                    _ = Task.Run(async () =>
                    {
                        using (client)
                        {
                            try
                            {
                                var stream = client.GetStream();
                                await ReadRequestAsync(stream);
                                await stream.WriteAsync(bytes);
                                await stream.FlushAsync();
                                client.Client.Shutdown(SocketShutdown.Send);
                            }
                            catch (Exception e) when (e is IOException or SocketException) { }
                        }
                    });
                }
            });
        }

        public static FakeServer Start(string response) => new(response);

        /// <summary>Reads the head and, where it says how long, the body, so the client isn't reset mid-send.</summary>
        private static async Task ReadRequestAsync(NetworkStream stream)
        {
            var head = new List<byte>();
            var one = new byte[1];
            while (!(head.Count >= 4 && head[^4] == '\r' && head[^3] == '\n' && head[^2] == '\r' && head[^1] == '\n'))
            {
                if (await stream.ReadAsync(one) == 0) return;
                head.Add(one[0]);
            }
            var text = Encoding.ASCII.GetString(head.ToArray());
            var cl = text.Split("\r\n").FirstOrDefault(l => l.StartsWith("Content-Length:", StringComparison.OrdinalIgnoreCase));
            if (cl is null) return;
            int remaining = int.Parse(cl[(cl.IndexOf(':') + 1)..].Trim());
            var buf = new byte[8192];
            while (remaining > 0)
            {
                int n = await stream.ReadAsync(buf.AsMemory(0, Math.Min(buf.Length, remaining)));
                if (n == 0) return;
                remaining -= n;
            }
        }

        public async ValueTask DisposeAsync()
        {
            _stop.Cancel();
            _listener.Stop();
            await _loop;
        }
    }
}
