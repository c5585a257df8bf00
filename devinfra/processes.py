"""Process liveness from /proc: a pid is only ours while its start time matches the recorded one."""

from __future__ import annotations

import os
import time
from pathlib import Path


def pid_alive(pid: int, start_ticks: int | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    state = proc_stat(pid)
    if state is None:
        return True  # no /proc: trust kill(0)
    status, ticks = state
    if status == "Z":
        return False
    return start_ticks is None or ticks == start_ticks


def group_gone(pgid: int, timeout: float) -> bool:
    """Wait until no process is left in process group `pgid`."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks) from /proc/<pid>/stat, or None without /proc."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2:].split()
    return fields[0], int(fields[19])


def process_start_ticks(pid: int) -> int | None:
    state = proc_stat(pid)
    return None if state is None else state[1]
