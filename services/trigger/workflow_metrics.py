"""Workflow metrics. Embedded mode: the runs of a window read page by page and folded by
`libs/core/run_metrics.py`. Distributed mode (a Kafka bus): the hourly buckets the notifier's stream
app folded from the run events and wrote to the store (`libs/core/run_stats.py`), folded by the same
arithmetic. The run summary of the workflow list comes from count queries on the runs in both."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from libs.core.instants import to_iso
from libs.core.run import Run
from libs.core.run_metrics import Window, metrics, metrics_of
from libs.core.run_stats import STORE_KIND, Bucket, facts, window_keys
from libs.store.ports import EntryStore, RunFilter, RunStore

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


def from_stream(bus_url: str) -> bool:
    """Whether the metrics come from the notifier's fold: in distributed mode, where it runs."""
    return bus_url.startswith("kafka://")


async def folded_metrics(store: EntryStore, workflow_key: str, shown_as: str, window: Window) -> dict[str, Any]:
    return metrics_of(shown_as, facts(await buckets_in(store, workflow_key, window)), window)


async def buckets_in(store: EntryStore, workflow_key: str, window: Window) -> list[Bucket]:
    """The stored buckets of the window's hours, listed by the keys' common prefix (ISO hours sort
    in time order)."""
    keys = window_keys(workflow_key, window)
    prefix, wanted = _common_prefix(keys[0], keys[-1]), set(keys)
    found: list[Bucket] = []
    offset = 0
    while page := await store.list_entries(STORE_KIND, prefix=prefix, limit=PAGE, offset=offset):
        found += [e.data["runs"] for e in page if e.key in wanted]
        offset += len(page)
    return found


def _common_prefix(first: str, last: str) -> str:
    size = next((i for i, (a, b) in enumerate(zip(first, last, strict=False)) if a != b), min(len(first), len(last)))
    return first[:size]


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
