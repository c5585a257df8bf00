"""The API's read of the notifier's buckets (distributed mode, services/trigger/workflow_metrics.py):
exactly the buckets of the window's hours of that workflow, across a month boundary, folded to the
numbers embedded mode computes from the same runs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from libs.core.instants import parse_instant
from libs.core.run import Run
from libs.core.run_metrics import Window, fact_of, metrics
from libs.core.run_stats import STORE_KIND, Bucket, bucket_key, hour_of
from libs.store.sqlite import SqliteStore
from services.trigger.workflow_metrics import folded_metrics, from_stream

EDGE = parse_instant("2026-06-01T00:00:00Z")
"""A month boundary: the window's bucket keys share only `wf@2026-0`."""


def run(n: int, created: float, result: str | None, seconds: float, workflow: str = "wf") -> Run:
    done = {"status": "COMPLETED", "result": result, "completed_at": created + seconds} if result else {}
    return Run(id=f"wfr_fold{n:012d}", workflow=workflow, version=1, created_at=created, updated_at=created,
               check_at=created, **done)


RUNS = [run(1, EDGE - 5400, "SUCCESS", 1.5), run(2, EDGE - 1800, "FAILED", 2.0), run(3, EDGE + 60, None, 0),
        run(4, EDGE + 3700, "CANCELLED", 9.0), run(5, EDGE - 9000, "SUCCESS", 1.0),  # before the window
        run(6, EDGE + 60, "FAILED", 1.0, workflow="wf-2"), run(7, EDGE + 60, "FAILED", 1.0, workflow="w")]


def buckets(runs: list[Run]) -> dict[str, Bucket]:
    """What the notifier writes for these runs (creation times in ms, as the events carry them)."""
    found: dict[str, Bucket] = {}
    for r in runs:
        fact = fact_of(r)
        entry = [round(r.created_at * 1000), 3, fact.result, fact.duration_ms if fact.completed else None]
        found.setdefault(bucket_key(r.workflow, hour_of(r.created_at)), {})[r.id] = entry
    return found


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(str(tmp_path / "stepline.db"))
    await s.open()
    for key, bucket in buckets(RUNS).items():
        await s.put_entry(STORE_KIND, key, {"runs": bucket}, now=0.0)
    yield s
    await s.close()


async def test_the_window_reads_only_its_hours_of_its_workflow(store: SqliteStore) -> None:
    window = Window(EDGE - 7200, EDGE + 7200)
    answer = await folded_metrics(store, "wf", "wf", window)
    assert answer == metrics("wf", [r for r in RUNS if r.workflow == "wf"], window)
    assert (answer["total"], answer["succeeded"], answer["failed"], answer["cancelled"]) == (4, 1, 1, 1)
    assert [h["total"] for h in answer["runsPerHour"]] == [1, 1, 1, 1]


async def test_no_bucket_means_no_runs(store: SqliteStore) -> None:
    answer = await folded_metrics(store, "wf", "wf", Window(EDGE + 86400, EDGE + 90000))
    assert (answer["total"], answer["successRate"], answer["durationMs"]["p50"]) == (0, None, None)


def test_the_fold_is_read_on_a_kafka_bus_only() -> None:
    assert from_stream("kafka://127.0.0.1:9092") and not from_stream("memory://")
