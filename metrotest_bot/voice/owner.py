"""Which process serves a call, so a worker starting after a crash can tell its dead neighbour's calls.

A call row records the process that served it: host, kernel boot, pid and the pid's start time
(a pid is reused; its start time tells two apart). A worker on the same host and boot can then see
that process is gone — a `kill -9`, an out-of-memory kill, a worker restarted by gunicorn — and close
its calls as lost at once, with what was said, instead of waiting for them to look silent. Calls
served on other machines are judged by silence alone (voice/abandoned.py).
"""
from __future__ import annotations

import os
import socket
from functools import lru_cache
from pathlib import Path


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()[:8]
    except OSError:
        return "-"


def _start_ticks(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (/proc/<pid>/stat, field 22); None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    except OSError:
        return "-"  # no /proc to read: unknown, so never judged dead on it
    # The command name (field 2) may hold spaces and parentheses: count fields after its last ')'.
    return stat.rsplit(")", 1)[1].split()[19]


def host_key() -> str:
    return f"{socket.gethostname()[:60]}/{_boot_id()}"


@lru_cache(maxsize=1)
def _me(pid: int) -> str:
    return f"{host_key()}/{pid}/{_start_ticks(pid) or '-'}"


def this_process() -> str:
    """This process's identity as written in `calls.worker` (a forked worker gets its own)."""
    return _me(os.getpid())


def is_gone(worker: str | None) -> bool:
    """Is the process that wrote `worker` certainly dead? Only decidable on the same host and boot."""
    if not worker:
        return False
    parts = worker.rsplit("/", 2)
    if len(parts) != 3:
        return False
    host, pid, ticks = parts
    if host != host_key() or not pid.isdigit():
        return False
    now = _start_ticks(int(pid))
    if now is None:
        return True
    return ticks != "-" and now != "-" and now != ticks  # the pid was reused by another process
