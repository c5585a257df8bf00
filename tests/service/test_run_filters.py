"""`GET /v1/workflows/runs` filtered by creation time (`from` inclusive, `to` exclusive), `createdBy`
and `trigger` type, on an embedded engine; and the CLI's `runs --since`."""

from __future__ import annotations

import argparse
from typing import Any

import httpx
import pytest

from libs.core.instants import parse_instant
from stepline.cli.commands import since_instant
from tests.auth_helpers import user_headers
from tests.service.test_embedded_runs import chain, create, wait_run

TRANSFORM = {"identifier": "t", "config": {"type": "TRANSFORM", "expression": "1"}}


async def listed(api: httpx.AsyncClient, **params: Any) -> list[str]:
    answer = await api.get("/v1/workflows/runs", params=params)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["total"] == len(body["workflowRuns"])
    return [r["identifier"] for r in body["workflowRuns"]]


async def started(api: httpx.AsyncClient, headers: dict[str, str] | None = None) -> dict[str, Any]:
    answer = await api.post("/v1/workflows/f/runs", json={"inputs": {}}, headers=headers)
    assert answer.status_code == 201, answer.text
    return await wait_run(api, answer.json()["workflowRun"]["identifier"])


async def test_runs_filter_by_time_creator_and_trigger(api: httpx.AsyncClient) -> None:
    await create(api, chain("f", TRANSFORM))
    first = await started(api)
    runner = await user_headers(api, "rita@example.com", role="runner")
    second = await started(api, runner)
    rerun = await api.post(f"/v1/workflows/runs/{first['identifier']}/rerun", json={})
    assert rerun.status_code in (200, 201), rerun.text
    third = await wait_run(api, rerun.json()["workflowRun"]["identifier"])
    ids = [r["identifier"] for r in (third, second, first)]

    assert await listed(api, createdBy="rita@example.com") == [second["identifier"]]
    assert await listed(api, trigger="RERUN") == [third["identifier"]]
    assert await listed(api, trigger=["API", "RERUN"]) == ids
    assert await listed(api, **{"from": second["createdAt"]}) == ids[:2], "from is inclusive"
    assert await listed(api, to=second["createdAt"]) == ids[2:], "to is exclusive"
    assert await listed(api, **{"from": first["createdAt"], "to": third["createdAt"]}, trigger="API") == ids[1:]
    assert await listed(api, **{"from": "2999-01-01T00:00:00+02:00"}) == []


async def test_a_time_that_is_not_iso_8601_is_a_422_naming_it(api: httpx.AsyncClient) -> None:
    answer = await api.get("/v1/workflows/runs", params={"to": "yesterday"})
    assert answer.status_code == 422
    assert "to" in answer.text and "ISO 8601" in answer.text


def test_since_takes_a_duration_back_from_now_or_a_time() -> None:
    now = parse_instant("2026-05-08T12:00:00Z")
    assert since_instant("7d", now) == "2026-05-01T12:00:00.000Z"
    assert since_instant("90s", now) == "2026-05-08T11:58:30.000Z"
    assert since_instant("1.5h", now) == "2026-05-08T10:30:00.000Z"
    assert since_instant("2026-05-01T10:00:00+02:00", now) == "2026-05-01T08:00:00.000Z"
    with pytest.raises(argparse.ArgumentTypeError, match="neither a duration"):
        since_instant("last tuesday", now)
