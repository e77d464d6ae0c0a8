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
        deadline = t0 + max(600, n * 2)
        while True:
            s = get(self.url + "/queue/status")
            if s["processed"] >= n:
                break
            if time.time() > deadline:
                sys.exit(f"bench: {n - s['processed']} of {n} tasks unfinished after {deadline - t0:.0f} s")
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


def spawn_floor(work, n, lanes):
    """ms per task per lane beyond the work for `sleep 0.05` run back to back with no queue; None without a C compiler."""
    exe = os.path.join(work, "spawnfloor")
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "throughput", "spawnfloor.c")
    if subprocess.run(["cc", "-O2", "-o", exe, src], capture_output=True).returncode != 0:
        return None
    t0 = time.monotonic()
    if subprocess.run([exe, str(n), str(lanes)] + ARGV).returncode != 0:
        sys.exit("bench: the spawn floor failed")
    return max(0.0, time.monotonic() - t0 - n * WORK_S / lanes) * lanes / n * 1000


def plain_loop(n, work):
    t0 = time.monotonic()
    ids = []
    for i in range(n):
        r = subprocess.run(["sbatch", "--parsable", "--job-name", f"plain{i}", "-o", os.path.join(work, f"plain-{i}.out"),
                            "--wrap", " ".join(ARGV) + "; echo exit:$?"], capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"bench: sbatch failed: {r.stderr}")
        ids.append(r.stdout.strip().split(";")[0])
    while True:
        r = subprocess.run(["squeue", "-h", "-o", "%i", "-j", ",".join(ids)], capture_output=True, text=True)
        if r.returncode == 0 and not r.stdout.strip():
            break
        time.sleep(POLL_S)
    makespan = time.monotonic() - t0
    # Each job's own output says how its command ended (Slurm forgets ended jobs after MinJobAge, 300 s here).
    ok = 0
    for i in range(n):
        try:
            ok += open(os.path.join(work, f"plain-{i}.out")).read().strip() == "exit:0"
        except OSError:
            pass
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

    # 0. The floor: the same command, one process per task, on as many lanes, with no queue (bench/throughput's spawnfloor).
    floor_ms = spawn_floor(a.work, min(a.n, 400), lanes)
    ideal_s = a.n * WORK_S / lanes

    # 1. Pilot mode, without and with prefetch (each pilot holds as many tasks as it has slots, ready to start).
    def pilot_mode(prefetch):
        d = Daemon(a.sparky, a.work, f"pilot{prefetch}", [
            "--pilot-classes", "cpu_short", "--pilot-max-workers", str(pilots), "--pilot-slots", str(slots),
            "--pilot-prefetch", str(prefetch), "--pilot-idle-timeout", "3", "--pilot-command", f"dotnet {a.sparky}"])
        try:
            makespan, ok, tasks, t0 = d.run(a.n, "cpu_short", cwd)
        finally:
            d.stop()
        starts = [iso_ms(t["started_at"]) for t in tasks]
        ends = [iso_ms(t["finished_at"]) for t in tasks]
        r = {"makespan_s": makespan, "ok": ok, "prefetch": prefetch,
             "startup_s": (min(starts) - t0 * 1000) / 1000, "steady_s": (max(ends) - min(starts)) / 1000,
             "workers": sorted({t["host"] for t in tasks})}
        r["overhead_ms"] = max(0.0, r["steady_s"] - ideal_s) * lanes / a.n * 1000
        r["beyond_floor_ms"] = r["overhead_ms"] - floor_ms if floor_ms is not None else None
        # Pilots end when idle: wait for the queue to empty so the next way has the node to itself.
        for _ in range(200):
            q = subprocess.run(["squeue", "-h", "-o", "%j"], capture_output=True, text=True).stdout
            if "pilot-" not in q:
                break
            time.sleep(0.2)
        return r
    plain_pilot = pilot_mode(0)
    prefetch_pilot = pilot_mode(slots)
    pilot_s, pilot_ok = plain_pilot["makespan_s"], plain_pilot["ok"]

    if os.environ.get("SPARKY_BENCH_PILOT_ONLY") == "1":
        print(f"pilot mode only; floor {floor_ms} ms/task\n{json.dumps(plain_pilot)}\n{json.dumps(prefetch_pilot)}")
        return
    # 2. One sbatch per task through Sparky's Slurm executor.
    d = Daemon(a.sparky, a.work, "sbatch", ["--gpu-slurm-slots", "100000"])
    try:
        sbatch_s, sbatch_ok, _, _ = d.run(a.n, "gpu_slurm", cwd)
    finally:
        d.stop()

    # 3. A plain sbatch loop.
    plain_s, plain_ok = plain_loop(a.n, a.work)

    print(f"\n{'way':<34} {'makespan':>10} {'ok':>11} {'tasks/s':>9} {'vs pilot':>9}")
    for name, secs, ok in [("sparky pilot mode", pilot_s, pilot_ok),
                           (f"sparky pilot mode, prefetch {slots}", prefetch_pilot["makespan_s"], prefetch_pilot["ok"]),
                           ("sparky, one sbatch per task", sbatch_s, sbatch_ok), ("plain sbatch loop", plain_s, plain_ok)]:
        print(f"{name:<34} {secs:9.2f}s {ok:>5}/{a.n:<5} {a.n / secs:9.1f} {secs / pilot_s:8.1f}x")
    floor_text = f"{floor_ms:.2f} ms" if floor_ms is not None else "not measured (no cc)"
    print(f"\nper task per lane, beyond the {WORK_S * 1000:.0f} ms of work ({a.n} tasks on {lanes} lane(s), ideal {ideal_s:.2f} s):")
    print(f"  process floor (posix_spawn + waitpid of `{' '.join(ARGV)}`, no queue): {floor_text}")
    for name, r in [("pilot mode", plain_pilot), (f"pilot mode, prefetch {slots}", prefetch_pilot)]:
        beyond = f"{r['beyond_floor_ms']:.2f} ms" if r["beyond_floor_ms"] is not None else "?"
        print(f"  {name:<22} {r['overhead_ms']:.2f} ms in all, {beyond} beyond the floor; first task started {r['startup_s']:.2f} s after"
              f" the submission (sbatch, Slurm's scheduling, the worker's start), then {r['steady_s']:.2f} s")
    ratio = sbatch_s / pilot_s
    # However fast pilot mode is, it cannot end before N x work / lanes: that bounds the ratio on this node.
    bound = sbatch_s / ideal_s
    best = min((r["beyond_floor_ms"] if r["beyond_floor_ms"] is not None else r["overhead_ms"]) for r in (plain_pilot, prefetch_pilot))
    print("\ntargets:")
    print(f"  [{'met   ' if ratio >= TARGET_RATIO else 'MISSED'}] pilot mode at least {TARGET_RATIO:.0f}x faster in makespan than one sbatch per task: "
          f"{ratio:.1f}x ({pilot_s:.2f} s vs {sbatch_s:.2f} s; a pilot mode with no overhead at all would reach {bound:.1f}x on {lanes} lane(s))")
    print(f"  [{'met   ' if best < TARGET_OVERHEAD_MS else 'MISSED'}] per-task overhead in pilot mode under {TARGET_OVERHEAD_MS:g} ms"
          f" (beyond the process floor): {plain_pilot['beyond_floor_ms'] if plain_pilot['beyond_floor_ms'] is None else round(plain_pilot['beyond_floor_ms'], 2)} ms,"
          f" {prefetch_pilot['beyond_floor_ms'] if prefetch_pilot['beyond_floor_ms'] is None else round(prefetch_pilot['beyond_floor_ms'], 2)} ms with prefetch")
    os.makedirs("bench/results", exist_ok=True)
    out = f"bench/results/pilot-{time.strftime('%Y%m%d-%H%M%S')}.json"
    with open(out, "w") as f:
        json.dump({"n": a.n, "work_s": WORK_S, "cpus": cpus, "pilots": pilots, "slots": slots,
                   "floor_ms_per_task": floor_ms, "pilot": plain_pilot, "pilot_prefetch": prefetch_pilot,
                   "sbatch_per_task": {"makespan_s": sbatch_s, "ok": sbatch_ok},
                   "plain_sbatch_loop": {"makespan_s": plain_s, "ok": plain_ok},
                   "ratio_sbatch_over_pilot": ratio, "ratio_bound_on_these_lanes": bound, "loadavg_at_end": os.getloadavg()}, f, indent=1)
    print(f"\nresults: {out}")
    if pilot_ok != a.n or prefetch_pilot["ok"] != a.n or sbatch_ok != a.n or plain_ok != a.n:
        print(f"bench: not every task succeeded (pilot {pilot_ok}, sbatch {sbatch_ok}, plain {plain_ok} of {a.n})", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
