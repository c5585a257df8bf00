"""The lock-free store-call histogram: Prometheus' exposition of cumulative buckets, count and sum."""

from __future__ import annotations

import contextlib
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from libs.core.errors import NotFoundError
from libs.store.sqlite import SqliteStore
from libs.telemetry import metrics
from libs.telemetry.loop_histogram import LoopHistogram


def exposition(histogram: LoopHistogram) -> str:
    registry = CollectorRegistry()
    registry.register(histogram)
    return generate_latest(registry).decode()


def test_buckets_are_cumulative_with_count_and_sum() -> None:
    histogram = LoopHistogram("t_seconds", "test", ("op",), (0.1, 1.0))
    for value in (0.05, 0.1, 0.5, 3.0):
        histogram.observe(("read",), value)
    histogram.observe(("write",), 0.2)
    text = exposition(histogram)
    assert 't_seconds_bucket{le="0.1",op="read"} 2.0' in text
    assert 't_seconds_bucket{le="1.0",op="read"} 3.0' in text
    assert 't_seconds_bucket{le="+Inf",op="read"} 4.0' in text
    assert 't_seconds_count{op="read"} 4.0' in text and 't_seconds_sum{op="read"} 3.65' in text
    assert 't_seconds_bucket{le="0.1",op="write"} 0.0' in text and 't_seconds_count{op="write"} 1.0' in text


async def test_every_sqlite_statement_is_observed(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "db.sqlite"))
    await store.open()
    labels = ("sqlite", "SELECT", "runs")
    before = metrics.STORE_CALLS._series.get(labels, [0.0])[0:-1]  # noqa: SLF001 - the counts it keeps
    with contextlib.suppress(NotFoundError):
        await store.get_run("wfr_none")
    after = metrics.STORE_CALLS._series[labels][0:-1]  # noqa: SLF001
    assert sum(after) == sum(before) + 1
    await store.close()
