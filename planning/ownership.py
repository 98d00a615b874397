"""Which process owns a running run, and whether that process is still alive.

An owner is `host:pid:start`, where `start` is the process's start time as the kernel reports it
(clock ticks since boot in /proc/PID/stat), so a recycled pid is never mistaken for the original.
Where /proc is missing (macOS), `start` is 0 and liveness falls back to signalling the pid.
"""

from __future__ import annotations

import os
import socket
from functools import cache


def _start_ticks(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except FileNotFoundError:
        return None
    except OSError:
        return 0
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    fields = stat[stat.rindex(b")") + 2 :].split()
    return int(fields[19])  # field 22 overall: starttime


def process_identity(pid: int) -> str:
    return f"{socket.gethostname()}:{pid}:{_start_ticks(pid) or 0}"


@cache
def this_process() -> str:
    return process_identity(os.getpid())


def is_alive(owner: str) -> bool:
    """Whether the process named by `owner` still runs. Owners on other hosts count as alive."""
    try:
        host, pid_text, start_text = owner.rsplit(":", 2)
        pid, start = int(pid_text), int(start_text)
    except ValueError:
        return False  # not an identity we wrote: nobody can be running it
    if host != socket.gethostname():
        return True
    ticks = _start_ticks(pid)
    if ticks is None:
        if os.path.isdir("/proc"):
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return start == 0 or ticks == start
