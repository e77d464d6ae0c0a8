#!/usr/bin/env python3
"""Sparky throughput benchmark driver (started by bench/throughput/run.sh; see bench/README.md).

Runs N trivial tasks (`true`) end to end on 2 slots through Sparky (a real `sparky serve` process,
HTTP on loopback), task-spooler, nq, `xargs -P2` and a process-spawn floor; then Sparky's
submit-to-start latency, idle RSS, /queue/status latency, and (unless --small) /queue/status
latency and restart time with 1,000,000 tasks queued.

With --baseline-dll, a second Sparky (another revision's build) is started, warmed up and timed in
the same rounds as the current one, as its own row, so a daemon change is measured before/after in
one run under the same machine load.

Exit status: 0 when everything ran (targets missed or not), 1 when anything errored (a tool
failed or timed out, Sparky lost or failed tasks, the daemon died), 2 on --strict with a missed
target. Only loopback traffic; only processes this script started are ever signalled, by pid.
"""
from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
from benchlib import free_port, log, proc_start_time  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")


class BenchError(Exception):
    """Something that makes the run invalid (as opposed to a missed target)."""


# What counts as "this part errored" (the run goes on with the next part, and exits 1).
FAILURES = (BenchError, OSError, http.client.HTTPException, subprocess.SubprocessError)


def pct(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile."""
    if not values:
        return None
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(round(p / 100.0 * len(s) + 0.5)) - 1))
    return s[k]


def fmt_ms(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2f} ms"


# ---------------------------------------------------------------- processes we start


class PidBook:
    """Every long-lived process we start is written here (pid, start time, label) so run.sh's EXIT
    trap can end exactly those, even if this driver is killed."""

    def __init__(self, path: str):
        self.path = path

    def add(self, pid: int, label: str) -> None:
        with open(self.path, "a") as f:
            f.write(f"{pid} {proc_start_time(pid)} {label}\n")


def rss_mib(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def rss_breakdown_mib(pid: int) -> dict:
    """VmRSS and its parts (anonymous, file-backed, shared memory) from /proc/PID/status, in MiB."""
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k = line.split(":")[0]
                if k in ("VmRSS", "RssAnon", "RssFile", "RssShmem"):
                    out[k] = int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return out


def fs_type(path: str) -> str:
    r = subprocess.run(["findmnt", "-n", "-o", "FSTYPE", "-T", path], capture_output=True, text=True)
    if r.returncode == 0 and r.stdout.strip():
        return r.stdout.strip()
    return subprocess.run(["stat", "-f", "-c", "%T", path], capture_output=True, text=True).stdout.strip()


def file_create_us(path: str, count: int) -> float:
    """What creating one empty file costs on this filesystem (open O_CREAT + close), in microseconds.
    Sparky creates two log files per task (stdout, stderr); tsp and nq one file per job."""
    d = os.path.join(path, "create-probe")
    os.makedirs(d)
    t0 = time.perf_counter()
    for i in range(count):
        os.close(os.open(os.path.join(d, f"f{i}"), os.O_CREAT | os.O_WRONLY, 0o644))
    us = (time.perf_counter() - t0) / count * 1e6
    for i in range(count):
        os.unlink(os.path.join(d, f"f{i}"))
    os.rmdir(d)
    return us


def cpu_seconds(pid: int, children: bool = False) -> float | None:
    """utime+stime of the process itself, or (children=True) of its reaped children."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
        i = 13 if children else 11
        return (int(rest[i]) + int(rest[i + 1])) / CLK_TCK
    except OSError:
        return None


# ---------------------------------------------------------------- HTTP


class Http:
    """A keep-alive HTTP/1.1 client on loopback (stdlib http.client, no proxies)."""

    def __init__(self, port: int, timeout: float = 120.0):
        self.port = port
        self.timeout = timeout
        self.conn: http.client.HTTPConnection | None = None
        self.last_used = 0.0

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def request(self, method: str, path: str, body: str | bytes | None = None) -> tuple[int, object]:
        retry_ok = method in ("GET", "HEAD")
        # The server drops idle keep-alive connections (Kestrel: after about 2 minutes); don't find out
        # by losing a POST.
        if self.conn is not None and time.monotonic() - self.last_used > 30:
            self.close()
        for attempt in (0, 1):
            fresh = self.conn is None
            if fresh:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            data = body.encode() if isinstance(body, str) else body
            headers = {"Content-Type": "application/json"} if data is not None else {}
            try:
                self.conn.request(method, path, body=data, headers=headers)
            except (BrokenPipeError, ConnectionResetError):
                # Sending failed on a connection the server had closed: the request was not taken.
                self.close()
                if attempt == 0 and not fresh:
                    continue
                raise
            try:
                r = self.conn.getresponse()
                raw = r.read()
                self.last_used = time.monotonic()
                if r.getheader("Connection", "").lower() == "close":
                    self.close()
            except (OSError, http.client.HTTPException):
                self.close()
                if attempt == 0 and retry_ok:
                    continue
                raise
            ctype = r.getheader("Content-Type", "")
            try:
                parsed: object = json.loads(raw) if "json" in ctype else raw.decode(errors="replace")
            except ValueError:
                parsed = raw.decode(errors="replace")
            return r.status, parsed
        raise AssertionError("unreachable")

    def get_json(self, path: str) -> dict:
        st, obj = self.request("GET", path)
        if st != 200 or not isinstance(obj, dict):
            raise BenchError(f"GET {path} -> {st}: {str(obj)[:300]}")
        return obj

    def submit(self, body: str, expect: int | None = None, max_wait_s: float = 300.0) -> list[str]:
        """POST /api/v1/tasks; waits out 429 back-pressure (Retry-After), anything else non-2xx is an error."""
        deadline = time.monotonic() + max_wait_s
        while True:
            st, obj = self.request("POST", "/api/v1/tasks", body)
            if st in (200, 201) and isinstance(obj, dict) and isinstance(obj.get("ids"), list):
                ids = obj["ids"]
                if expect is not None and len(ids) != expect:
                    raise BenchError(f"submitted {expect} tasks, got {len(ids)} ids back")
                return ids
            if st == 429 and time.monotonic() < deadline:
                time.sleep(0.2)
                continue
            raise BenchError(f"POST /api/v1/tasks -> {st}: {str(obj)[:300]}")


# ---------------------------------------------------------------- the daemon


# "Idle" RSS is read this long after the daemon's last task: two looks of its idle trim (every 5 s), which gives a
# burst's memory back once nothing has happened for a whole period, and a margin. --small (a smoke run: its RSS figures
# are not the ones reported) waits one second.
IDLE_WAIT_S = 12
IDLE_WAIT_SMALL_S = 1
# After a start, before the idle RSS: the full run waits 3 s for the start's work to settle, the smoke run (--small) 1 s.
START_SETTLE_S = 3
START_SETTLE_SMALL_S = 1


def daemon_command(exe: str) -> list[str]:
    """sparky.dll runs under dotnet (the JIT build); anything else is the native executable."""
    return ["dotnet", exe] if exe.endswith(".dll") else [exe]


class Daemon:
    def __init__(self, dll: str, data: str, port: int, book: PidBook, extra: list[str], logdir: str,
                 label: str = "sparky-daemon"):
        self.dll, self.data, self.port, self.book, self.extra, self.logdir = dll, data, port, book, extra, logdir
        self.label = label
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> float:
        """Starts `sparky serve`; returns seconds from process start until GET /readyz answers 200."""
        self.starts += 1
        logf = open(os.path.join(self.logdir, f"daemon-{self.starts}.log"), "wb")
        args = [*daemon_command(self.dll), "serve", "--data", self.data, "--http", f"127.0.0.1:{self.port}",
                "--zmq", "tcp://127.0.0.1:0", "--zmq-events", "tcp://127.0.0.1:0",  # free ports: no clash with a running daemon
                "--cpu-short-slots", "2", *self.extra]
        env = {k: v for k, v in os.environ.items() if not k.startswith("SPARKY_") and k not in ("DSPY_MODE", "DSPY_MAX_CONCURRENCY", "ENV_QUEUE_DIR")}
        env["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1"
        t0 = time.monotonic()
        self.proc = subprocess.Popen(args, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=self.logdir)
        logf.close()
        self.book.add(self.proc.pid, self.label)
        deadline = t0 + 120
        while True:
            if self.proc.poll() is not None:
                raise BenchError(f"sparky daemon exited with {self.proc.returncode} while starting; log: {self.log_tail()}")
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                c.request("GET", "/readyz")
                r = c.getresponse()
                r.read()
                c.close()
                if r.status == 200:
                    ready = time.monotonic() - t0
                    break
            except (OSError, http.client.HTTPException):
                pass
            if time.monotonic() > deadline:
                raise BenchError("sparky daemon not ready after 120 s; log: " + self.log_tail())
            time.sleep(0.01)
        # Make sure it is *our* daemon that answered (the port could have been taken in between).
        time.sleep(0.05)
        if self.proc.poll() is not None or f":{self.port}" not in self.log_text():
            raise BenchError(f"the daemon on port {self.port} is not ours; log: {self.log_tail()}")
        return ready

    def log_text(self) -> str:
        try:
            with open(os.path.join(self.logdir, f"daemon-{self.starts}.log"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def log_tail(self, n: int = 1500) -> str:
        return self.log_text()[-n:].replace("\n", " | ")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, grace_s: float = 30.0) -> float | None:
        """SIGTERM by pid, wait; SIGKILL after grace_s. Returns seconds to exit (None if killed)."""
        if self.proc is None or self.proc.poll() is not None:
            return 0.0
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(grace_s)
            return time.monotonic() - t0
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            return None


class EventListener(threading.Thread):
    """Follows GET /api/v1/events (SSE) and notes, per task id, the monotonic time each
    task.started / task.finished event arrived."""

    def __init__(self, port: int):
        super().__init__(daemon=True)
        self.port = port
        self.cond = threading.Condition()
        self.seen: dict[str, dict[str, float]] = {}
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=None)
        self.conn.request("GET", "/api/v1/events")
        self.resp = self.conn.getresponse()
        if self.resp.status != 200:
            raise BenchError(f"GET /api/v1/events -> {self.resp.status}")
        self.error: str | None = None

    def run(self) -> None:
        topic = None
        try:
            while True:
                line = self.resp.readline()
                if not line:
                    return
                now = time.monotonic()
                line = line.decode(errors="replace").rstrip("\r\n")
                if line.startswith("event:"):
                    topic = line[6:].strip()
                elif line.startswith("data:") and topic in ("task.started", "task.finished"):
                    try:
                        body = json.loads(line[5:]).get("body", {})
                    except ValueError:
                        continue
                    tid = body.get("id")
                    if tid:
                        with self.cond:
                            self.seen.setdefault(tid, {})[topic] = now
                            self.cond.notify_all()
                elif line == "":
                    topic = None
        except Exception as e:  # noqa: BLE001 - closing the socket ends the thread
            self.error = repr(e)

    def wait_for(self, tid: str, topic: str, timeout: float) -> float | None:
        deadline = time.monotonic() + timeout
        with self.cond:
            while topic not in self.seen.get(tid, {}):
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)
            return self.seen[tid][topic]

    def close(self) -> None:
        try:
            if self.conn.sock is not None:
                self.conn.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.conn.close()


def iso_ms(s: str) -> float:
    return dt.datetime.fromisoformat(s).timestamp() * 1000.0


def status_latency(client: Http, count: int) -> dict:
    lat = []
    for _ in range(count):
        t0 = time.perf_counter()
        client.get_json("/queue/status")
        lat.append((time.perf_counter() - t0) * 1000.0)
    return {"samples": count, "p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99), "max_ms": max(lat)}


# ---------------------------------------------------------------- the runs


def run_shell(script: str, env: dict | None = None, timeout: float = 600.0, what: str = "") -> None:
    try:
        r = subprocess.run(["bash", "-c", script], env=env, timeout=timeout, stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    except subprocess.TimeoutExpired:
        raise BenchError(f"{what}: timed out after {timeout:.0f} s")
    if r.returncode != 0:
        raise BenchError(f"{what}: exit {r.returncode}: {r.stderr.decode(errors='replace')[-500:]}")


def run_batch(d: Daemon, client: Http, n: int, batch: int) -> None:
    """Submits n tasks and waits until they are processed (used to warm the daemon up, untimed)."""
    base = int(client.get_json("/queue/status")["processed"])
    one = '{"payload":{"command":["true"]}}'
    left = n
    while left > 0:
        b = min(batch, left)
        client.submit("[" + ",".join([one] * b) + "]", expect=b)
        left -= b
    deadline = time.monotonic() + max(120.0, n * 0.05)
    while int(client.get_json("/queue/status")["processed"]) - base < n:
        if not d.alive() or time.monotonic() > deadline:
            raise BenchError("sparky: the warm-up run did not complete")
        time.sleep(0.02)


def bench_sparky(d: Daemon, client: Http, n: int, batch: int, warmup: int) -> dict:
    before = client.get_json("/queue/status")
    base_processed = int(before["processed"])
    cpu0 = cpu_seconds(d.pid)
    kids0 = cpu_seconds(d.pid, children=True)
    one = '{"payload":{"command":["true"]}}'
    t0 = time.monotonic()
    left = n
    while left > 0:
        b = min(batch, left)
        client.submit("[" + ",".join([one] * b) + "]", expect=b)
        left -= b
    t_sub = time.monotonic()
    deadline = t_sub + max(120.0, n * 0.05)
    st = None
    while True:
        st = client.get_json("/queue/status")
        if int(st["processed"]) - base_processed >= n:
            break
        if not d.alive():
            raise BenchError("sparky daemon died during the run: " + d.log_tail())
        if time.monotonic() > deadline:
            raise BenchError(f"sparky: only {int(st['processed']) - base_processed}/{n} processed after {deadline - t0:.0f} s: {st}")
        time.sleep(0.02)
    t1 = time.monotonic()
    cpu1 = cpu_seconds(d.pid)
    kids1 = cpu_seconds(d.pid, children=True)
    processed = int(st["processed"]) - base_processed
    failed = int(st["failed"]) - int(before["failed"])
    done = int(st["done"]) - int(before["done"])
    if processed != n or failed != 0 or done != n:
        raise BenchError(f"sparky lost or failed tasks: processed={processed} done={done} failed={failed} (wanted {n}); status {st}")
    secs = t1 - t0
    cpu = (cpu1 - cpu0) if cpu0 is not None and cpu1 is not None else None
    kids = (kids1 - kids0) if kids0 is not None and kids1 is not None else None
    return {"tool": "sparky", "n": n, "seconds": secs, "tasks_per_s": n / secs, "submit_seconds": t_sub - t0,
            "batch": batch, "daemon_cpu_seconds": cpu, "daemon_cpu_ms_per_task": cpu * 1000.0 / n if cpu is not None else None,
            "tasks_cpu_ms_per_task": kids * 1000.0 / n if kids is not None else None,
            "warmup_tasks": warmup,
            "note": f"HTTP POST /api/v1/tasks in batches of {batch}; completion polled every 20 ms (processed == N); "
                    f"timed after {warmup} untimed warm-up tasks (JIT); durable: SQLite WAL, synchronous=FULL; "
                    "per task: stdout and stderr files; starts and ends recorded (no fsync for those; the submission's commit is fsynced)"}


def bench_floor(n: int, floor_bin: str | None, timeout: float) -> dict:
    if floor_bin:
        how = "C: 2 forked lanes, each posix_spawn(/bin/true)+waitpid back to back"
        script = f"exec {floor_bin} {n} 2"
    else:
        how = "bash fallback (no C compiler): 2 background bash loops running /bin/true"
        script = (f"lane() {{ local i; for ((i=0;i<$1;i++)); do /bin/true || return 1; done; }}; "
                  f"lane {(n + 1) // 2} & p1=$!; lane {n // 2} & p2=$!; wait $p1 && wait $p2")
    t0 = time.monotonic()
    run_shell(script, timeout=timeout, what="spawn floor")
    secs = time.monotonic() - t0
    return {"tool": "spawn floor", "n": n, "seconds": secs, "tasks_per_s": n / secs, "note": how}


def bench_xargs(n: int, timeout: float) -> dict:
    t0 = time.monotonic()
    run_shell(f"seq {n} | xargs -P2 -n1 true", timeout=timeout, what="xargs -P2")
    secs = time.monotonic() - t0
    return {"tool": "xargs -P2", "n": n, "seconds": secs, "tasks_per_s": n / secs,
            "note": "seq N | xargs -P2 -n1 true (each true gets one number as its argument); no queue, no records"}


def bench_tsp(n: int, tsp: str, work: str, timeout: float, rnd: int) -> dict:
    tdir = os.path.join(work, f"tsp{rnd}")
    os.makedirs(tdir, exist_ok=True)
    env = dict(os.environ, TS_SOCKET=os.path.join(tdir, "socket"), TMPDIR=tdir, TS_SLOTS="2",
               TS_MAXFINISHED=str(n + 100), TS_MAXCONN="1000")
    env.pop("TS_ENV", None)
    env.pop("TS_ONFINISH", None)
    try:
        # Start the server and set 2 slots outside the timing.
        run_shell(f"{tsp} -S 2", env=env, timeout=30, what="tsp -S 2")
        t0 = time.monotonic()
        run_shell(f"for ((i=0;i<{n};i++)); do {tsp} true >/dev/null || exit 1; done", env=env, timeout=timeout, what="tsp submit")
        t_sub = time.monotonic()
        # Jobs are numbered 0..N-1 on a fresh server. Wait for the last one (`tsp -w`), then for any
        # job the listing does not show finished yet (on 2 slots an earlier one can outlive the last).
        run_shell(f"{tsp} -w {n - 1} ; true", env=env, timeout=timeout, what="tsp -w")
        deadline = time.monotonic() + 60
        while True:
            listing = subprocess.run([tsp, "-l"], env=env, capture_output=True, timeout=60).stdout.decode(errors="replace")
            ok = bad = 0
            unfinished = []
            for line in listing.splitlines()[1:]:
                f = line.split()
                if len(f) >= 2 and f[1] == "finished":
                    if len(f) >= 4 and f[3] == "0":
                        ok += 1
                    else:
                        bad += 1
                elif len(f) >= 2:
                    unfinished.append(f[0])
            if not unfinished or time.monotonic() > deadline:
                break
            run_shell(" ; ".join(f"{tsp} -w {j}" for j in unfinished) + " ; true", env=env, timeout=60, what="tsp -w")
        t1 = time.monotonic()
    finally:
        subprocess.run([tsp, "-K"], env=env, capture_output=True, timeout=30)
    if ok != n or bad:
        raise BenchError(f"tsp: {ok} jobs finished with 0, {bad} failed, wanted {n}")
    secs = t1 - t0
    return {"tool": "task-spooler", "n": n, "seconds": secs, "tasks_per_s": n / secs, "submit_seconds": t_sub - t0,
            "note": f"`{os.path.basename(tsp)} true` N times from a bash loop, TS_SLOTS=2, output to a file per job "
                    "(its default); in memory, not durable"}


def bench_nq(n: int, work: str, timeout: float, rnd: int) -> dict:
    qdir = os.path.join(work, f"nq{rnd}")
    os.makedirs(qdir, exist_ok=True)
    env = dict(os.environ, NQDIR=qdir)
    t0 = time.monotonic()
    run_shell(f"for ((i=0;i<{n};i++)); do nq -q true || exit 1; done", env=env, timeout=timeout, what="nq submit")
    t_sub = time.monotonic()
    run_shell("nq -w", env=env, timeout=timeout, what="nq -w")
    t1 = time.monotonic()
    files = [f for f in os.listdir(qdir) if f.startswith(",")]
    ok = 0
    for f in files:
        with open(os.path.join(qdir, f), errors="replace") as fh:
            if "[exited with status 0.]" in fh.read():
                ok += 1
    if len(files) != n or ok != n:
        raise BenchError(f"nq: {len(files)} job files, {ok} exited 0, wanted {n}")
    secs = t1 - t0
    return {"tool": "nq", "n": n, "seconds": secs, "tasks_per_s": n / secs, "submit_seconds": t_sub - t0,
            "note": "`nq -q true` N times from a bash loop; nq runs jobs ONE AT A TIME in submission order "
                    "(no slots: 1 lane, not 2), each queued job waits as its own process on flock(2)"}


def bench_latency(d: Daemon, client: Http, samples: int) -> dict:
    """Single tasks, one at a time, on an otherwise idle daemon (the previous one has finished and
    we pause 50 ms before the next)."""
    ev = EventListener(d.port)
    ev.start()
    one = '{"payload":{"command":["true"]}}'
    ids, client_start, client_ack = [], [], []
    try:
        time.sleep(0.2)
        for _ in range(samples):
            time.sleep(0.05)
            t0 = time.monotonic()
            [tid] = client.submit(one, expect=1)
            t_ack = time.monotonic()
            t_started = ev.wait_for(tid, "task.started", 10.0)
            if t_started is None:
                raise BenchError(f"latency: no task.started event for {tid} within 10 s (listener: {ev.error})")
            if ev.wait_for(tid, "task.finished", 10.0) is None:
                raise BenchError(f"latency: {tid} did not finish within 10 s")
            ids.append(tid)
            client_start.append((t_started - t0) * 1000.0)
            client_ack.append((t_ack - t0) * 1000.0)
    finally:
        ev.close()
    server = []
    for tid in ids:
        t = client.get_json(f"/api/v1/tasks/{tid}")
        if t.get("state") != "succeeded":
            raise BenchError(f"latency task {tid} is {t.get('state')}")
        server.append(iso_ms(t["started_at"]) - iso_ms(t["submitted_at"]))
    return {
        "samples": samples,
        "server_p50_ms": pct(server, 50), "server_p99_ms": pct(server, 99), "server_max_ms": max(server),
        "client_start_p50_ms": pct(client_start, 50), "client_start_p99_ms": pct(client_start, 99),
        "client_ack_p50_ms": pct(client_ack, 50), "client_ack_p99_ms": pct(client_ack, 99),
        "note": "server: started_at - submitted_at from GET /api/v1/tasks/{id} (millisecond timestamps); "
                "client: from just before POST to the task.started event arriving on GET /api/v1/events; "
                "ack: POST round trip (returns after the durable commit)",
    }


def bench_queued(args, dll: str, work: str, book: PidBook, results: dict) -> None:
    m = args.queued
    batch = 10_000
    data = os.path.join(work, "data-1m")
    port = free_port()
    # The default bound (max_queued) is exactly 1,000,000; leave room so the bound is not what we measure.
    d = Daemon(dll, data, port, book, ["--max-queued", str(max(2 * m, 1_000_000))], work)
    out: dict = {"target_queued": m}
    results["queued"] = out
    client = Http(port, timeout=600)
    try:
        d.start()
        blocker = '{"id":"blocker","class":"cpu_long","payload":{"command":["sleep","100000"]}}'
        client.submit(blocker, expect=1)
        deadline = time.monotonic() + 30
        while client.get_json("/api/v1/tasks/blocker").get("state") != "running":
            if time.monotonic() > deadline:
                raise BenchError("the blocker task did not start")
            time.sleep(0.02)
        bpid = None
        t = client.get_json("/api/v1/tasks/blocker")
        if t.get("attempt_list"):
            bpid = t["attempt_list"][-1].get("pid")
        if bpid:
            book.add(int(bpid), "blocker-pgrp")
        log(f"\n== {m:,} queued tasks (blocker: class cpu_long so it is re-attached, not lost, across the restart)")
        one = '{"payload":{"command":["true"]},"after":["blocker"]}'
        full = "[" + ",".join([one] * batch) + "]"
        t0 = time.monotonic()
        sent = 0
        budget_hit = False
        next_report = 100_000
        while sent < m:
            b = min(batch, m - sent)
            client.submit(full if b == batch else "[" + ",".join([one] * b) + "]", expect=b)
            sent += b
            el = time.monotonic() - t0
            if sent >= next_report or sent == m:
                log(f"   submitted {sent:>9,} in {el:7.1f} s  ({sent / el:,.0f} tasks/s)  rss {rss_mib(d.pid) or 0:.0f} MiB")
                while next_report <= sent:
                    next_report += 100_000
            if el > args.queue_budget and sent < m:
                budget_hit = True
                break
        sub_s = time.monotonic() - t0
        out.update({"queued": sent, "submit_seconds": sub_s, "submit_tasks_per_s": sent / sub_s, "batch": batch,
                    "budget_hit": budget_hit, "extrapolated_seconds_for_target": sub_s * m / sent})
        if budget_hit:
            log(f"   submission budget ({args.queue_budget:.0f} s) spent at {sent:,} tasks; "
                f"{m:,} would take about {sub_s * m / sent:,.0f} s at this rate")
        st = client.get_json("/queue/status")
        if int(st["pending"]) != sent or int(st["running"]) != 1:
            raise BenchError(f"after submitting {sent} blocked tasks: {st}")
        time.sleep(3)
        out["rss_mib_queued"] = rss_mib(d.pid)
        out["db_mib"] = sum(os.path.getsize(os.path.join(data, f)) for f in os.listdir(data) if f.startswith("sparky.db")) / 2**20
        out["status"] = status_latency(client, 200)
        log(f"   /queue/status with {sent:,} queued: p50 {fmt_ms(out['status']['p50_ms'])}  p99 {fmt_ms(out['status']['p99_ms'])}"
            f"   (daemon RSS {out['rss_mib_queued']:.0f} MiB, store {out['db_mib']:.0f} MiB)")
        client.close()
        stop_s = d.stop(grace_s=120)
        out["stop_seconds"] = stop_s
        if stop_s is None:
            raise BenchError("the daemon did not stop within 120 s of SIGTERM (killed)")
        restart_s = d.start()
        out["restart_seconds"] = restart_s
        st = client.get_json("/queue/status")
        out["status_after_restart"] = st
        out["rss_mib_after_restart"] = rss_mib(d.pid)
        log(f"   SIGTERM -> exit {stop_s:.2f} s; restart (process start -> /readyz 200) {restart_s:.2f} s; "
            f"after restart: pending {st['pending']}, running {st['running']}, RSS {out['rss_mib_after_restart']:.0f} MiB")
        ready_line = [l for l in d.log_text().splitlines() if "ready in" in l]
        if ready_line:
            out["daemon_reported_ready"] = ready_line[-1].strip()
            log(f"   daemon says: {ready_line[-1].strip()}")
        if int(st["pending"]) != sent:
            raise BenchError(f"after the restart {st['pending']} tasks are queued, wanted {sent}")
        out["status_after_restart_latency"] = status_latency(client, 200)
        if int(st["running"]) != 1:
            log(f"   note: the blocker is not running after the restart (running={st['running']})")
        # Cancel the blocker (its dependants then fail with dependency_failed), then stop the daemon.
        stc, obj = client.request("DELETE", "/api/v1/tasks/blocker")
        if stc != 202:
            raise BenchError(f"DELETE /api/v1/tasks/blocker -> {stc}: {obj}")
        time.sleep(0.5)
    finally:
        client.close()
        d.stop(grace_s=60)


def lower_median(values: list[float]) -> float | None:
    """The median as the table takes it: the lower middle of an even count."""
    s = sorted(v for v in values if v is not None)
    return s[(len(s) - 1) // 2] if s else None


def compare_baseline(results: dict, cur: list[dict], base: list[dict], bname: str) -> None:
    """Prints and stores current/baseline for tasks/s and CPU per task: the medians over rounds, and (with more
    than one round) each round's pair, run under the same load, so their spread shows the noise."""
    out = results["baseline"]
    metrics = (("tasks_per_s", "tasks/s", "{:.1f}"),
               ("daemon_cpu_ms_per_task", "daemon CPU per task", "{:.3f} ms"),
               ("tasks_cpu_ms_per_task", "task processes CPU per task", "{:.3f} ms"))
    comp: dict = {"rounds_current": len(cur), "rounds_baseline": len(base)}
    out["comparison"] = comp
    log(f"\nsparky vs {bname} (current / baseline; medians over rounds, both timed in the same rounds):")
    if not cur or not base:
        log("  n/a: " + ("the current sparky" if not cur else bname) + " has no completed round")
        return
    by_round = {r["round"]: r for r in base}
    pairs = [(r, by_round[r["round"]]) for r in cur if r["round"] in by_round]
    for key, label, fmt in metrics:
        c = lower_median([r.get(key) for r in cur])
        b = lower_median([r.get(key) for r in base])
        ratio = c / b if c is not None and b else None
        each = [a[key] / z[key] for a, z in pairs if a.get(key) is not None and z.get(key)]
        comp[key] = {"current": c, "baseline": b, "ratio": ratio, "ratio_each_round": each}
        if ratio is None:
            log(f"  {label:<28} n/a")
            continue
        line = f"  {label:<28} {ratio:5.2f}x   ({fmt.format(c)} vs {fmt.format(b)})"
        if len(each) > 1:
            line += "   each round: " + " ".join(f"{v:.2f}" for v in each)
        log(line)
    log("  (tasks/s above 1.00x: the current is faster; CPU per task below 1.00x: the current is cheaper)")

    def mib(v):
        return "n/a" if v is None else f"{v:.1f} MiB"
    log(f"  daemon RSS idle after start: {mib(results.get('rss_idle_start_mib'))} vs {mib(out.get('rss_idle_start_mib'))}; "
        f"idle after the rounds: {mib(results.get('rss_idle_after_run_mib'))} vs {mib(out.get('rss_idle_after_run_mib'))}")


# ---------------------------------------------------------------- main


def _terminate(signum, frame):  # noqa: ARG001
    raise SystemExit(128 + signum)  # unwinds through the finally blocks that stop what we started


def main() -> int:
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, _terminate)
    ap = argparse.ArgumentParser()
    ap.add_argument("--small", action="store_true")
    ap.add_argument("--strict", action="store_true")
    ap.add_argument("--n", type=int, required=True)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--queued", type=int, default=1_000_000)
    ap.add_argument("--queue-budget", type=float, default=900.0)
    ap.add_argument("--latency-samples", type=int, default=0)
    ap.add_argument("--warmup", type=int, default=-1)
    ap.add_argument("--rounds", type=int, default=0)
    ap.add_argument("--nq-once", action="store_true")
    ap.add_argument("--dll", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--tsp", default="")
    ap.add_argument("--floor-bin", default="")
    ap.add_argument("--results", required=True)
    ap.add_argument("--baseline-dll", default="", help="another build of sparky, timed in the same rounds as --dll")
    ap.add_argument("--baseline-label", default="baseline", help="its name in the table: sparky @LABEL")
    ap.add_argument("--baseline-rev", default="", help="the commit it was built from (recorded in the JSON)")
    args = ap.parse_args()
    n = args.n
    samples = args.latency_samples or (50 if args.small else 200)
    args.rounds = args.rounds or (1 if args.small else 3)
    if args.warmup < 0:
        args.warmup = 300 if args.small else 1000
    tool_timeout = 120.0 if args.small else 900.0
    book = PidBook(os.path.join(args.work, "pids"))
    started = dt.datetime.now(dt.timezone.utc)
    results: dict = {
        "started_at": started.isoformat(), "mode": "small" if args.small else "full", "n": n,
        "machine": {"cpus": os.cpu_count(), "kernel": platform.release(), "loadavg_at_start": os.getloadavg(),
                    "tmp_fs": fs_type(args.work), "file_create_us": file_create_us(args.work, 300 if args.small else 1000)},
        "errors": [],
    }
    runs: list[dict] = []
    errors: list[str] = results["errors"]

    log(f"sparky throughput benchmark: N={n} trivial tasks (`true`), 2 slots, {os.cpu_count()} CPUs, "
        f"load {os.getloadavg()[0]:.2f}")
    results["daemon"] = "jit" if args.dll.endswith(".dll") else "native"
    log(f"daemon: {' '.join(daemon_command(args.dll))} ({'dotnet, JIT' if results['daemon'] == 'jit' else 'Native AOT'})")
    bname = f"sparky @{args.baseline_label}"
    if args.baseline_dll:
        bkind = "jit" if args.baseline_dll.endswith(".dll") else "native"
        results["baseline"] = {"label": args.baseline_label, "tool": bname, "exe": args.baseline_dll,
                               "rev": args.baseline_rev or None, "daemon": bkind}
        log(f"baseline ({bname}): {' '.join(daemon_command(args.baseline_dll))} "
            f"({'dotnet, JIT' if bkind == 'jit' else 'Native AOT'}){', commit ' + args.baseline_rev if args.baseline_rev else ''}")
        if bkind != results["daemon"]:
            log("   note: the baseline and the current daemon are not the same kind of build (JIT vs Native AOT): not like for like")
    log(f"scratch dir {args.work}: {results['machine']['tmp_fs']}, creating one empty file costs "
        f"{results['machine']['file_create_us']:.0f} us")

    # ---- Sparky's daemon: started once, idle RSS, warmed up; then every tool in round-robin rounds
    # (so a noisy neighbour hurts them alike), the median round of each reported.
    port = free_port()
    d = Daemon(args.dll, os.path.join(args.work, "data"), port, book, [], args.work)
    client = Http(port)
    have_nq = subprocess.run(["bash", "-c", "command -v nq"], capture_output=True).returncode == 0
    if not args.tsp:
        errors.append("task-spooler (tsp/ts) is not installed")
    if not have_nq:
        errors.append("nq is not installed")
    all_runs: dict[str, list[dict]] = {}
    bd: Daemon | None = None
    bclient: Http | None = None
    name_w = max(13, len(bname)) if args.baseline_dll else 13
    try:
        ready_s = d.start()
        results["sparky_first_start_seconds"] = ready_s
        time.sleep(START_SETTLE_SMALL_S if args.small else START_SETTLE_S)
        results["rss_idle_start_mib"] = rss_mib(d.pid)
        results["rss_idle_start_breakdown_mib"] = rss_breakdown_mib(d.pid)
        results["status_idle"] = status_latency(client, 200)
        if args.baseline_dll:
            # Started after the current daemon's idle measurements (its start-up CPU would colour them); a failed
            # baseline is an error, but the rest of the run goes on without it.
            bdir = os.path.join(args.work, "baseline")
            os.makedirs(bdir, exist_ok=True)
            bd = Daemon(args.baseline_dll, os.path.join(bdir, "data"), free_port(), book, [], bdir, "sparky-baseline-daemon")
            bclient = Http(bd.port)
            try:
                results["baseline"]["first_start_seconds"] = bd.start()
                time.sleep(START_SETTLE_SMALL_S if args.small else START_SETTLE_S)
                results["baseline"]["rss_idle_start_mib"] = rss_mib(bd.pid)
                results["baseline"]["rss_idle_start_breakdown_mib"] = rss_breakdown_mib(bd.pid)
            except FAILURES as e:
                errors.append(f"{bname}: {e}")
                log(f"   ERROR {bname}: {e}")
                bclient.close()
                bd.stop()
                bd = bclient = None
        if args.warmup > 0:
            run_batch(d, client, args.warmup, args.batch)
            if bd is not None and bclient is not None:
                run_batch(bd, bclient, args.warmup, args.batch)
            if any(x.endswith(".dll") for x in (args.dll, args.baseline_dll or "")):
                time.sleep(2)  # tiered JIT recompiles the hot paths in the background (a native build has no JIT)
        for rnd in range(1, args.rounds + 1):
            # With a baseline the two Sparkys run back to back, their order swapped every round, so neither
            # always follows the other.
            sparkies = [("sparky", d, client)]
            if bd is not None and bclient is not None:
                sparkies.append((bname, bd, bclient))
            if rnd % 2 == 0:
                sparkies.reverse()
            plan = [(name, lambda dd=dd, cc=cc: bench_sparky(dd, cc, n, args.batch, args.warmup))
                    for name, dd, cc in sparkies]
            plan += [("spawn floor", lambda: bench_floor(n, args.floor_bin or None, tool_timeout)),
                     ("xargs -P2", lambda: bench_xargs(n, tool_timeout))]
            if args.tsp:
                plan.append(("task-spooler", lambda: bench_tsp(n, args.tsp, args.work, tool_timeout, rnd)))
            # nq last in a round, and (by default) only in the last round: its herd of N waiting
            # processes loads the machine for minutes at N=5000 and would colour the next round.
            if have_nq and (rnd == args.rounds or not args.nq_once):
                plan.append(("nq", lambda: bench_nq(n, args.work, tool_timeout, rnd)))
            for name, fn in plan:
                if (name == "sparky" and not d.alive()) or (name == bname and bd is not None and not bd.alive()):
                    continue
                time.sleep(0.3 if args.small else 1)  # let the previous tool's stragglers (done files, zombies) settle
                try:
                    r = fn()
                    r["round"] = rnd
                    if name == bname:
                        r["tool"] = bname
                        r["note"] += f"; the baseline: {args.baseline_rev or args.baseline_dll}"
                    all_runs.setdefault(name, []).append(r)
                    extra = (f", CPU per task: daemon {r['daemon_cpu_ms_per_task']:.2f} ms, task processes {r['tasks_cpu_ms_per_task']:.2f} ms"
                             if r.get("daemon_cpu_ms_per_task") is not None and r.get("tasks_cpu_ms_per_task") is not None else "")
                    log(f"   round {rnd}  {name:<{name_w}} {n} tasks in {r['seconds']:7.2f} s  {r['tasks_per_s']:8.1f} tasks/s{extra}")
                except FAILURES as e:
                    errors.append(f"{name} (round {rnd}): {e}")
                    log(f"   ERROR {name} (round {rnd}): {e}")
        time.sleep(IDLE_WAIT_SMALL_S if args.small else IDLE_WAIT_S)
        results["rss_idle_after_run_mib"] = rss_mib(d.pid)
        results["rss_idle_after_run_breakdown_mib"] = rss_breakdown_mib(d.pid)
        if bd is not None:
            results["baseline"]["rss_idle_after_run_mib"] = rss_mib(bd.pid)
            results["baseline"]["rss_idle_after_run_breakdown_mib"] = rss_breakdown_mib(bd.pid)
            # Done with the baseline: the latency samples and the rest are the current daemon's alone.
            if bclient is not None:
                bclient.close()
            bd.stop()
        try:
            results["latency"] = bench_latency(d, client, samples)
        except FAILURES as e:
            errors.append(str(e))
            log(f"   ERROR {e}")
        time.sleep(IDLE_WAIT_SMALL_S if args.small else IDLE_WAIT_S)
        results["rss_idle_end_mib"] = rss_mib(d.pid)
    except FAILURES as e:
        errors.append(str(e))
        log(f"   ERROR {e}")
    finally:
        client.close()
        d.stop()
        if bclient is not None:
            bclient.close()
        if bd is not None:
            bd.stop()

    runs: list[dict] = []
    names = ["sparky", *([bname] if args.baseline_dll else []), "spawn floor", "xargs -P2", "task-spooler", "nq"]
    for name in names:
        rs = all_runs.get(name)
        if not rs:
            continue
        med = sorted(rs, key=lambda r: r["tasks_per_s"])[(len(rs) - 1) // 2]  # the median round (lower middle)
        row = dict(med)
        row["rounds"] = len(rs)
        row["tasks_per_s_all_rounds"] = [r["tasks_per_s"] for r in rs]
        runs.append(row)
    sp = next((r for r in runs if r["tool"] == "sparky"), None)
    for r in runs:
        r["sparky_ratio"] = sp["tasks_per_s"] / r["tasks_per_s"] if sp else None
    results["runs"] = runs
    results["all_rounds"] = all_runs

    log("")
    tool_w = max([14, *(len(r["tool"]) for r in runs)])
    log(f"{'tool':<{tool_w}} {'N':>7} {'rounds':>6} {'seconds':>9} {'tasks/s':>10} {'sparky ratio':>13}   tasks/s of each round")
    for r in runs:
        ratio = f"{r['sparky_ratio']:.2f}x" if r.get("sparky_ratio") is not None else "n/a"
        each = " ".join(f"{v:.0f}" for v in r["tasks_per_s_all_rounds"])
        log(f"{r['tool']:<{tool_w}} {r['n']:>7} {r['rounds']:>6} {r['seconds']:>9.3f} {r['tasks_per_s']:>10.1f} {ratio:>13}   {each}")
    log("  (seconds and tasks/s: the median round; sparky ratio = sparky's tasks/s / the tool's tasks/s)")
    if args.baseline_dll:
        compare_baseline(results, all_runs.get("sparky", []), all_runs.get(bname, []), bname)
    for r in runs:
        log(f"  {r['tool']}: {r['note']}")
    lat = results.get("latency")
    if lat:
        log(f"\nsubmit-to-start, {lat['samples']} single tasks on an idle daemon:")
        log(f"  server timestamps (started_at - submitted_at): p50 {fmt_ms(lat['server_p50_ms'])}  p99 {fmt_ms(lat['server_p99_ms'])}  max {fmt_ms(lat['server_max_ms'])}")
        log(f"  client (before POST -> task.started event):    p50 {fmt_ms(lat['client_start_p50_ms'])}  p99 {fmt_ms(lat['client_start_p99_ms'])}")
        log(f"  POST round trip (durable ack):                 p50 {fmt_ms(lat['client_ack_p50_ms'])}  p99 {fmt_ms(lat['client_ack_p99_ms'])}")
    if "status_idle" in results:
        s = results["status_idle"]
        log(f"/queue/status, near-empty store: p50 {fmt_ms(s['p50_ms'])}  p99 {fmt_ms(s['p99_ms'])}")
    def mib(v):
        return "n/a" if v is None else f"{v:.1f} MiB"
    log(f"daemon RSS (VmRSS): idle after start {mib(results.get('rss_idle_start_mib'))}, "
        f"idle after the run {mib(results.get('rss_idle_after_run_mib'))}, at the end {mib(results.get('rss_idle_end_mib'))}")
    for key, label in (("rss_idle_start_breakdown_mib", "after start"), ("rss_idle_after_run_breakdown_mib", "after the run")):
        b = results.get(key) or {}
        if b:
            log(f"  {label}: anon {b.get('RssAnon', 0):.1f} MiB, file-backed {b.get('RssFile', 0):.1f} MiB, shmem {b.get('RssShmem', 0):.1f} MiB")

    # ---- 1M queued
    if not args.small and not errors:
        try:
            bench_queued(args, args.dll, args.work, book, results)
        except FAILURES as e:
            errors.append(f"queued: {e}")
            log(f"   ERROR queued: {e}")

    # ---- targets
    targets = []

    def target(name, measured, ok, goal):
        targets.append({"target": name, "goal": goal, "measured": measured, "met": ok})

    by = {r["tool"]: r for r in runs}
    if sp and "task-spooler" in by:
        f = sp["tasks_per_s"] / by["task-spooler"]["tasks_per_s"]
        target("sparky vs task-spooler tasks/s", f"{f:.2f}x", f >= 2, ">= 2x (sparky durable)")
    if sp and "spawn floor" in by:
        f = sp["tasks_per_s"] / by["spawn floor"]["tasks_per_s"]
        target("sparky vs spawn floor", f"{f * 100:.1f}%", f >= 0.6, ">= 60%")
    if lat:
        target("submit-to-start p50 (server timestamps)", fmt_ms(lat["server_p50_ms"]), lat["server_p50_ms"] < 5, "< 5 ms")
    if results.get("rss_idle_start_mib") is not None:
        v = results["rss_idle_start_mib"]
        target("daemon idle RSS after start", mib(v), v < 60, "< 60 MB")
    if results.get("rss_idle_after_run_mib") is not None:
        v = results["rss_idle_after_run_mib"]
        target("daemon idle RSS after the run", mib(v), v < 60, "< 60 MB")
    q = results.get("queued", {})
    if q.get("status"):
        target(f"/queue/status p50 with {q['queued']:,} queued", fmt_ms(q["status"]["p50_ms"]), q["status"]["p50_ms"] < 5, "< 5 ms (1,000,000 queued)")
    if q.get("restart_seconds") is not None:
        target(f"restart with {q['queued']:,} queued", f"{q['restart_seconds']:.2f} s", q["restart_seconds"] < 5, "< 5 s (1,000,000 queued)")
    results["targets"] = targets

    log("\ntargets:")
    for t in targets:
        log(f"  [{'met   ' if t['met'] else 'MISSED'}] {t['target']}: {t['measured']} (goal {t['goal']})")
    if lat:
        log(f"  [info  ] submit-to-start p50 seen by the client (POST -> task.started event): {fmt_ms(lat['client_start_p50_ms'])}")
    if args.small:
        log("  (--small: the 1,000,000-queued measurements are skipped)")
    if errors:
        log("\nERRORS:")
        for e in errors:
            log(f"  {e}")

    results["finished_at"] = dt.datetime.now(dt.timezone.utc).isoformat()
    results["machine"]["loadavg_at_end"] = os.getloadavg()
    os.makedirs(os.path.dirname(args.results), exist_ok=True)
    with open(args.results, "w") as f:
        json.dump(results, f, indent=2)
    log(f"\nresults: {args.results}")
    if errors:
        return 1
    if args.strict and not all(t["met"] for t in targets):
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
