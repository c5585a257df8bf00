"""The fold of run events into hourly workflow buckets (libs/core/run_stats.py): the seeded history of
tests/service/test_workflow_metrics.py, told as the run events the scheduler publishes, delivered
with repeats, gives the same metrics as embedded mode computes from the runs, and the same
hand-computed values."""

from __future__ import annotations

import random
from typing import Any

from libs.core.instants import parse_instant, to_iso
from libs.core.run import Run
from libs.core.run_metrics import Window, metrics, metrics_of
from libs.core.run_stats import Bucket, Change, apply, bucket_key, bucket_stats, change_of, facts, split_key, window_keys
from tests.service.test_workflow_metrics import HISTORY, T0

WINDOW = Window(T0, T0 + 3 * 3600)
HAND_COMPUTED = {
    "workflow": "wf", "from": "2026-05-01T10:00:00.000Z", "to": "2026-05-01T13:00:00.000Z",
    "total": 7, "succeeded": 3, "failed": 2, "cancelled": 1, "successRate": 0.5, "failureRate": 2 / 6,
    "durationMs": {"p50": 3000, "p90": 10000, "p99": 10000},
    "runsPerHour": [{"hour": "2026-05-01T10:00:00.000Z", "total": 2, "failed": 1},
                    {"hour": "2026-05-01T11:00:00.000Z", "total": 3, "failed": 0},
                    {"hour": "2026-05-01T12:00:00.000Z", "total": 2, "failed": 1}]}


def event(kind: str, run: Run, seq: int, at: float, **more: Any) -> tuple[str, dict[str, Any]]:
    return kind, {"runId": run.id, "seq": seq, "at": to_iso(at), "workflow": run.workflow,
                  "workspace": "default", "version": 1, **more}


def events_of(run: Run) -> list[tuple[str, dict[str, Any]]]:
    """What the scheduler publishes about the run's life, node events included (they fold to nothing)."""
    trigger = {"type": "API", "by": None, "at": None, "node": "t"}
    told = [event("run.started", run, 1, run.created_at, trigger=trigger),
            event("node.started", run, 2, run.created_at, nodeId="t", attempt=1, nodeRunId="wfnr_x", nodeType="TRANSFORM")]
    if run.status == "COMPLETED":
        ms = round(((run.completed_at or 0) - run.created_at) * 1000)
        told.append(event("run.completed", run, 3, run.completed_at or 0, result=run.result, error=None, durationMs=ms))
    return told


def fold(stream: list[tuple[str, dict[str, Any]]], buckets: dict[str, Bucket] | None = None) -> dict[str, Bucket]:
    buckets = {} if buckets is None else buckets
    for kind, data in stream:
        change = change_of(kind, data)
        if change is not None:
            changed = apply(buckets.get(change.key, {}), [change])
            buckets[change.key] = changed if changed is not None else buckets.get(change.key, {})
    return buckets


def delivered_with_repeats(runs: list[Run], seed: int) -> list[tuple[str, dict[str, Any]]]:
    """Every run's events in order, runs interleaved, a third of the events delivered twice."""
    rng = random.Random(seed)
    queues = [[e for e in events_of(r) for _ in range(1 + (rng.random() < 0.33))] for r in runs]
    stream: list[tuple[str, dict[str, Any]]] = []
    while any(queues):
        stream.append(rng.choice([q for q in queues if q]).pop(0))
    return stream


def folded_metrics(buckets: dict[str, Bucket], workflow: str, window: Window) -> dict[str, Any]:
    return metrics_of(workflow, facts(buckets[k] for k in window_keys(workflow, window) if k in buckets), window)


def test_the_fold_of_the_seeded_history_gives_the_hand_computed_metrics_of_both_modes() -> None:
    for seed in range(5):
        buckets = fold(delivered_with_repeats(HISTORY, seed))
        assert folded_metrics(buckets, "wf", WINDOW) == HAND_COMPUTED
    assert metrics("wf", [r for r in HISTORY if r.workflow == "wf"], WINDOW) == HAND_COMPUTED


def test_a_late_or_repeated_event_never_undoes_or_recounts() -> None:
    run = HISTORY[0]
    started, completed = (change_of(k, d) for k, d in events_of(run) if k != "node.started")
    assert started is not None and completed is not None
    opened = apply({}, [started]) or {}
    after = apply(opened, [completed])
    assert opened == {run.id: [round((T0 + 60) * 1000), 1, None, None]}, "the held bucket stays as it was"
    assert after == {run.id: [round((T0 + 60) * 1000), 3, "SUCCESS", 2000]}
    assert apply({}, [started, completed, started]) == after, "one batch, the same bucket"
    assert apply(after, [completed]) is None, "a redelivery"
    assert apply(after, [started, completed]) is None, "an older event arriving late"
    assert apply({}, []) is None


def test_a_queued_run_is_created_by_its_first_event_and_a_reader_joining_late_still_counts_it() -> None:
    run = HISTORY[1]
    trigger = {"type": "API", "by": None, "at": None, "node": "t"}
    queued = [event("run.queued", run, 1, run.created_at, trigger=trigger),
              event("run.started", run, 2, run.created_at + 900, trigger=trigger)]
    assert [change_of(k, d) is not None for k, d in queued] == [True, False]
    ending = events_of(run)[-1]
    whole, joined_late = fold([*queued, ending]), fold([ending])
    assert whole == joined_late == {bucket_key("wf", T0): {run.id: [round((T0 + 600) * 1000), 3, "FAILED", 5000]}}


def test_bucket_keys_name_workspace_workflow_and_hour() -> None:
    key = bucket_key("team~a@b", parse_instant("2026-05-01T10:00:00Z"))
    assert key == "team~a@b@2026-05-01T10:00:00.000Z"
    assert split_key(key) == ("team~a@b", parse_instant("2026-05-01T10:00:00Z"))
    _, data = event("run.started", HISTORY[0], 1, T0 + 5)
    change = change_of("run.started", {**data, "workspace": "team"})
    assert isinstance(change, Change) and change.key == f"team~wf@{to_iso(T0)}"


def test_the_statistics_of_one_hour() -> None:
    buckets = fold([e for r in HISTORY if r.workflow == "wf" for e in events_of(r)])
    eleven = bucket_key("wf", T0 + 3600)
    assert bucket_stats(eleven, buckets[eleven]) == {
        "workflow": "wf", "workspace": "default", "hour": "2026-05-01T11:00:00.000Z",
        "from": "2026-05-01T11:00:00.000Z", "to": "2026-05-01T12:00:00.000Z", "total": 3, "inProgress": 0,
        "succeeded": 2, "failed": 0, "cancelled": 1, "successRate": 2 / 3, "failureRate": 0.0,
        "durationMs": {"p50": 3000, "p90": 10000, "p99": 10000}}
    twelve = bucket_key("wf", T0 + 7200)
    assert bucket_stats(twelve, buckets[twelve])["inProgress"] == 1
