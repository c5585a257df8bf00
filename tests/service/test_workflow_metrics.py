"""Workflow metrics from the store (embedded mode): a seeded history of runs with known creation
times, durations and results, against values computed by hand."""

from __future__ import annotations

import time
from typing import Any

import httpx

from libs.core.instants import parse_instant, to_iso
from libs.core.run import Run
from tests.service.test_embedded_runs import chain, create

T0 = parse_instant("2026-05-01T10:00:00Z")
TRANSFORM = {"identifier": "t", "config": {"type": "TRANSFORM", "expression": "1"}}


def seeded(n: int, created: float, result: str | None, seconds: float = 0.0, workflow: str = "wf") -> Run:
    done = {"status": "COMPLETED", "result": result, "completed_at": created + seconds} if result else {}
    return Run(id=f"wfr_seed{n:012d}", workflow=workflow, version=1, created_at=created, updated_at=created,
               check_at=time.time() + 3600, **done)


HISTORY = [
    seeded(1, T0 + 60, "SUCCESS", 2.0), seeded(2, T0 + 600, "FAILED", 5.0),
    seeded(3, T0 + 3630, "SUCCESS", 1.0), seeded(4, T0 + 4500, "CANCELLED", 10.0),
    seeded(5, T0 + 5400, "SUCCESS", 3.0), seeded(6, T0 + 7205, None),
    seeded(7, T0 + 7300, "FAILED", 4.0),
    seeded(8, T0 - 1, "SUCCESS", 100.0), seeded(9, T0 + 3 * 3600, "FAILED", 1.0),  # just outside the window
    seeded(10, T0 + 60, "FAILED", 1.0, workflow="other"),  # another workflow
]


async def seed(engine: Any, api: httpx.AsyncClient, runs: list[Run]) -> None:
    await create(api, chain("wf", TRANSFORM))
    await create(api, chain("other", TRANSFORM))
    for run in runs:
        assert (await engine.store.insert_run(run))[1]


async def test_metrics_of_a_seeded_history(engine: Any, api: httpx.AsyncClient) -> None:
    await seed(engine, api, HISTORY)
    answer = await api.get("/v1/workflows/wf/metrics", params={"from": "2026-05-01T10:00:00Z",
                                                               "to": "2026-05-01T13:00:00Z"})
    assert answer.status_code == 200, answer.text
    # Runs 1-7 were created in [10:00, 13:00); 6 completed: 3 succeeded, 2 failed, 1 cancelled.
    # Their durations sorted: 1, 2, 3, 4, 5, 10 s; nearest rank: p50 = 3rd, p90 = p99 = 6th.
    assert answer.json() == {"ok": True, "metrics": {
        "workflow": "wf", "from": "2026-05-01T10:00:00.000Z", "to": "2026-05-01T13:00:00.000Z",
        "total": 7, "succeeded": 3, "failed": 2, "cancelled": 1, "successRate": 0.5, "failureRate": 2 / 6,
        "durationMs": {"p50": 3000, "p90": 10000, "p99": 10000},
        "runsPerHour": [{"hour": "2026-05-01T10:00:00.000Z", "total": 2, "failed": 1},
                        {"hour": "2026-05-01T11:00:00.000Z", "total": 3, "failed": 0},
                        {"hour": "2026-05-01T12:00:00.000Z", "total": 2, "failed": 1}]}}


async def test_metrics_of_an_empty_window_and_bad_windows(engine: Any, api: httpx.AsyncClient) -> None:
    await seed(engine, api, HISTORY)
    empty = await api.get("/v1/workflows/wf/metrics", params={"from": "2026-05-02T00:30:00Z",
                                                              "to": "2026-05-02T01:00:00Z"})
    assert empty.json()["metrics"] | {"runsPerHour": None} == {
        "workflow": "wf", "from": "2026-05-02T00:30:00.000Z", "to": "2026-05-02T01:00:00.000Z", "total": 0,
        "succeeded": 0, "failed": 0, "cancelled": 0, "successRate": None, "failureRate": None,
        "durationMs": {"p50": None, "p90": None, "p99": None}, "runsPerHour": None}
    assert empty.json()["metrics"]["runsPerHour"] == [{"hour": "2026-05-02T00:00:00.000Z", "total": 0, "failed": 0}]
    for params in ({"from": "2026-05-02T00:00:00Z", "to": "2026-05-01T00:00:00Z"},
                   {"from": "2026-03-01T00:00:00Z", "to": "2026-05-01T00:00:00Z"}, {"to": "soon"}):
        assert (await api.get("/v1/workflows/wf/metrics", params=params)).status_code == 422, params
    assert (await api.get("/v1/workflows/nope/metrics")).status_code == 404


async def test_the_workflow_list_summarises_recent_runs(engine: Any, api: httpx.AsyncClient) -> None:
    now, day = time.time(), 86400.0
    history = [seeded(1, now - 40 * day, "SUCCESS"), seeded(2, now - 20 * day, "FAILED"),
               seeded(3, now - 10 * day, "SUCCESS"), seeded(4, now - 3 * day, "SUCCESS"),
               seeded(5, now - 3600, None)]
    await seed(engine, api, history)
    listed = {w["identifier"]: w for w in (await api.get("/v1/workflows")).json()["workflows"]}
    # 30 days: runs 2, 3, 4 completed, 3 and 4 succeeded; 7 days: runs 4 and 5.
    assert {k: listed["wf"][k] for k in ("lastRun", "lastRunStatus", "runs7d", "successRate")} == {
        "lastRun": to_iso(now - 3600), "lastRunStatus": "IN_PROGRESS", "runs7d": 2, "successRate": 2 / 3}
    assert {k: listed["other"][k] for k in ("lastRun", "lastRunStatus", "runs7d", "successRate")} == {
        "lastRun": None, "lastRunStatus": None, "runs7d": 0, "successRate": None}
