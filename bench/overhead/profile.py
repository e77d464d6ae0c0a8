#!/usr/bin/env python3
"""Where a task's microseconds go in the daemon: perf record -g on a real `sparky serve` while N tasks of `true` run
(--mode real: processes, as bench/throughput runs them) or N no-op tasks (--mode noop: bench_noop_classes, as
bench/overhead runs them), 2 slots; then every sample of the daemon's threads is put in one part (the first rule whose
marker is in its stack) and the parts are scaled by the daemon's CPU per task from /proc. See bench/README.md.

  bench/overhead/profile.py --sparky artifacts/native/sparky --mode real --n 3000
  (the native build's symbols are in sparky.dbg beside it; for sparky.dll it sets DOTNET_PerfMapEnabled=1)

Needs perf (linux-perf) and root or kernel.perf_event_paranoid <= 1. Prints the table; keeps perf.data with --keep DIR.
"""
import argparse, collections, json, os, shutil, signal, socket, subprocess, sys, tempfile, time, urllib.request

# (part, markers): a sample goes to the first part one of whose markers is in its stack (frames, and "@<thread name>").
PARTS = [
    ("spawning: posix_spawn, clone, exec", ["ProcessLauncher__Launch", "kernel_clone", "copy_process", "__wait_for_common",
                                            "wake_up_new_task", "flush_tlb_mm_range"]),
    ("cgroups: make, move into, read usage, remove", ["Containment__", "MemoryControl__", "kernfs", "cgroup"]),
    ("GC: collections, allocation slow path", ["gc_heap::", "WKS::gc", "GCHeap::GarbageCollect", "SVR::", "RhpGcAlloc", "GCHeap::Alloc"]),
    ("log files: shard dir, notes, result line", ["TaskLogs__", "ResultLine__"]),
    ("SIGCHLD and reaping", ["ProcessLauncher__Reap", "@.NET SigHandler"]),
    ("store writes (the writer thread)", ["@sparky-store-wr"]),
    ("HTTP door and JSON (Kestrel, parse, answer)", ["Kestrel", "Sparky_Server_Http_", "System_Net_Sockets", "AspNetCore"]),
    ("events: publish, ZeroMQ PUB", ["@sparky-zmq-even", "EventHub__", "EventStream"]),
    ("metrics", ["Metrics"]),
    ("progress follower", ["@sparky-progress"]),
    ("thread wake-ups and context switches", ["finish_task_switch", "futex", "do_sched_yield", "LowLevelSpinWaiter",
                                              "LowLevelLifoSemaphore", "__schedule"]),
    ("engine loop: lifecycle, scheduler, records", ["@sparky-engine"]),
    ("thread pool: dispatch, continuations", ["@.NET TP Worker", "@.NET Sockets"]),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sparky", required=True)
    ap.add_argument("--mode", choices=["noop", "real"], default="real")
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--warmup", type=int, default=3000)
    ap.add_argument("--keep", help="a directory to keep perf.data and the folded parts in")
    a = ap.parse_args()
    if not shutil.which("perf"):
        sys.exit("profile.py: perf is missing (apt-get install linux-perf)")
    work = tempfile.mkdtemp(prefix="sparky-profile-")
    try:
        cpu_ms, rate, data = record(a, work)
        parts, samples = fold(data)
        print(f"{a.mode}: {a.n} tasks, {rate:.0f} tasks/s under perf, daemon CPU {cpu_ms:.3f} ms/task, {samples} samples; load {os.getloadavg()[0]:.1f}")
        print(f"| part | µs per task | share |\n|---|---:|---:|")
        for part, n in parts.most_common():
            print(f"| {part} | {cpu_ms * 1000 * n / samples:.1f} | {100 * n / samples:.1f}% |")
        if a.keep:
            os.makedirs(a.keep, exist_ok=True)
            shutil.copy(data, os.path.join(a.keep, f"perf-{a.mode}.data"))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def record(a, work):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPARKY_")}
    env["DOTNET_PerfMapEnabled"] = "1"
    exe = ["dotnet", a.sparky] if a.sparky.endswith(".dll") else [a.sparky]
    cmd = exe + ["serve", "--data", os.path.join(work, "data"), "--http", f"127.0.0.1:{port}", "--zmq", "tcp://127.0.0.1:0",
                 "--zmq-events", "tcp://127.0.0.1:0", "--cpu-short-slots", "2"]
    if a.mode == "noop":
        cmd += ["--bench-noop-classes", "cpu_short"]
    daemon = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}/"
    try:
        for _ in range(1200):
            try:
                if urllib.request.urlopen(base + "readyz", timeout=2).status == 200: break
            except OSError: time.sleep(0.1)
        run(base, a.warmup, daemon)
        c0 = cpu_ticks(daemon.pid)
        data = os.path.join(work, "perf.data")
        perf = subprocess.Popen(["perf", "record", "-F", "1999", "--call-graph", "fp", "-p", str(daemon.pid), "-o", data],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        t0 = time.time()
        run(base, a.n, daemon)
        secs = time.time() - t0
        perf.send_signal(signal.SIGINT); perf.wait()
        return (cpu_ticks(daemon.pid) - c0) * 10 / a.n, a.n / secs, data
    finally:
        daemon.send_signal(signal.SIGTERM)
        try: daemon.wait(30)
        except subprocess.TimeoutExpired: daemon.kill()


def run(base, n, daemon):
    get = lambda p: json.load(urllib.request.urlopen(base + p, timeout=30))
    before = get("queue/status")["processed"]
    one = '{"payload":{"command":["true"]}}'
    for left in range(n, 0, -1000):
        body = ("[" + ",".join([one] * min(1000, left)) + "]").encode()
        urllib.request.urlopen(urllib.request.Request(base + "api/v1/tasks", data=body, headers={"Content-Type": "application/json"}), timeout=60).read()
    while get("queue/status")["processed"] - before < n:
        if daemon.poll() is not None: sys.exit("profile.py: the daemon died")
        time.sleep(0.02)


def cpu_ticks(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(f[11]) + int(f[12])


def fold(data):
    """Samples of the daemon's own threads (the tasks' processes, `true` and `sh`, are left out), by part."""
    out = subprocess.run(["perf", "script", "-i", data, "-F", "comm,tid,ip,sym"], capture_output=True, text=True, errors="replace").stdout
    parts, samples = collections.Counter(), 0
    for block in out.split("\n\n"):
        lines = block.strip("\n").split("\n")
        if not lines or not lines[0].strip(): continue
        comm = lines[0].rsplit(None, 1)[0].strip()
        if comm in ("true", "sh"): continue
        stack = "\n".join(lines[1:]) + "\n@" + comm
        samples += 1
        parts[next((p for p, marks in PARTS if any(m in stack for m in marks)), "other")] += 1
    return parts, max(samples, 1)


if __name__ == "__main__":
    main()
