"""Workflow metrics in embedded mode (and whenever the API reads them from the store): the runs of a
window read page by page and folded by `libs/core/run_metrics.py`; the run summary of the workflow
list from count queries."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from libs.core.instants import to_iso
from libs.core.run import Run
from libs.core.run_metrics import Window, metrics
from libs.store.ports import RunFilter, RunStore

PAGE = 1000
DAY = 86400.0


async def runs_in(store: RunStore, workflow_key: str, window: Window) -> list[Run]:
    """Every run of the workflow created in the window (a run inserted while paging is read once)."""
    flt = RunFilter(workflows=(workflow_key,), created_from=window.start, created_to=window.end)
    seen: dict[str, Run] = {}
    while True:
        page, total = await store.list_runs(flt, limit=PAGE, offset=len(seen))
        seen.update((r.id, r) for r in page)
        if not page or len(seen) >= total:
            return list(seen.values())


async def workflow_metrics(store: RunStore, workflow_key: str, shown_as: str, window: Window) -> dict[str, Any]:
    return metrics(shown_as, await runs_in(store, workflow_key, window), window)


async def run_summary(store: RunStore, workflow_key: str, now: float) -> dict[str, Any]:
    """`lastRun` (its creation time), `lastRunStatus` (its result once completed, else `IN_PROGRESS`
    or `QUEUED`), `runs7d` and `successRate` (of the runs created in the last 30 days that completed)."""
    mine = RunFilter(workflows=(workflow_key,))
    last, _ = await store.list_runs(mine, limit=1, offset=0)
    month = replace(mine, created_from=now - 30 * DAY, statuses=("COMPLETED",))
    completed, succeeded = await _count(store, month), await _count(store, replace(month, results=("SUCCESS",)))
    return {"lastRun": to_iso(last[0].created_at) if last else None,
            "lastRunStatus": _status(last[0]) if last else None,
            "runs7d": await _count(store, replace(mine, created_from=now - 7 * DAY)),
            "successRate": succeeded / completed if completed else None}


async def _count(store: RunStore, flt: RunFilter) -> int:
    return (await store.list_runs(flt, limit=0, offset=0))[1]


def _status(run: Run) -> str:
    if run.status == "COMPLETED":
        return run.result or "FAILED"
    return "QUEUED" if run.queued else run.status
