"""Workflow metrics folded from run records, pure: counts by result, success and failure rates,
duration percentiles and runs per hour over a window `[start, end)` of creation times (docs/api.md,
"Workflow metrics").

- `total` counts every run created in the window, in progress and queued ones included;
- `successRate` and `failureRate` are fractions (0–1) of the window's *completed* runs that succeeded
  and failed (a cancelled run is neither); None while no run has completed;
- `durationMs` percentiles are over completed runs, creation to completion, by nearest rank;
- `runsPerHour` has one entry per UTC hour that overlaps the window, empty hours included.

Both modes fold the same `RunFact`s with `metrics_of`: embedded mode makes them from the stored runs
(`fact_of`), distributed mode from the run events (`libs/core/run_stats.py`), so the arithmetic is one.
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


@dataclass(frozen=True)
class RunFact:
    """What the metrics need of one run: its creation time, and once it completed its result and
    duration (creation to completion, in ms)."""

    created_at: float
    completed: bool = False
    result: str | None = None
    duration_ms: int = 0


def fact_of(run: Run) -> RunFact:
    completed = run.status == "COMPLETED"
    return RunFact(run.created_at, completed, run.result if completed else None, duration_ms(run) if completed else 0)


def metrics(workflow: str, runs: Iterable[Run], window: Window) -> dict[str, Any]:
    """The API's `metrics` object for `runs` (those created in `window`; others are ignored)."""
    return metrics_of(workflow, (fact_of(r) for r in runs), window)


def metrics_of(workflow: str, facts: Iterable[RunFact], window: Window) -> dict[str, Any]:
    """The `metrics` object of the runs `facts` describe (those created in `window`)."""
    inside = [f for f in facts if window.start <= f.created_at < window.end]
    results = [f.result for f in inside if f.completed]
    succeeded, failed = results.count("SUCCESS"), results.count("FAILED")
    return {
        "workflow": workflow, "from": to_iso(window.start), "to": to_iso(window.end), "total": len(inside),
        "succeeded": succeeded, "failed": failed, "cancelled": results.count("CANCELLED"),
        "successRate": _rate(succeeded, len(results)), "failureRate": _rate(failed, len(results)),
        "durationMs": percentiles(sorted(f.duration_ms for f in inside if f.completed)),
        "runsPerHour": per_hour(inside, window),
    }


def duration_ms(run: Run) -> int:
    return max(0, round(((run.completed_at or run.updated_at) - run.created_at) * 1000))


def percentiles(ordered: Sequence[int]) -> dict[str, int | None]:
    """Nearest-rank percentiles of ascending values: p-th is the smallest value with at least p% of
    the values at or below it."""
    return {f"p{p}": ordered[math.ceil(p / 100 * len(ordered)) - 1] if ordered else None for p in PERCENTILES}


def per_hour(facts: Iterable[RunFact], window: Window) -> list[dict[str, Any]]:
    hours = window.hours()
    total, failed = [0] * len(hours), [0] * len(hours)
    for fact in facts:
        i = int((fact.created_at - hours[0]) // HOUR)
        total[i] += 1
        failed[i] += fact.result == "FAILED"
    return [{"hour": to_iso(h), "total": t, "failed": f} for h, t, f in zip(hours, total, failed, strict=True)]


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None
