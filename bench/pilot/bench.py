"""Pilot mode against one sbatch per task (Sparky's Slurm executor) and a plain sbatch loop, on the same local Slurm."""
import argparse, datetime, json, os, socket, subprocess, sys, time, urllib.request

WORK_S = 0.05
ARGV = ["sleep", "0.05"]
POLL_S = 1.0
TARGET_RATIO = 50.0
TARGET_OVERHEAD_MS = 2.0


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def get(url):
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.loads(r.read())


def iso_ms(text):
    return datetime.datetime.fromisoformat(text).timestamp() * 1000.0


class Daemon:
    """A real `sparky serve` on loopback, ended by pid however the benchmark ends."""

    def __init__(self, dll, work, name, flags):
        self.url = f"http://127.0.0.1:{free_port()}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("SPARKY_")}
        self.err = os.path.join(work, name + ".err")
        self.proc = subprocess.Popen(
            ["dotnet", dll, "serve", "--data", os.path.join(work, name + "-data"), "--http", self.url[len("http://"):],
             "--zmq", "tcp://127.0.0.1:0", "--zmq-events", "tcp://127.0.0.1:0", "--slurm-poll-seconds", str(POLL_S)] + flags,
            env=env, stdout=subprocess.DEVNULL, stderr=open(self.err, "w"))
        for _ in range(600):
            if self.proc.poll() is not None:
                sys.exit(f"bench: sparky serve exited: {open(self.err).read()}")
            try:
                get(self.url + "/readyz")
                return
            except Exception:
                time.sleep(0.1)
        sys.exit("bench: sparky serve did not become ready")

    def run(self, n, cls, cwd):
        """Submits n tasks in one request; returns (makespan s, succeeded, tasks as JSON)."""
        body = json.dumps([{"class": cls, "payload": {"command": ARGV, "cwd": cwd}} for _ in range(n)]).encode()
        t0 = time.time()
        req = urllib.request.Request(self.url + "/api/v1/tasks", data=body, headers={"Content-Type": "application/json"}, method="POST")
        urllib.request.urlopen(req, timeout=120).read()
        while True:
            s = get(self.url + "/queue/status")
            if s["processed"] >= n:
                break
            if self.proc.poll() is not None:
                sys.exit(f"bench: sparky serve died: {open(self.err).read()[-2000:]}")
            time.sleep(0.02)
        makespan = time.time() - t0
        tasks, cursor = [], None
        while True:
            page = get(self.url + f"/api/v1/tasks?limit=10000" + (f"&cursor={cursor}" if cursor else ""))
            tasks += page["tasks"]
            cursor = page.get("next_cursor")
            if not cursor:
                break
        return makespan, s["processed"] - s["failed"], tasks, t0

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def plain_loop(n, work):
    t0 = time.monotonic()
    ids = []
    for i in range(n):
        r = subprocess.run(["sbatch", "--parsable", "--job-name", f"plain{i}", "-o", os.path.join(work, f"plain-{i}.out"),
                            "--wrap", " ".join(ARGV)], capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"bench: sbatch failed: {r.stderr}")
        ids.append(r.stdout.strip().split(";")[0])
    while True:
        r = subprocess.run(["squeue", "-h", "-o", "%i", "-j", ",".join(ids)], capture_output=True, text=True)
        if r.returncode == 0 and not r.stdout.strip():
            break
        time.sleep(POLL_S)
    makespan = time.monotonic() - t0
    r = subprocess.run(["scontrol", "--oneliner", "show", "job"], capture_output=True, text=True)
    ok = sum(1 for line in r.stdout.splitlines() if "JobName=plain" in line and "JobState=COMPLETED" in line and "ExitCode=0:0" in line)
    return makespan, ok


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--sparky", required=True)
    a = ap.parse_args()
    cpus = int(subprocess.run(["sinfo", "-h", "-o", "%c"], capture_output=True, text=True).stdout.split()[0])
    pilots = int(os.environ.get("SPARKY_BENCH_PILOTS", "1"))
    slots = int(os.environ.get("SPARKY_BENCH_PILOT_SLOTS", str(max(1, cpus // pilots))))
    lanes = pilots * slots
    print(f"pilot benchmark: {a.n} tasks of `{' '.join(ARGV)}` on a local single-node Slurm ({cpus} CPUs); "
          f"pilot mode: {pilots} pilot(s) x {slots} slot(s); Slurm poll interval {POLL_S:g} s")
    cwd = os.path.join(a.work, "tasks")
    os.makedirs(cwd, exist_ok=True)

    # 1. Pilot mode.
    d = Daemon(a.sparky, a.work, "pilot", [
        "--pilot-classes", "cpu_short", "--pilot-max-workers", str(pilots), "--pilot-slots", str(slots),
        "--pilot-idle-timeout", "5", "--pilot-command", f"dotnet {a.sparky}"])
    try:
        pilot_s, pilot_ok, tasks, t0 = d.run(a.n, "cpu_short", cwd)
    finally:
        d.stop()
    starts = [iso_ms(t["started_at"]) for t in tasks]
    ends = [iso_ms(t["finished_at"]) for t in tasks]
    startup_s = (min(starts) - t0 * 1000) / 1000
    steady_s = (max(ends) - min(starts)) / 1000
    ideal_s = a.n * WORK_S / lanes
    overhead_ms = max(0.0, steady_s - ideal_s) * lanes / a.n * 1000
    run_ms = sorted(t["duration_ms"] for t in tasks)
    workers = sorted({t["host"] for t in tasks})

    if os.environ.get("SPARKY_BENCH_PILOT_ONLY") == "1":
        print(f"pilot mode only: {pilot_s:.2f} s, {pilot_ok}/{a.n} ok, startup {startup_s:.2f} s, steady {steady_s:.2f} s "
              f"(ideal {ideal_s:.2f} s), overhead {overhead_ms:.2f} ms/task, run p50 {run_ms[len(run_ms) // 2]} ms")
        return
    # 2. One sbatch per task through Sparky's Slurm executor.
    d = Daemon(a.sparky, a.work, "sbatch", ["--gpu-slurm-slots", "100000"])
    try:
        sbatch_s, sbatch_ok, _, _ = d.run(a.n, "gpu_slurm", cwd)
    finally:
        d.stop()

    # 3. A plain sbatch loop.
    plain_s, plain_ok = plain_loop(a.n, a.work)

    print(f"\n{'way':<32} {'makespan':>10} {'ok':>11} {'tasks/s':>9} {'vs pilot':>9}")
    for name, secs, ok in [("sparky pilot mode", pilot_s, pilot_ok), ("sparky, one sbatch per task", sbatch_s, sbatch_ok),
                           ("plain sbatch loop", plain_s, plain_ok)]:
        print(f"{name:<32} {secs:9.2f}s {ok:>5}/{a.n:<5} {a.n / secs:9.1f} {secs / pilot_s:8.1f}x")
    print(f"\npilot mode: first task started {startup_s:.2f} s after the submission (sbatch, Slurm's scheduling, the worker's start);"
          f" then {steady_s:.2f} s for {a.n} tasks on {lanes} lane(s), against {ideal_s:.2f} s of pure {WORK_S * 1000:.0f} ms work;"
          f" attempt run time p50 {run_ms[len(run_ms) // 2]} ms, p99 {run_ms[int(len(run_ms) * 0.99)]} ms; workers: {', '.join(workers)}")
    ratio = sbatch_s / pilot_s
    print("\ntargets:")
    print(f"  [{'met   ' if ratio >= TARGET_RATIO else 'MISSED'}] pilot mode at least {TARGET_RATIO:.0f}x faster in makespan than one sbatch per task: "
          f"{ratio:.1f}x ({pilot_s:.2f} s vs {sbatch_s:.2f} s)")
    print(f"  [{'met   ' if overhead_ms < TARGET_OVERHEAD_MS else 'MISSED'}] per-task overhead in pilot mode under {TARGET_OVERHEAD_MS:g} ms: "
          f"{overhead_ms:.2f} ms (steady makespan beyond the work, per task per lane; includes each task's process start)")
    os.makedirs("bench/results", exist_ok=True)
    out = f"bench/results/pilot-{time.strftime('%Y%m%d-%H%M%S')}.json"
    with open(out, "w") as f:
        json.dump({"n": a.n, "work_s": WORK_S, "cpus": cpus, "pilots": pilots, "slots": slots,
                   "pilot": {"makespan_s": pilot_s, "ok": pilot_ok, "startup_s": startup_s, "steady_s": steady_s,
                             "overhead_ms_per_task": overhead_ms, "run_ms_p50": run_ms[len(run_ms) // 2]},
                   "sbatch_per_task": {"makespan_s": sbatch_s, "ok": sbatch_ok},
                   "plain_sbatch_loop": {"makespan_s": plain_s, "ok": plain_ok},
                   "ratio_sbatch_over_pilot": ratio, "loadavg_at_end": os.getloadavg()}, f, indent=1)
    print(f"\nresults: {out}")
    if pilot_ok != a.n or sbatch_ok != a.n or plain_ok != a.n:
        print(f"bench: not every task succeeded (pilot {pilot_ok}, sbatch {sbatch_ok}, plain {plain_ok} of {a.n})", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
