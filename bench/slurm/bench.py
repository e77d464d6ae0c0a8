"""Sparky's Slurm executor against a plain sbatch loop on the same local Slurm: makespan and Slurm calls per task."""
import argparse, json, os, socket, subprocess, sys, time, urllib.request

COMMANDS = ["sbatch", "squeue", "sacct", "scontrol", "scancel"]
WORK = "sleep 0.1"
POLL_S = 1.0


def shims(work):
    """Wrappers that log every Slurm command to calls.log, then exec the real one."""
    d = os.path.join(work, "shims")
    os.makedirs(d, exist_ok=True)
    log = os.path.join(work, "calls.log")
    for c in COMMANDS:
        real = subprocess.run(["which", c], capture_output=True, text=True).stdout.strip()
        if not real:
            sys.exit(f"bench: {c} not found")
        p = os.path.join(d, c)
        with open(p, "w") as f:
            f.write(f'#!/bin/sh\necho {c} >> "{log}"\nexec "{real}" "$@"\n')
        os.chmod(p, 0o755)
    return d, log


def counts(log):
    c = {k: 0 for k in COMMANDS}
    if os.path.exists(log):
        for line in open(log):
            c[line.strip()] = c.get(line.strip(), 0) + 1
    return c


def plain_loop(n, env, log, outdir):
    open(log, "w").close()
    t0 = time.monotonic()
    ids = []
    for i in range(n):
        r = subprocess.run(["sbatch", "--parsable", "--job-name", f"plain{i}", "-o", os.path.join(outdir, f"plain-{i}.out"),
                            "--wrap", WORK], env=env, capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"bench: sbatch failed: {r.stderr}")
        ids.append(r.stdout.strip().split(";")[0])
    # Wait as a careful script does: one squeue per second for the jobs still pending or running.
    while True:
        r = subprocess.run(["squeue", "-h", "-o", "%i", "-j", ",".join(ids)], env=env, capture_output=True, text=True)
        if r.returncode == 0 and not r.stdout.strip():
            break
        time.sleep(POLL_S)
    t1 = time.monotonic()
    # Outcomes: one scontrol call for all (the script would want to know which failed).
    r = subprocess.run(["scontrol", "--oneliner", "show", "job"], env=env, capture_output=True, text=True)
    ok = sum(1 for line in r.stdout.splitlines() if "JobName=plain" in line and "JobState=COMPLETED" in line and "ExitCode=0:0" in line)
    return t1 - t0, counts(log), ok


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def get(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def sparky_run(n, env, log, work, dll):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    data = os.path.join(work, "sparky-data")
    denv = {k: v for k, v in env.items() if not k.startswith("SPARKY_")}
    daemon = subprocess.Popen(["dotnet", dll, "serve", "--data", data, "--http", f"127.0.0.1:{port}",
                               "--zmq", "tcp://127.0.0.1:0", "--zmq-events", "tcp://127.0.0.1:0",
                               "--gpu-slurm-slots", "100000", "--slurm-poll-seconds", str(POLL_S)],
                              env=denv, stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "sparky.err"), "w"))
    try:
        for _ in range(300):
            try:
                if get(url + "/readyz"):
                    break
            except Exception:
                time.sleep(0.1)
        open(log, "w").close()
        body = json.dumps([{"class": "gpu_slurm", "payload": {"command": WORK, "cwd": work}} for _ in range(n)]).encode()
        t0 = time.monotonic()
        req = urllib.request.Request(url + "/api/v1/tasks", data=body, headers={"Content-Type": "application/json"}, method="POST")
        urllib.request.urlopen(req, timeout=60).read()
        while True:
            s = get(url + "/queue/status")
            if s["processed"] >= n:
                break
            time.sleep(0.05)
        t1 = time.monotonic()
        return t1 - t0, counts(log), s["processed"] - s["failed"]
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--sparky", required=True)
    a = ap.parse_args()
    shim_dir, log = shims(a.work)
    env = dict(os.environ, PATH=shim_dir + ":" + os.environ["PATH"])
    nodes = subprocess.run(["sinfo", "-h", "-o", "%c CPUs %G"], env=env, capture_output=True, text=True).stdout.strip()
    print(f"slurm benchmark: {a.n} tasks of `{WORK}`, local single-node Slurm ({nodes}), poll interval {POLL_S:g} s")

    plain_s, plain_c, plain_ok = plain_loop(a.n, env, log, a.work)
    sparky_s, sparky_c, sparky_ok = sparky_run(a.n, env, log, a.work, a.sparky)

    def row(name, secs, c, ok):
        status = c["squeue"]
        detail = c["sacct"] + c["scontrol"]
        polls = 1 + int(secs / POLL_S)
        print(f"{name:<22} {secs:9.2f} {ok:>5}/{a.n:<5} {c['sbatch']:>7} {status:>7} {detail:>7} "
              f"{(status + detail) / a.n:>10.3f} {status / polls:>12.2f}")
    print(f"\n{'way':<22} {'makespan':>9} {'ok':>11} {'sbatch':>7} {'squeue':>7} {'detail':>7} {'status/task':>10} {'squeue/poll':>12}")
    row("plain sbatch loop", plain_s, plain_c, plain_ok)
    row("sparky (Slurm executor)", sparky_s, sparky_c, sparky_ok)
    print("  detail = sacct + scontrol calls; status/task = (squeue + detail) / tasks; squeue/poll = squeue calls per poll interval of the run")

    ratio = sparky_s / plain_s
    # Polls fit in the run: one at the start, then one per interval.
    sparky_polls = 1 + int(sparky_s / POLL_S)
    print("\ntargets:")
    print(f"  [{'met   ' if ratio <= 1.0 else 'MISSED'}] sparky makespan no slower than the plain loop: {sparky_s:.2f} s vs {plain_s:.2f} s ({ratio:.2f}x)")
    per_poll = sparky_c["squeue"] / sparky_polls
    print(f"  [{'met   ' if per_poll <= 1.0 + 1e-9 else 'MISSED'}] at most one status RPC (squeue) per poll interval: {per_poll:.2f}"
          f" ({sparky_c['squeue']} squeue in {sparky_s:.1f} s at {POLL_S:g} s; plus {sparky_c['sacct'] + sparky_c['scontrol']} batched lookups of ended jobs)")
    if plain_ok != a.n or sparky_ok != a.n:
        print(f"bench: not every task succeeded (plain {plain_ok}/{a.n}, sparky {sparky_ok}/{a.n})", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
