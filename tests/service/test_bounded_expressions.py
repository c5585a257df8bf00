"""Runaway jq in a definition costs only its own run: the node fails with an error naming the
field, other runs complete, and the API answers meanwhile (embedded engine, issue 9)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Target
from tests.service.test_catalog import event, listener, runs_of, settled
from tests.service.test_embedded_runs import chain, create, node_runs, wait_run, webhook

TIMEOUT = 1.0
RUNAWAY = ["def f: f; f", "[range(1e9)] | length", "[limit(1e8; repeat(1))] | length"]
BREACH = (f"exceeded {TIMEOUT:g} s", "exceeded the memory limit of 64 MiB")


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Any]:
    from stepline.embedded import Engine
    from stepline.settings import EmbeddedSettings

    settings = EmbeddedSettings(data_dir=tmp_path / "data", stale_seconds=1.0, sweep_interval_seconds=0.2,
                                lease_seconds=5.0, partitions=4, expression_timeout=TIMEOUT,
                                expression_memory_mb=64)
    eng = Engine(settings)
    await eng.start()
    yield eng
    await eng.stop()


def transform(identifier: str, expression: str, **extra: Any) -> dict[str, Any]:
    return {"identifier": identifier, "config": {"type": "TRANSFORM", "expression": expression}, **extra}


async def start(api: httpx.AsyncClient, workflow: str) -> str:
    started = await api.post(f"/v1/workflows/{workflow}/runs", json={"inputs": {}})
    assert started.status_code == 201, started.text
    return str(started.json()["workflowRun"]["identifier"])


async def list_latency(api: httpx.AsyncClient) -> float:
    began = time.perf_counter()
    assert (await api.get("/v1/workflows")).status_code == 200
    return time.perf_counter() - began


def failed_with(run: dict[str, Any], node: str, pointer: str) -> str:
    assert (run["status"], run["result"]) == ("COMPLETED", "FAILED"), run
    [attempt] = node_runs(run, node)  # not retried, although the node allows retries
    error = str(attempt["error"]) if attempt.get("error") else str(attempt)
    assert f"expression at {pointer} " in error and error.endswith(BREACH), error
    return error


@pytest.mark.parametrize("expression", RUNAWAY)
async def test_a_runaway_transform_fails_alone_while_the_api_answers(api: httpx.AsyncClient, expression: str) -> None:
    retry = {"retry": {"maxAttempts": 3, "initialIntervalSeconds": 0.01}}
    await create(api, chain("runaway", transform("bad", expression, **retry)))
    await create(api, chain("fine", transform("keys", "[.run | keys[]]"), transform("cheap", "{n: 1}")))
    bad = await start(api, "runaway")
    latencies = [await list_latency(api) for _ in range(3)]
    still_running = (await api.get(f"/v1/workflows/runs/{bad}")).json()["workflowRun"]["status"]
    good = await wait_run(api, await start(api, "fine"))
    assert good["result"] == "SUCCESS" and good["variables"]["outputs"]["cheap"] == {"n": 1}
    failed_with(await wait_run(api, bad), "bad", "/nodes/1/config/expression")
    assert still_running == "IN_PROGRESS", "the API was measured while the bad node ran"
    assert max(latencies) < 0.2, latencies


async def test_every_expression_field_is_bounded_and_named(api: httpx.AsyncClient, target: Target) -> None:
    loop = "def f: f; f"
    nodes = {
        "condition": ({"identifier": "x", "config": {"type": "CONDITION", "options": [
            {"identifier": "a", "expression": ".run.id == null"}, {"identifier": "b", "expression": loop}]}},
            "/nodes/1/config/options/1/expression"),
        "variables": (transform("x", "{a: 1}", variables={"kept": "{{ .a }}", "v": "{{ " + loop + " }}"}),
                      "/nodes/1/variables/v"),
        "foreach": ({"identifier": "x", "config": {"type": "FOREACH", "items": "{{ [range(1e9)] }}",
                                                   "node": {"type": "TRANSFORM", "expression": "."}}},
                    "/nodes/1/config/items"),
        "inline": ({"identifier": "x", "config": {"type": "FOREACH", "items": [1, 2], "node": {
            "type": "TRANSFORM", "output": "{{ if .item == 2 then (" + loop + ") else 1 end }}"}}},
                   "/nodes/1/config/node/output"),
        "webhook": (webhook("x", f"{target.base_url}/never", config={"body": {"v": "{{ " + loop + " }}"}}),
                    "/nodes/1/config/body/v"),
    }
    for name, (node, _) in nodes.items():
        await create(api, chain(name, node))
    started = [await start(api, name) for name in nodes]
    runs = await asyncio.gather(*(wait_run(api, run_id) for run_id in started))
    for run, (_, pointer) in zip(runs, nodes.values(), strict=True):
        failed_with(run, "x", pointer)
    assert target.hits["/never"] == 0


async def test_a_runaway_event_condition_skips_the_event_with_a_logged_reason(
        api: httpx.AsyncClient, engine: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="stepline.trigger.events")
    await create(api, listener("runaway-condition", expressions=[".diff.after.properties.tier == \"gold\"",
                                                                 "def f: f; f"]))
    await create(api, listener("plain-listener"))
    assert (await api.post("/v1/catalog/events", json=event("billing", "gold"))).status_code == 202
    await settled(engine)
    assert await runs_of(api, "runaway-condition") == []
    [run] = await runs_of(api, "plain-listener")
    assert (await wait_run(api, run["identifier"]))["result"] == "SUCCESS"
    assert "expression at /nodes/0/config/condition/expressions/1 " in caplog.text
    assert engine.bus.stats().get("stepline.dead-letters.v1", {}).get("published", 0) == 0


async def test_runaway_variables_of_a_patched_completion_fail_the_node(api: httpx.AsyncClient, target: Target) -> None:
    node = webhook("call", f"{target.base_url}/async/call", config={"synchronized": False},
                   variables={"v": "{{ [limit(1e8; repeat(1))] | length }}"})
    await create(api, chain("patched", node))
    run_id = await start(api, "patched")
    [request] = await target.wait_for("/async/call")
    node_run_id = request["headers"]["x-stepline-node-run-id"]
    body = {"status": "COMPLETED", "result": "SUCCESS", "output": {"id": 1}}
    assert (await api.patch(f"/v1/workflows/nodes/runs/{node_run_id}", json=body)).status_code == 200
    failed_with(await wait_run(api, run_id), "call", "/nodes/1/variables/v")
    again = await api.patch(f"/v1/workflows/nodes/runs/{node_run_id}", json=body)
    assert again.status_code == 409, again.text  # the API's repeat check is bounded too: it answers


async def test_a_catastrophic_input_pattern_costs_one_422(api: httpx.AsyncClient) -> None:
    definition = chain("patterned", transform("x", "{ok: true}"))
    definition["nodes"][0]["config"]["userInputs"] = {"properties": {"name": {"type": "string",
                                                                              "pattern": "^(a|aa)+$"}}}
    await create(api, definition)
    for _ in range(5):
        refused = await api.post("/v1/workflows/patterned/runs", json={"inputs": {"name": "a" * 60 + "!"}})
        assert refused.status_code == 422, refused.text
        assert "/inputs/name" in refused.text and "within 50 ms" in refused.text
    assert await list_latency(api) < 0.2
    ok = await api.post("/v1/workflows/patterned/runs", json={"inputs": {"name": "aaa"}})
    assert ok.status_code == 201, ok.text
