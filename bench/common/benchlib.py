"""What the Python benchmarks (bench/throughput, bench/cli) share: imported after adding bench/common to sys.path."""
from __future__ import annotations

import socket


def log(msg: str = "") -> None:
    print(msg, flush=True)


def free_port() -> int:
    """A loopback port free at the moment of asking."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def proc_start_time(pid: int) -> str:
    """A process's start time (/proc/PID/stat field 22), "0" when it is gone: with the pid, it names one process, so a
    pid reused meanwhile is never signalled."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except OSError:
        return "0"
