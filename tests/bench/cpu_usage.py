"""CPU time by component from /proc: where a distributed benchmark's processor time goes.

Wall-clock throughput on a small shared machine says as much about the neighbours as about the
engine; CPU milliseconds per node completion, per process, say what each component costs. Linux only
(elsewhere every figure reads 0).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2:].split()


def process_cpu(pid: int) -> float:
    """User + system seconds of one process (all its threads)."""
    fields = _stat_fields(pid)
    return 0.0 if fields is None else (int(fields[11]) + int(fields[12])) / _TICK


def tree_cpu(pid: int) -> float:
    """User + system seconds of a process and of its live children (PostgreSQL's postmaster and its
    backends, which each start a session of their own, so a process group would miss them)."""
    total = 0.0
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else ():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None and (int(entry.name) == pid or int(fields[1]) == pid):
            total += (int(fields[11]) + int(fields[12])) / _TICK
    return total


def machine_busy() -> float:
    """Busy CPU seconds of the whole machine since boot (every core: user, nice, system, irq, softirq, steal)."""
    try:
        first = Path("/proc/stat").read_text().splitlines()[0].split()
    except OSError:
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in first[1:9])
    return (user + nice + system + irq + softirq + steal) / _TICK


class CpuMeter:
    """Snapshots of named CPU counters; `since(before)` is the CPU seconds each used in between."""

    def __init__(self, parts: dict[str, Callable[[], float]]) -> None:
        self.parts = parts

    def snapshot(self) -> dict[str, float]:
        return {name: read() for name, read in self.parts.items()} | {"machine": machine_busy()}

    def since(self, before: dict[str, float]) -> dict[str, float]:
        now = self.snapshot()
        return {name: max(now[name] - before.get(name, 0.0), 0.0) for name in now}
