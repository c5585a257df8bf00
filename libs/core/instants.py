"""Instants as text: epoch seconds ↔ ISO 8601 UTC with milliseconds (`2024-05-01T12:00:00.000Z`),
the form every time takes in node outputs and the API."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache


@lru_cache(maxsize=1024)
def to_iso(epoch: float) -> str:
    """`1700000000.5` → `"2023-11-14T22:13:20.500Z"`. Remembered: a run's trigger time is shown to
    each of its nodes' templates, and one state change's time to each of its events."""
    moment = datetime.fromtimestamp(epoch, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_instant(text: str) -> float:
    """Epoch seconds of an ISO 8601 timestamp (`Z` or an offset; a naive one is taken as UTC).
    ValueError when it is not one."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("not an ISO 8601 timestamp")
    raw = text.strip()
    if raw[-1] in "zZ":
        raw = raw[:-1] + "+00:00"
    moment = datetime.fromisoformat(raw)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
