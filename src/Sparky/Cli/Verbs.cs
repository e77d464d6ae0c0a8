using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Spectre.Console;
using Sparky.Core.Config;
using Sparky.Execution.Gpus;
using Sparky.Server.Http;
using Sparky.Core.Tasks;
using Sparky.Demo;
using Sparky.Cli.Submit;
using Sparky.Server.Daemon;

namespace Sparky.Cli;

/// <summary>Every verb of <c>sparky</c>: parsing here, work in the daemon or the small helpers beside this file.</summary>
internal static class Verbs
{
    private static readonly Option<string?> Server = new("--server") { Description = "daemon address (default $SPARKY_SERVER or http://127.0.0.1:9097)", Recursive = true };
    private static readonly Option<bool> Json = new("--json") { Description = "print JSON for scripts", Recursive = true };

    public static RootCommand Build()
    {
        var root = new RootCommand("Sparky: a durable, fast task queue for ML work on a laptop, a GPU box or Slurm.");
        root.Options.Add(Server);
        root.Options.Add(Json);
        root.Subcommands.Add(Serve());
        root.Subcommands.Add(DemoVerb());
        root.Subcommands.Add(Submit());
        root.Subcommands.Add(Ls());
        root.Subcommands.Add(Status());
        root.Subcommands.Add(Logs());
        root.Subcommands.Add(Wait());
        root.Subcommands.Add(Top.TopVerb.Build(Server, Json));
        root.Subcommands.Add(Cancel());
        root.Subcommands.Add(Retry());
        root.Subcommands.Add(Config());
        root.Subcommands.Add(GpusVerb());
        root.Subcommands.Add(Keys());
        root.Subcommands.Add(WorkerVerb.Build());
        root.Subcommands.Add(PlanVerbs.Build(Server, Json));
        root.Subcommands.Add(EmbedVerbs.Build(Json));
        // Last: they are written from the tree above, themselves included.
        root.Subcommands.Add(CliDocs.Completions(root));
        root.Subcommands.Add(CliDocs.ManVerb(root));
        return root;
    }

    // ---------- settings flags shared by serve, demo and config ----------

    private static readonly (string Name, Option<string?> Option)[] SettingFlags =
        SparkyConfig.Catalog.Select(d => (d.Name, new Option<string?>("--" + d.Name.Replace('_', '-')) { Description = d.Help })).ToArray();

    private static void AddSettingFlags(Command c)
    {
        foreach (var (_, o) in SettingFlags) c.Options.Add(o);
    }

    private static SparkyConfig LoadConfig(ParseResult p, Dictionary<string, string>? overrides = null)
    {
        var flags = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (name, o) in SettingFlags)
            if (p.GetValue(o) is { } v) flags[name] = v;
        if (overrides is not null) foreach (var (k, v) in overrides) flags.TryAdd(k, v);
        var (config, errors) = ConfigLoader.Load(flags);
        if (config is null) throw new CliException("invalid configuration: " + string.Join("; ", errors), 2);
        return config;
    }

    private static Command Serve()
    {
        var c = new Command("serve", "Run the daemon in the foreground.");
        AddSettingFlags(c);
        c.SetAction(async (p, ct) =>
        {
            var config = LoadConfig(p);
            if (SparkyDaemon.CheckBinding(config) is { } refusal) throw new CliException(refusal, 2);
            SparkyDaemon daemon;
            try { daemon = await SparkyDaemon.StartAsync(config, Console.Error.WriteLine); }
            catch (Exception e) when (e is InvalidOperationException or IOException)
            {
                // Another daemon on this data dir, or the port taken: one line, not a stack trace.
                throw new CliException($"cannot start: {e.Message.Split('\n')[0]}", 1);
            }
            await using var _ = daemon;
            var stop = new TaskCompletionSource();
            using var sigterm = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGTERM, ctx => { ctx.Cancel = true; stop.TrySetResult(); });
            using var sigint = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGINT, ctx => { ctx.Cancel = true; stop.TrySetResult(); });
            await Task.WhenAny(stop.Task, Task.Delay(Timeout.Infinite, ct));
            Console.Error.WriteLine("sparky: stopping (running tasks keep running and are re-attached or retried at the next start)");
            return 0;
        });
        return c;
    }

    private static Command DemoVerb()
    {
        var keep = new Option<bool>("--keep") { Description = "keep the temporary data directory" };
        var c = new Command("demo", "Run the example end to end on an embedded daemon and a temporary data dir, with a live view of its plan " +
            "(tasks done of all, rate, ETA).") { keep };
        c.SetAction(async (p, ct) => await DemoRunner.RunAsync(p.GetValue(keep), p.GetValue(Json), ct));
        return c;
    }

    private static Command Submit()
    {
        var cls = new Option<string?>("--class") { Description = "cpu_short (default), cpu_long, gpu, gpu_slurm" };
        var name = new Option<string?>("--name") { Description = "a name to show" };
        var id = new Option<string?>("--id") { Description = "your own id (else the daemon makes one)" };
        var cpus = new Option<double?>("--cpus") { Description = "CPUs wanted" };
        var mem = new Option<string?>("--mem") { Description = "memory wanted: 512M, 4G" };
        var gpus = new Option<int?>("--gpus") { Description = "whole GPUs wanted" };
        var gpuMem = new Option<string?>("--gpu-mem") { Description = "a share of one GPU: its memory, such as 20G (several such tasks share a GPU)" };
        var after = new Option<string[]>("--after") { Description = "run after these tasks succeed: ID,ID…", AllowMultipleArgumentsPerToken = false };
        var retries = new Option<int?>("--retries") { Description = "retries after a failure (backoff with jitter)" };
        var timeout = new Option<string?>("--timeout") { Description = "kill after this long: 90, 30s, 5m, 1h" };
        var env = new Option<string[]>("--env") { Description = "K=V, repeatable" };
        var cwd = new Option<string?>("--cwd") { Description = "working directory (default: this one)" };
        var port = new Option<bool>("--port") { Description = "reserve a free port: $MASTER_PORT and $SPARKY_PORT, with MASTER_ADDR=127.0.0.1 (tasks given GPUs get one anyway)" };
        var nodes = new Option<int?>("--nodes") { Description = "run once on each of N Slurm nodes (NNODES, NODE_RANK, MASTER_ADDR, MASTER_PORT set)" };
        var gpusPerNode = new Option<int?>("--gpus-per-node") { Description = "whole GPUs on each node (Slurm)" };
        var procsPerNode = new Option<int?>("--procs-per-node") { Description = "processes per node the launcher starts ($SPARKY_PROCS_PER_NODE, LOCAL_WORLD_SIZE; default: its GPUs)" };
        var exclusive = new Option<bool>("--exclusive") { Description = "whole nodes for this task alone (Slurm)" };
        var array = new Option<string?>("--array") { Description = "an array of tasks, 0-99[:step]; each gets $SPARKY_ARRAY_INDEX" };
        var wait = new Option<bool>("--wait") { Description = "wait for the task, showing its progress as `sparky wait` does; exit with its exit code" };
        var command = new Argument<string[]>("command") { Description = "the command (after --); one argument with spaces runs in /bin/sh", Arity = ArgumentArity.OneOrMore };
        var c = new Command("submit", "Queue a task and print its id.") { cls, name, id, cpus, mem, gpus, gpuMem, port, nodes, gpusPerNode, procsPerNode, exclusive, after, retries, timeout, env, cwd, array, wait, command };
        c.SetAction(async (p, ct) =>
        {
            var argv = p.GetValue(command)!;
            // Without `--`, an unknown flag would be swallowed as (part of) the command: refuse it instead.
            int dashDash = p.Tokens.ToList().FindIndex(t => t.Type == TokenType.DoubleDash);
            var commandTokens = p.GetResult(command)?.Tokens ?? [];
            var stray = commandTokens.FirstOrDefault(t => t.Value.StartsWith('-') && (dashDash < 0 || p.Tokens.ToList().IndexOf(t) < dashDash));
            if (stray is not null)
                throw new CliException($"unknown option '{stray.Value}' for submit (a command that starts with '-' goes after --)", 2);
            var request = new SubmitRequest
            {
                Command = argv, Server = p.GetValue(Server), Json = p.GetValue(Json), Wait = p.GetValue(wait),
                Class = p.GetValue(cls), Name = p.GetValue(name), Id = p.GetValue(id), Cpus = p.GetValue(cpus), Mem = p.GetValue(mem),
                Gpus = p.GetValue(gpus), GpuMem = p.GetValue(gpuMem), Port = p.GetValue(port), Nodes = p.GetValue(nodes),
                GpusPerNode = p.GetValue(gpusPerNode), ProcsPerNode = p.GetValue(procsPerNode), Exclusive = p.GetValue(exclusive),
                After = p.GetValue(after) ?? [], Retries = p.GetValue(retries), Timeout = p.GetValue(timeout), Env = p.GetValue(env) ?? [],
                Cwd = p.GetValue(cwd), Array = p.GetValue(array),
            };
            var body = request.Body();

            using var client = new DaemonClient(p.GetValue(Server));
            var reply = await client.PostJsonAsync("api/v1/tasks", body, ct);
            var ids = SubmitRequest.Ids(reply) ?? throw client.NotSparky();
            bool json = request.Json;
            if (!request.Wait)
            {
                Console.Write(SubmitRequest.Render(reply, ids, json));
                return 0;
            }
            if (!json) Console.Error.WriteLine(string.Join(' ', ids));
            var done = await Waiter.WaitAsync(client, ids, progress: !json, "waiting", ct);
            return Finish(done, ids, json);
        });
        return c;
    }

    private static int Finish(Dictionary<string, JsonNode> done, IReadOnlyList<string> ids, bool json)
    {
        if (json) Console.WriteLine(new JsonObject { ["tasks"] = new JsonArray(ids.Select(i => (JsonNode?)done[i].DeepClone()).ToArray()) }.ToJsonString());
        else Views.TaskTable(ids.Select(i => done[i]));
        return ids.Select(i => Waiter.ExitCodeOf(done[i])).FirstOrDefault(c => c != 0);
    }

    private static Command Ls()
    {
        var state = new Option<string?>("--state") { Description = "only these states, comma-separated: queued, running, succeeded, failed, cancelled" };
        var cls = new Option<string?>("--class") { Description = "only these classes, comma-separated" };
        var search = new Option<string?>("--search") { Description = "only tasks whose name or command holds this text (3 characters or more, any case)" };
        var limit = new Option<int>("--limit") { Description = "how many (the most recent)", DefaultValueFactory = _ => 50 };
        var c = new Command("ls", "List tasks as a table (the most recent last).") { state, cls, search, limit };
        c.SetAction(async (p, ct) =>
        {
            using var client = new DaemonClient(p.GetValue(Server));
            var q = $"api/v1/tasks?order=desc&limit={p.GetValue(limit)}";
            if (p.GetValue(state) is { } s) q += "&state=" + Uri.EscapeDataString(s);
            if (p.GetValue(cls) is { } cl) q += "&class=" + Uri.EscapeDataString(cl);
            if (p.GetValue(search) is { } text) q += "&q=" + Uri.EscapeDataString(text);
            var page = await client.GetAsync(q, ct);
            var tasks = ((JsonArray)page["tasks"]!).Reverse().ToList();
            if (p.GetValue(Json)) Console.WriteLine(new JsonObject { ["tasks"] = new JsonArray(tasks.Select(t => t!.DeepClone()).ToArray()) }.ToJsonString());
            else if (tasks.Count == 0) Console.WriteLine("no tasks");
            else Views.TaskTable(tasks);
            return 0;
        });
        return c;
    }

    private static Command Status()
    {
        var id = new Argument<string?>("id") { Description = "a task id (none: the queue's counts)", Arity = ArgumentArity.ZeroOrOne };
        var c = new Command("status", "One task in detail, or the queue's counts.") { id };
        c.SetAction(async (p, ct) =>
        {
            using var client = new DaemonClient(p.GetValue(Server));
            bool json = p.GetValue(Json);
            if (p.GetValue(id) is { } tid)
            {
                var t = await client.GetAsync($"api/v1/tasks/{Uri.EscapeDataString(tid)}", ct);
                if (json) Console.WriteLine(t.ToJsonString());
                else Views.TaskDetail(t);
                return 0;
            }
            var s = await client.GetAsync("queue/status", ct);
            if (json) { Console.WriteLine(s.ToJsonString()); return 0; }
            var table = new Table().Border(TableBorder.Rounded).AddColumns("queued", "running", "succeeded", "failed", "submitted");
            table.AddRow(Views.Esc(s["pending"]), Views.Esc(s["running"]), Views.Esc(s["done"]), Views.Esc(s["failed"]), Views.Esc(s["submitted"]));
            AnsiConsole.Write(table);
            return 0;
        });
        return c;
    }

    private static Command Logs()
    {
        var id = new Argument<string>("id") { Description = "a task id" };
        var follow = new Option<bool>("--follow", "-f") { Description = "keep printing while the task runs" };
        var stderr = new Option<bool>("--stderr") { Description = "standard error instead of standard output" };
        var attempt = new Option<int?>("--attempt") { Description = "this attempt (default: the latest)" };
        var c = new Command("logs", "A task's output.") { id, follow, stderr, attempt };
        c.SetAction(async (p, ct) =>
        {
            using var client = new DaemonClient(p.GetValue(Server));
            var q = $"api/v1/tasks/{Uri.EscapeDataString(p.GetValue(id)!)}/logs?stream={(p.GetValue(stderr) ? "stderr" : "stdout")}&follow={(p.GetValue(follow) ? "true" : "false")}";
            if (p.GetValue(attempt) is { } a) q += "&attempt=" + a;
            await using var stream = await client.StreamAsync(q, ct);
            await using var stdout = Console.OpenStandardOutput();
            await stream.CopyToAsync(stdout, ct);
            return 0;
        });
        return c;
    }

    private static Command Wait()
    {
        var ids = new Argument<string[]>("ids") { Description = "task ids", Arity = ArgumentArity.OneOrMore };
        var c = new Command("wait", "Block until the tasks finish; the exit code is the (first failing) task's. Shows progress (tasks done of all, " +
            "rate, ETA, each running task's own progress): live on a terminal, else plain lines on stderr, one per change and at most one a " +
            "second, and the last; stdout gets the table (with --json, the JSON alone).") { ids };
        c.SetAction(async (p, ct) =>
        {
            using var client = new DaemonClient(p.GetValue(Server));
            var list = p.GetValue(ids)!;
            bool json = p.GetValue(Json);
            var done = await Waiter.WaitAsync(client, list, progress: !json, "waiting", ct);
            return Finish(done, list, json);
        });
        return c;
    }

    private static Command Cancel()
    {
        var ids = new Argument<string[]>("ids") { Description = "task ids", Arity = ArgumentArity.OneOrMore };
        var c = new Command("cancel", "Cancel queued or running tasks (the whole process group is killed).") { ids };
        c.SetAction(async (p, ct) =>
        {
            using var client = new DaemonClient(p.GetValue(Server));
            int rc = 0;
            foreach (var id in p.GetValue(ids)!)
            {
                try
                {
                    await client.DeleteAsync($"api/v1/tasks/{Uri.EscapeDataString(id)}", ct);
                    if (!p.GetValue(Json)) Console.WriteLine($"cancelled {id}");
                }
                catch (CliException e)
                {
                    Console.Error.WriteLine($"sparky: {id}: {e.Message}");
                    rc = 1;
                }
            }
            return rc;
        });
        return c;
    }

    private static Command Retry()
    {
        var id = new Argument<string>("id") { Description = "a finished task" };
        var c = new Command("retry", "Queue a finished task again with the same spec.") { id };
        c.SetAction(async (p, ct) =>
        {
            using var client = new DaemonClient(p.GetValue(Server));
            var r = await client.PostAsync($"api/v1/tasks/{Uri.EscapeDataString(p.GetValue(id)!)}/retry", null, ct);
            Console.WriteLine(p.GetValue(Json) ? r.ToJsonString() : $"queued {r["id"]} again");
            return 0;
        });
        return c;
    }

    private static Command Config()
    {
        var c = new Command("config", "Print every setting, its value and where it came from.");
        AddSettingFlags(c);
        c.SetAction((p, ct) =>
        {
            var config = LoadConfig(p);
            string Show(ResolvedSetting s) => s.Name == "token" && s.Value.Length > 0 ? "(set, hidden)" : s.Value;
            if (p.GetValue(Json))
            {
                var o = new JsonObject();
                foreach (var s in config.Settings.Values) o[s.Name] = new JsonObject { ["value"] = Show(s), ["source"] = s.Source.ToString().ToLowerInvariant(), ["origin"] = s.Origin };
                Console.WriteLine(o.ToJsonString());
                return Task.FromResult(0);
            }
            var table = new Table().Border(TableBorder.Rounded).AddColumns("setting", "value", "from", "env variable", "meaning");
            foreach (var def in SparkyConfig.Catalog)
            {
                var s = config.Settings[def.Name];
                // The replaced system's variable names beside Sparky's: a user of its .env files finds theirs here.
                var variables = string.Join(", ", def.EnvAliases.Prepend(def.EnvName));
                table.AddRow(Views.Esc(s.Name), Views.Esc(Show(s)), Views.Esc(s.Origin), Views.Esc(variables), Views.Esc(def.Help));
            }
            AnsiConsole.Write(table);
            return Task.FromResult(0);
        });
        return c;
    }

    private static Command Keys()
    {
        var dir = new Option<string?>("--dir") { Description = "where to write sparky.key and sparky.pub (default: the data directory)" };
        var force = new Option<bool>("--force") { Description = "replace an existing key (clients then need the new public key)" };
        var client = new Option<string?>("--client") { Description = "make a key pair for a client named NAME and add its public key to the clients' allow-list" };
        var worker = new Option<string?>("--worker") { Description = "make a key pair for a worker named NAME and add its public key to the workers' allow-list" };
        var c = new Command("keys", "Make the daemon's CURVE key pair for the ZeroMQ sockets (needed off loopback), or a client's or worker's (--client/--worker NAME).") { dir, force, client, worker };
        AddSettingFlags(c);
        c.SetAction((p, ct) =>
        {
            if (p.GetValue(client) is not null || p.GetValue(worker) is not null) return Task.FromResult(PeerKeys(p, p.GetValue(client), p.GetValue(worker), p.GetValue(dir), p.GetValue(force)));
            var target = p.GetValue(dir) ?? LoadConfig(p).DataDir;
            string pub;
            try { pub = Sparky.Server.Zmq.CurveKeys.Generate(target, p.GetValue(force)); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { throw new CliException(e.Message.Split('\n')[0], 2); }
            string secretPath = Path.GetFullPath(Path.Combine(target, Sparky.Server.Zmq.CurveKeys.SecretFile));
            string publicPath = Path.GetFullPath(Path.Combine(target, Sparky.Server.Zmq.CurveKeys.PublicFile));
            if (p.GetValue(Json))
            {
                Console.WriteLine(new JsonObject { ["public_key"] = pub, ["secret_key_file"] = secretPath, ["public_key_file"] = publicPath }.ToJsonString());
                return Task.FromResult(0);
            }
            Console.WriteLine($"""
                wrote {secretPath} (secret, mode 0600) and {publicPath}
                public key: {pub}

                The daemon binds its ZeroMQ sockets with CURVE off loopback (or everywhere with zmq_curve = on), using
                <data>/sparky.key or the file zmq_curve_key names. A client needs the public key above and a key pair
                of its own (any, made fresh):
                  python:  Client("tcp://HOST:5555", server_key="{pub}")   # examples/python/sparky_client.py
                  pyzmq:   s.curve_publickey, s.curve_secretkey = zmq.curve_keypair(); s.curve_serverkey = b"{pub}"
                  NetMQ:   s.Options.CurveCertificate = new NetMQCertificate(); s.Options.CurveServerKey = NetMQCertificate.FromPublicKey("{pub}").PublicKey
                A client without the right public key gets no answer (ZeroMQ drops the handshake silently).
                """);
            return Task.FromResult(0);
        });
        return c;
    }

    /// <summary><c>sparky keys --client NAME</c> / <c>--worker NAME</c>: a key pair for a peer of the command socket, authorised.</summary>
    private static int PeerKeys(ParseResult p, string? client, string? worker, string? dir, bool force)
    {
        if (client is not null && worker is not null) throw new CliException("--client and --worker: one at a time", 2);
        var config = LoadConfig(p);
        bool isClient = client is not null;
        var name = (client ?? worker)!;
        if (!TaskId.TryParse(name, out _)) throw new CliException($"'{name}' must match ^[A-Za-z0-9][A-Za-z0-9._-]{{0,127}}$", 2);
        var (clients, workers) = Sparky.Server.Zmq.ZmqAuth.ListPaths(config);
        var list = Path.GetFullPath(isClient ? clients : workers);
        var secret = Path.GetFullPath(Path.Combine(dir ?? Path.Combine(config.DataDir, Sparky.Server.Zmq.ZmqAuth.KeysDir), $"{(isClient ? "client" : "worker")}-{name}.key"));
        string pub;
        try { pub = Sparky.Server.Zmq.ZmqAuth.Authorise(list, name, secret, force); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { throw new CliException(e.Message.Split('\n')[0], 2); }
        string? server = null;
        var serverPub = Path.Combine(config.DataDir, Sparky.Server.Zmq.CurveKeys.PublicFile);
        try { if (File.Exists(serverPub)) server = File.ReadAllText(serverPub).Trim(); } catch (IOException) { }
        if (p.GetValue(Json))
        {
            Console.WriteLine(new JsonObject { ["name"] = name, ["role"] = isClient ? "client" : "worker", ["public_key"] = pub, ["secret_key_file"] = secret, ["allow_list"] = list, ["server_key"] = server }.ToJsonString());
            return 0;
        }
        var s = server ?? "<the daemon's public key: sparky keys prints it; <data>/sparky.pub>";
        var use = isClient
            ? $$"""
                  python:  Client("tcp://HOST:5555", server_key="{{s}}", client_key="{{secret}}")
                  events:  follow("tcp://HOST:5556", server_key="{{s}}", client_key="{{secret}}", zmq_addr="tcp://HOST:5555")
                           (the event socket's key is told to listed clients only, in the answer to their ping: "events_key")
                  any client: use this key pair as the socket's CURVE certificate and add to each message
                           "auth": {"key": "{{pub}}", "proof": hex HMAC-SHA256("sparky-zmq-auth-v1") keyed by the X25519 secret shared with the server}
                """
            : $"""
                  sparky worker --connect tcp://HOST:5555 --name {name} --server-key {s} --key {secret}
                """;
        Console.WriteLine($"""
            wrote {secret} (secret, mode 0600) and added {pub} as {(isClient ? "client" : "worker")} '{name}' to {list}
            A running daemon reads the list again within a second; delete the line to revoke the key.
            Where the command socket uses CURVE and a key list exists, each message must prove a listed key; a client key
            may only send client requests (submit, status, cancel, list, ping), a worker key only worker messages.
            Copy the secret key file to the {(isClient ? "client" : "worker")}'s machine (keep it private), then:
            {use.TrimEnd()}
            """);
        return 0;
    }

    private static Command GpusVerb()
    {
        var c = new Command("gpus", "The GPUs on this machine (NVML, then nvidia-smi, then none) with memory and utilisation.");
        AddSettingFlags(c);
        c.SetAction((p, ct) =>
        {
            var config = LoadConfig(p);
            GpuDiscovery found;
            try { found = GpuDiscovery.Discover(GpuJson.Options(config)); }
            catch (GpuException e) { throw new CliException(e.Message, 2); }
            using (found)
            {
                var gpus = found.Gpus.Count > 0 ? found.Sample() : found.Gpus;
                if (p.GetValue(Json)) Console.WriteLine(GpuJson.Of(found, gpus).ToJsonString());
                else Views.GpuTable(GpuJson.Of(found, gpus));
            }
            return Task.FromResult(0);
        });
        return c;
    }
}
