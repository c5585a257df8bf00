"""Reading the servers' log files: the last lines of a start, and whether a start logged a line."""

from __future__ import annotations

from pathlib import Path

LOG_TAIL_LINES = 40


def tail(path: Path, lines: int, offset: int = 0) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except OSError:
        return "(no log file)"
    text = data.decode("utf-8", "replace").splitlines()
    return "\n".join(text[-lines:]) or "(log is empty)"


def log_contains(path: Path, offset: int, needle: str) -> bool:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return needle.encode() in f.read()
    except OSError:
        return False
