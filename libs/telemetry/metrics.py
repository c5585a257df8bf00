"""Prometheus metrics of a Stepline process (prometheus-client's default registry) and their text
exposition, whole (a service's health port) or limited to one workspace's series (the API's
`/metrics`, for a key of that workspace).

Run and node metrics are folded from the run events (`observe`, called by the notifier, which
consumes every event once per deployment); dead letters are counted by the bus that publishes them,
expression limit breaches by the evaluator that stops them.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from libs.contracts import v1
from libs.telemetry.loop_histogram import LoopHistogram

CONTENT_TYPE = CONTENT_TYPE_LATEST
SECONDS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)

RUNS_STARTED = Counter("stepline_runs_started", "Runs started (run.started events).", ["workspace", "workflow"])
RUNS_COMPLETED = Counter("stepline_runs_completed", "Runs completed, by result (run.completed events).",
                         ["workspace", "workflow", "result"])
RUN_DURATION = Histogram("stepline_run_duration_seconds", "Run duration, creation to completion.",
                         ["workspace", "workflow", "result"], buckets=SECONDS)
NODE_ATTEMPT_DURATION = Histogram(
    "stepline_node_attempt_duration_seconds", "Node attempt duration, dispatch to completion, by node type and "
    "result (an attempt that will be retried counts as FAILED).", ["workspace", "node_type", "result"], buckets=SECONDS)
DEAD_LETTERS = Counter("stepline_dead_letters", "Messages sent to the dead-letter topic, by the topic they failed on.",
                       ["topic"])
STORE_CALLS = LoopHistogram("stepline_store_call_seconds", "Store round trips: one SQLite statement or one "
                            "MongoDB operation, by store, operation and table (collection).",
                            ("store", "operation", "table"),
                            (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0))
REGISTRY.register(STORE_CALLS)
EXPRESSION_BREACHES = Counter("stepline_expression_limit_breaches", "jq evaluations stopped at a limit "
                              "(`timeout`: STEPLINE_EXPRESSION_TIMEOUT, `memory`: STEPLINE_EXPRESSION_MEMORY_MB).",
                              ["kind"])


OBSERVED_TYPES: frozenset[str] = frozenset(
    t.TYPE for t in (v1.RunStarted, v1.RunCompleted, v1.NodeRunCompleted, v1.NodeRunRetrying))
"""The event types `observe` folds."""


def observe(event: v1.Message) -> None:
    """Fold one run event into the metrics (other messages change nothing)."""
    if isinstance(event, v1.RunStarted):
        _series(RUNS_STARTED, event.workspace, event.workflow).inc()
    elif isinstance(event, v1.RunCompleted):
        _series(RUNS_COMPLETED, event.workspace, event.workflow, event.result).inc()
        _series(RUN_DURATION, event.workspace, event.workflow, event.result).observe(event.duration_ms / 1000)
    elif isinstance(event, v1.NodeRunCompleted | v1.NodeRunRetrying):
        result = event.result if isinstance(event, v1.NodeRunCompleted) else "FAILED"
        _series(NODE_ATTEMPT_DURATION, event.workspace, event.node_type, result).observe(event.duration_ms / 1000)


@lru_cache(maxsize=4096)
def _series(metric: Counter | Histogram, *values: str) -> Any:
    """`metric.labels(*values)`, remembered: labels() validates and locks on every call."""
    return metric.labels(*values)


@contextmanager
def store_call(store: str, operation: str, table: str) -> Iterator[None]:
    """Time one store round trip (failed ones included)."""
    started = time.perf_counter()
    try:
        yield
    finally:
        STORE_CALLS.observe((store, operation, table), time.perf_counter() - started)


_SQL_TABLE = re.compile(r"\b(?:FROM|INTO|UPDATE|TABLE|ON)\s+(\w+)", re.IGNORECASE)


@lru_cache(maxsize=512)
def sql_call(statement: str) -> tuple[str, str, str]:
    """The `STORE_CALLS` labels of an SQLite statement: `("sqlite", "UPDATE", "runs")`."""
    operation = statement.split(None, 1)[0].upper() if statement.strip() else "?"
    table = _SQL_TABLE.search(statement)
    return "sqlite", operation, table.group(1) if table else "?"


class _Workspace(Collector):
    """The default registry's series without those of other workspaces (series without a
    `workspace` label, such as dead letters and process metrics, are kept)."""

    def __init__(self, workspace: str) -> None:
        self.workspace = workspace

    def collect(self) -> Iterable[Metric]:
        for family in REGISTRY.collect():
            family.samples = [s for s in family.samples if s.labels.get("workspace", self.workspace) == self.workspace]
            yield family


def exposition(workspace: str | None = None) -> bytes:
    """The text format of every metric, or of one workspace's series."""
    if workspace is None:
        return generate_latest(REGISTRY)
    scoped = CollectorRegistry(auto_describe=False)
    scoped.register(_Workspace(workspace))
    return generate_latest(scoped)
