"""Workflow metrics folded from run records, pure: counts by result, success and failure rates,
duration percentiles and runs per hour over a window `[start, end)` of creation times (docs/api.md,
"Workflow metrics").

- `total` counts every run created in the window, in progress and queued ones included;
- `successRate` and `failureRate` are fractions (0–1) of the window's *completed* runs that succeeded
  and failed (a cancelled run is neither); None while no run has completed;
- `durationMs` percentiles are over completed runs, creation to completion, by nearest rank;
- `runsPerHour` has one entry per UTC hour that overlaps the window, empty hours included.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from libs.core.instants import to_iso
from libs.core.run import Run

HOUR = 3600.0
PERCENTILES = (50, 90, 99)


@dataclass(frozen=True)
class Window:
    start: float
    end: float

    def hours(self) -> list[float]:
        """The start of every UTC hour that overlaps the window."""
        first = math.floor(self.start / HOUR) * HOUR
        return [first + i * HOUR for i in range(max(0, math.ceil((self.end - first) / HOUR)))]


def metrics(workflow: str, runs: Iterable[Run], window: Window) -> dict[str, Any]:
    """The API's `metrics` object for `runs` (those created in `window`; others are ignored)."""
    inside = [r for r in runs if window.start <= r.created_at < window.end]
    results = [r.result for r in inside if r.status == "COMPLETED"]
    succeeded, failed = results.count("SUCCESS"), results.count("FAILED")
    return {
        "workflow": workflow, "from": to_iso(window.start), "to": to_iso(window.end), "total": len(inside),
        "succeeded": succeeded, "failed": failed, "cancelled": results.count("CANCELLED"),
        "successRate": _rate(succeeded, len(results)), "failureRate": _rate(failed, len(results)),
        "durationMs": percentiles(sorted(duration_ms(r) for r in inside if r.status == "COMPLETED")),
        "runsPerHour": per_hour(inside, window),
    }


def duration_ms(run: Run) -> int:
    return max(0, round(((run.completed_at or run.updated_at) - run.created_at) * 1000))


def percentiles(ordered: Sequence[int]) -> dict[str, int | None]:
    """Nearest-rank percentiles of ascending values: p-th is the smallest value with at least p% of
    the values at or below it."""
    return {f"p{p}": ordered[math.ceil(p / 100 * len(ordered)) - 1] if ordered else None for p in PERCENTILES}


def per_hour(runs: Iterable[Run], window: Window) -> list[dict[str, Any]]:
    hours = window.hours()
    total, failed = [0] * len(hours), [0] * len(hours)
    for run in runs:
        i = int((run.created_at - hours[0]) // HOUR)
        total[i] += 1
        failed[i] += run.result == "FAILED"
    return [{"hour": to_iso(h), "total": t, "failed": f} for h, t, f in zip(hours, total, failed)]


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None
