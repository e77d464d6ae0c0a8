#!/usr/bin/env python3
"""The CLI's cost per call (started by bench/cli/run.sh; see bench/README.md).

`sparky submit -- true` against a real daemon on loopback, beside `tsp true` (task-spooler) and `nq -q true`, and
`sparky --help` alone: whole processes, as a shell loop starts them. Two measurements:

- per call: each command started from here (posix_spawn, stdout to a file) and reaped with wait4, the tools taking
  turns call by call so that they share the machine's load; wall time and CPU time (user+sys) of each call, median
  and p90;
- the shell loop: `for ((i=0;i<N;i++)); do CMD >/dev/null; done` in bash, whole loop timed, per call = total / N
  (bash's own fork included, as a user meets it), with `true` alone as the floor.

With --baseline, another sparky build (before a change) is timed in the same turns as its own row. Every id a
submit printed is looked up afterwards: an acknowledged submission must be in the daemon's store.

Exit status: 0 when every call ran (targets missed or not), 1 when a call failed or a submitted task is missing,
2 on --strict with a missed target. Only processes this script started are signalled, by pid.
"""
from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import platform
import shlex
import signal
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
from benchlib import free_port, log, proc_start_time  # noqa: E402


class BenchError(Exception):
    """Something that makes the run invalid (as opposed to a missed target)."""


def pct(values: list[float], p: int) -> float | None:
    """The p-th percentile (statistics' inclusive method: the median for 50)."""
    if len(values) < 2:
        return values[0] if values else None
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


def loadavg() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


running: int | None = None  # the call or loop being timed, ended by pid if the run is stopped meanwhile


def spawn_timed(argv: list[str], env: dict, out_fd: int) -> tuple[int, float, float]:
    """Starts argv with stdout on out_fd, waits; returns (exit status, wall ms, CPU ms of the process and its reaped
    children)."""
    actions = [(os.POSIX_SPAWN_DUP2, out_fd, 1), (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0)]
    global running
    t0 = time.perf_counter()
    pid = running = os.posix_spawnp(argv[0], argv, env, file_actions=actions)
    _, status, ru = os.wait4(pid, 0)
    running = None
    wall = (time.perf_counter() - t0) * 1000
    return os.waitstatus_to_exitcode(status), wall, (ru.ru_utime + ru.ru_stime) * 1000


class Daemon:
    """`sparky serve` on a free loopback port and a scratch data dir; its pid goes to the pid book first thing."""

    def __init__(self, exe: str, work: str, pids: str):
        self.port = free_port()
        self.log_path = os.path.join(work, "daemon.log")
        env = {k: v for k, v in os.environ.items() if not k.startswith("SPARKY_") and k not in ("DSPY_MODE", "ENV_QUEUE_DIR")}
        with open(self.log_path, "wb") as logf:
            self.proc = subprocess.Popen(
                [exe, "serve", "--data", os.path.join(work, "data"), "--http", f"127.0.0.1:{self.port}",
                 "--zmq", "tcp://127.0.0.1:0", "--zmq-events", "tcp://127.0.0.1:0", "--mode", "laptop", "--cpu-short-slots", "2"],
                stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=work)
        with open(pids, "a") as f:
            f.write(f"{self.proc.pid} {proc_start_time(self.proc.pid)} sparky-daemon\n")
        deadline = time.monotonic() + 120
        while self.get("/readyz")[0] != 200:
            if self.proc.poll() is not None:
                raise BenchError(f"the daemon exited with {self.proc.returncode} while starting: {self.log_tail()}")
            if time.monotonic() > deadline:
                raise BenchError("the daemon was not ready after 120 s: " + self.log_tail())
            time.sleep(0.02)
        if f":{self.port}" not in open(self.log_path, errors="replace").read():
            raise BenchError(f"the daemon on port {self.port} is not ours: {self.log_tail()}")

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            c.request("GET", path)
            r = c.getresponse()
            body = r.read()
            c.close()
            return r.status, body
        except (OSError, http.client.HTTPException):
            return 0, b""

    def log_tail(self) -> str:
        try:
            return open(self.log_path, errors="replace").read()[-1500:].replace("\n", " | ")
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def summary(walls: list[float], cpus: list[float]) -> dict:
    return {"calls": len(walls), "wall_ms_median": pct(walls, 50), "wall_ms_p90": pct(walls, 90),
            "cpu_ms_median": pct(cpus, 50), "cpu_ms_p90": pct(cpus, 90)}


def per_call(tools: dict[str, tuple[list[str], dict]], n: int, work: str, kind: str) -> tuple[dict, list[str]]:
    """n calls of each tool, taking turns (the order rotates each turn), the i-th tool's stdout appended to
    work/<kind>-<i>.txt; returns per-tool summaries and errors."""
    names = list(tools)
    walls: dict[str, list[float]] = {t: [] for t in names}
    cpus: dict[str, list[float]] = {t: [] for t in names}
    errors: list[str] = []
    outs = {t: os.open(os.path.join(work, f"{kind}-{i}.txt"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644) for i, t in enumerate(names)}
    try:
        for i in range(n):
            for k in range(len(names)):
                t = names[(i + k) % len(names)]
                argv, env = tools[t]
                rc, wall, cpu = spawn_timed(argv, env, outs[t])
                if rc != 0:
                    errors.append(f"{t}: `{shlex.join(argv)}` exited {rc}")
                    if len(errors) > 20:
                        raise BenchError("; ".join(errors[:5]))
                walls[t].append(wall)
                cpus[t].append(cpu)
    finally:
        for fd in outs.values():
            os.close(fd)
    return {t: summary(walls[t], cpus[t]) for t in names}, errors


def shell_loop(cmd: str, env: dict, n: int) -> dict:
    """A bash loop of n calls, timed whole: per call wall and CPU (bash's forks and every child's)."""
    script = f"for ((i=0;i<{n};i++)); do {cmd} >/dev/null || exit 1; done"
    rc, wall, cpu = spawn_timed(["bash", "-c", script], env, 1)
    if rc != 0:
        raise BenchError(f"the loop `{script}` exited {rc}")
    return {"calls": n, "total_s": wall / 1000, "wall_ms_per_call": wall / n, "cpu_ms_per_call": cpu / n}


def check_ids(d: Daemon, path: str, expected: int, label: str) -> list[str]:
    """Every id the submits printed is a task the daemon has (an acknowledged submission is durable)."""
    ids = [line.strip() for line in open(path) if line.strip()]
    missing = [i for i in ids if d.get(f"/api/v1/tasks/{i}")[0] != 200]
    errors = []
    if len(ids) != expected:
        errors.append(f"{label}: printed {len(ids)} ids for {expected} submits")
    if missing:
        errors.append(f"{label}: {len(missing)} printed ids not in the daemon (first {missing[0]})")
    return errors


def _terminate(signum, frame):  # noqa: ARG001
    raise SystemExit(128 + signum)  # unwinds through the finally that stops the daemon and tsp


def main() -> int:
    signal.signal(signal.SIGTERM, _terminate)
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, required=True, help="submits per tool")
    ap.add_argument("--help-n", type=int, required=True, help="`sparky --help` calls")
    ap.add_argument("--sparky", required=True)
    ap.add_argument("--baseline", default="", help="another sparky build, timed in the same turns")
    ap.add_argument("--baseline-label", default="baseline")
    ap.add_argument("--tsp", default="")
    ap.add_argument("--work", required=True)
    ap.add_argument("--results", required=True)
    ap.add_argument("--small", action="store_true")
    ap.add_argument("--strict", action="store_true")
    args = ap.parse_args()
    n = args.n
    results: dict = {
        "benchmark": "cli", "when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "small": args.small,
        "machine": {"host": platform.node(), "cpus": os.cpu_count(), "load_before": loadavg()},
        "sparky": args.sparky, "baseline": args.baseline or None, "n": n, "help_n": args.help_n,
    }
    errors: list[str] = []
    log(f"bench/cli: {n} submits per tool, {args.help_n} `sparky --help`; {os.cpu_count()} CPUs, load {loadavg()}")
    pids = os.path.join(args.work, "pids")
    d = Daemon(args.sparky, args.work, pids)
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("SPARKY_") and k not in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY")}
    sparky_env = dict(base_env, SPARKY_SERVER=f"127.0.0.1:{d.port}")
    tsp_env = dict(base_env, TS_SOCKET=os.path.join(args.work, "tsp.socket"), TMPDIR=args.work, TS_SLOTS="2",
                   TS_MAXFINISHED=str(4 * n + 100), TS_MAXCONN="1000")
    nq_dir = os.path.join(args.work, "nq")
    os.makedirs(nq_dir)
    nq_env = dict(base_env, NQDIR=nq_dir)
    cwd = os.path.join(args.work, "cwd")
    os.makedirs(cwd)
    os.chdir(cwd)  # the tasks' working directory, and where tsp/nq write nothing else
    try:
        submit: dict[str, tuple[list[str], dict]] = {"sparky submit": ([args.sparky, "submit", "--", "true"], sparky_env)}
        if args.baseline:
            submit[f"sparky@{args.baseline_label} submit"] = ([args.baseline, "submit", "--", "true"], sparky_env)
        if args.tsp:
            subprocess.run([args.tsp, "-S", "2"], env=tsp_env, capture_output=True, timeout=30, check=True)
            submit["tsp"] = ([args.tsp, "true"], tsp_env)
        else:
            errors.append("task-spooler missing: no tsp row")
        submit["nq"] = (["nq", "-q", "true"], nq_env)
        helps: dict[str, tuple[list[str], dict]] = {"sparky --help": ([args.sparky, "--help"], base_env)}
        if args.baseline:
            helps[f"sparky@{args.baseline_label} --help"] = ([args.baseline, "--help"], base_env)

        # Warm the page cache and the daemon: untimed.
        per_call(submit, 5, args.work, "warm")
        per_call(helps, 3, args.work, "warm-help")

        log("per call (tools taking turns):")
        calls, errs = per_call(submit, n, args.work, "submit")
        errors += errs
        hcalls, errs = per_call(helps, args.help_n, args.work, "help")
        errors += errs
        calls.update(hcalls)
        for t, s in calls.items():
            log(f"  {t:<28} wall median {s['wall_ms_median']:6.2f} ms  p90 {s['wall_ms_p90']:6.2f} ms   "
                f"CPU median {s['cpu_ms_median']:6.2f} ms  p90 {s['cpu_ms_p90']:6.2f} ms")
        results["per_call"] = calls
        errors += check_ids(d, os.path.join(args.work, "submit-0.txt"), n, "sparky submit")
        if args.baseline:
            errors += check_ids(d, os.path.join(args.work, "submit-1.txt"), n, f"sparky@{args.baseline_label} submit")

        log(f"shell loop (`for ((i=0;i<{n};i++)); do CMD >/dev/null; done`, per call):")
        loops = {"/bin/true (the floor)": shell_loop("/bin/true", base_env, n)}
        for t, (argv, env) in submit.items():
            loops[t] = shell_loop(shlex.join(argv), env, n)
        for t, s in loops.items():
            log(f"  {t:<28} {s['wall_ms_per_call']:6.2f} ms wall, {s['cpu_ms_per_call']:6.2f} ms CPU per call ({s['total_s']:.2f} s)")
        results["shell_loop"] = loops
    except (BenchError, OSError, subprocess.SubprocessError) as e:
        errors.append(str(e))
    finally:
        if running is not None:
            os.kill(running, signal.SIGKILL)
            os.waitpid(running, 0)
        if args.tsp:
            subprocess.run([args.tsp, "-K"], env=tsp_env, capture_output=True, timeout=30)
        d.stop()

    targets = {}
    loops = results.get("shell_loop", {})
    per = results.get("per_call", {})
    if "tsp" in loops and "sparky submit" in loops:
        ratio = loops["sparky submit"]["wall_ms_per_call"] / loops["tsp"]["wall_ms_per_call"]
        targets["submit_loop_vs_tsp"] = {"ratio": ratio, "target": 2.0, "met": ratio <= 2.0}
        log(f"target: a submit in a shell loop within 2x of tsp: {ratio:.2f}x {'met' if ratio <= 2.0 else 'MISSED'}")
    if "tsp" in per and "sparky submit" in per:
        ratio = per["sparky submit"]["wall_ms_median"] / per["tsp"]["wall_ms_median"]
        log(f"        per call (medians): {ratio:.2f}x tsp's wall, "
            f"{per['sparky submit']['cpu_ms_median'] / max(per['tsp']['cpu_ms_median'], 1e-9):.2f}x its CPU")
        targets["submit_call_vs_tsp"] = {"ratio": ratio}
    if "sparky --help" in per:
        h = per["sparky --help"]["wall_ms_median"]
        targets["help_wall_ms"] = {"median": h, "target": 3.0, "met": h < 3.0}
        log(f"target: `sparky --help` under 3 ms: {h:.2f} ms {'met' if h < 3.0 else 'MISSED'}")
    if args.baseline:
        for verb in ("submit", "--help"):
            cur, old = per.get(f"sparky {verb}"), per.get(f"sparky@{args.baseline_label} {verb}")
            if cur and old:
                log(f"before/after, {verb}: wall {old['wall_ms_median']:.2f} -> {cur['wall_ms_median']:.2f} ms, "
                    f"CPU {old['cpu_ms_median']:.2f} -> {cur['cpu_ms_median']:.2f} ms (medians)")
    results["targets"] = targets
    results["machine"]["load_after"] = loadavg()
    results["errors"] = errors
    with open(args.results, "w") as f:
        json.dump(results, f, indent=2)
    log(f"load after: {loadavg()}; results: {args.results}")
    for e in errors:
        log(f"ERROR: {e}")
    if errors:
        return 1
    if args.strict and not all(t.get("met", True) for t in targets.values()):
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
