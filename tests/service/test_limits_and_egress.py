"""Quotas and the egress guard through the embedded engine's API: each breach is refused clearly (a
4xx naming the field at save time, or a clear node failure at run time), the API stays responsive,
other runs complete, and what was stored stays intact."""

from __future__ import annotations

import asyncio
import logging
import os
import stat
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from libs.contracts.envelope import Envelope
from libs.store.ports import RunFilter
from stepline.embedded import Engine
from stepline.settings import EmbeddedSettings
from tests.auth_helpers import engine_client
from tests.conftest import Target, serving
from tests.service.test_embedded_runs import chain, create, node_runs, run_to_end, wait_run, webhook

FAST = {"stale_seconds": 1.0, "sweep_interval_seconds": 0.2, "lease_seconds": 5.0, "partitions": 4}


@asynccontextmanager
async def engine_with(tmp_path: Path, **settings: Any) -> AsyncIterator[tuple[Engine, httpx.AsyncClient]]:
    engine = Engine(EmbeddedSettings(data_dir=tmp_path / "data", **{**FAST, **settings}))
    await engine.start()
    try:
        async with engine_client(engine) as client:
            yield engine, client
    finally:
        await engine.stop()


def step(identifier: str, config: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"identifier": identifier, "config": config, **extra}


async def assert_responsive(api: httpx.AsyncClient) -> None:
    """`GET /v1/workflows` answers promptly (asserted loosely: the machine is shared)."""
    started = time.perf_counter()
    response = await api.get("/v1/workflows")
    assert response.status_code == 200
    assert time.perf_counter() - started < 1.0


async def a_good_run_completes(api: httpx.AsyncClient, target: Target, name: str = "good") -> None:
    await create(api, chain(name, webhook("call", f"{target.base_url}/ok")))
    run = await run_to_end(api, name)
    assert run["result"] == "SUCCESS", run


def refused_at(response: httpx.Response, status: int, pointer: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert pointer in [d["pointer"] for d in body["details"]], body
    return str(body["message"])


# ---- egress -------------------------------------------------------------------------------------

async def test_a_request_to_the_metadata_address_fails_the_node_without_retry(
        api: httpx.AsyncClient, target: Target) -> None:
    retry = {"maxAttempts": 3, "initialIntervalSeconds": 0.01}
    await create(api, chain("metadata", webhook("steal", "http://169.254.169.254/latest/meta-data/", retry=retry),
                            step("notify", {"type": "NOTIFY", "channel": "webhook", "text": "x",
                                            "url": "http://[::ffff:169.254.169.254]/"}),
                            connections=[{"sourceIdentifier": "trigger", "targetIdentifier": "steal"},
                                         {"sourceIdentifier": "trigger", "targetIdentifier": "notify"}]))
    run = await run_to_end(api, "metadata")
    assert run["result"] == "FAILED"
    attempts = node_runs(run, "steal")
    assert len(attempts) == 1, "a refused destination is not retried"
    assert "egress rules refuse 169.254.169.254" in attempts[0]["error"]
    assert "egress rules refuse" in node_runs(run, "notify")[0]["error"]
    await assert_responsive(api)
    await a_good_run_completes(api, target)


async def test_template_values_cannot_climb_out_of_a_url_path(api: httpx.AsyncClient, target: Target) -> None:
    definition = chain("climb", webhook("call", target.base_url + "/items/{{ .inputs.id }}/show"))
    definition["nodes"][0]["config"]["userInputs"] = {"properties": {"id": {"type": "string"}}}
    await create(api, definition)
    run = await run_to_end(api, "climb", {"id": "../../admin"})
    assert run["result"] == "SUCCESS"
    assert target.hits["/admin/show"] == 0
    assert target.hits["/items/../../admin/show"] == 1, "one segment, its slashes encoded (the target decodes them)"


async def test_save_refuses_urls_that_are_not_http(api: httpx.AsyncClient) -> None:
    file_url = chain("files", webhook("read", "file:///etc/passwd"))
    assert "scheme 'file'" in refused_at(await api.post("/v1/workflows", json=file_url), 422, "/nodes/1/config/url")
    notify = chain("gopher", step("tell", {"type": "NOTIFY", "channel": "slack", "text": "x", "url": "gopher://h/"}))
    refused_at(await api.post("/v1/workflows", json=notify), 422, "/nodes/1/config/url")
    templated = chain("templated", webhook("call", "ftp://{{ .inputs.host }}/x"))
    refused_at(await api.post("/v1/workflows", json=templated), 422, "/nodes/1/config/url")
    notified = {**chain("notified", step("noop", {"type": "NOOP"})), "notificationUrl": "file:///tmp/x"}
    refused_at(await api.post("/v1/workflows", json=notified), 422, "/notificationUrl")
    assert (await api.get("/v1/workflows/files")).status_code == 404, "nothing was stored"


async def test_a_refused_notification_url_is_dropped_once_per_event(
        api: httpx.AsyncClient, target: Target, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="stepline.notifier")
    definition = {**chain("to-metadata", step("noop", {"type": "NOOP"})), "notificationUrl": "http://169.254.169.254/"}
    await create(api, definition)
    run = await run_to_end(api, "to-metadata")
    assert run["result"] == "SUCCESS"
    told = {**chain("told", step("noop", {"type": "NOOP"})), "notificationUrl": f"{target.base_url}/events"}
    await create(api, told)
    await run_to_end(api, "told")
    await target.wait_for("/events", count=2)
    dropped = [r for r in caplog.records if "dropped" in r.getMessage() and run["identifier"] in r.getMessage()]
    deadline = time.monotonic() + 5
    while len(dropped) < 2 and time.monotonic() < deadline:  # the two events may sit on another partition
        await asyncio.sleep(0.02)
        dropped = [r for r in caplog.records if "dropped" in r.getMessage() and run["identifier"] in r.getMessage()]
    assert len(dropped) == 2, "started and completed, each dropped once: no redelivery"


# ---- definitions --------------------------------------------------------------------------------

async def test_definition_quotas_and_strict_types_at_save(api: httpx.AsyncClient) -> None:
    many = chain("huge", *[step(f"n{i}", {"type": "NOOP"}) for i in range(500)])
    started = time.perf_counter()
    message = refused_at(await api.post("/v1/workflows", json=many), 422, "/nodes")
    assert "at most 500 nodes" in message and time.perf_counter() - started < 2.0
    items = chain("items", step("each", {"type": "FOREACH", "items": list(range(10_001)), "node": {"type": "NOOP"}}))
    refused_at(await api.post("/v1/workflows", json=items), 422, "/nodes/1/config/items")
    lots = chain("lots", step("each", {"type": "FOREACH", "items": [1], "concurrency": 101, "node": {"type": "NOOP"}}))
    refused_at(await api.post("/v1/workflows", json=lots), 422, "/nodes/1/config/concurrency")
    typed = chain("typed", step("noop", {"type": "NOOP"}, timeoutSeconds="5"))
    assert "must be a number" in refused_at(await api.post("/v1/workflows", json=typed), 422, "/nodes/1/timeoutSeconds")
    listed = (await api.get("/v1/workflows")).json()["workflows"]
    assert listed == []


async def test_definition_size_limit(tmp_path: Path) -> None:
    async with engine_with(tmp_path, max_definition_bytes=2_000) as (_, api):
        big = chain("big", step("t", {"type": "TRANSFORM", "expression": '"' + "x" * 3_000 + '"'}))
        assert "STEPLINE_MAX_DEFINITION_BYTES" in refused_at(await api.post("/v1/workflows", json=big), 422, "")
        await create(api, chain("small", step("t", {"type": "TRANSFORM", "expression": '"ok"'})))


# ---- outputs, responses, variables --------------------------------------------------------------

async def huge_body(request: Request) -> Response:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(256):
            yield b"y" * 65536  # 16 MiB offered; the executor reads a little past its limit
    return StreamingResponse(chunks(), media_type="application/json")


async def test_outputs_responses_and_run_variables_within_limits(tmp_path: Path, target: Target) -> None:
    limits = {"max_output_bytes": 20_000, "max_response_bytes": 10_000, "max_run_variables_bytes": 30_000}
    async with engine_with(tmp_path, **limits) as (engine, api), serving(Starlette(routes=[Route("/huge", huge_body)])) as big:
        await create(api, chain("big-output", step("t", {"type": "TRANSFORM", "expression": '[range(5000)]'})))
        run = await run_to_end(api, "big-output")
        failed = node_runs(run, "t")[0]
        assert run["result"] == "FAILED" and failed["output"] == {}
        assert "over the limit of 20000 (STEPLINE_MAX_OUTPUT_BYTES)" in failed["error"]

        await create(api, chain("cut", webhook("call", f"{big}/huge", config={"method": "GET"})))
        run, _ = await asyncio.gather(run_to_end(api, "cut"), assert_responsive(api))
        response = run["variables"]["outputs"]["call"]["response"]
        assert run["result"] == "SUCCESS" and response["truncated"] is True
        assert (response["status"], len(response["data"])) == (200, 10_000)

        half = {"type": "TRANSFORM", "expression": '"' + "z" * 16_000 + '"'}
        await create(api, chain("variables", step("a", half), step("b", half)))
        run = await run_to_end(api, "variables")
        assert run["nodes"]["a"]["state"] == "SUCCEEDED" and run["nodes"]["b"]["state"] == "FAILED"
        assert "STEPLINE_MAX_RUN_VARIABLES_BYTES" in node_runs(run, "b")[0]["error"]
        assert run["variables"]["outputs"]["a"] == "z" * 16_000, "what was stored stays intact"
        await assert_responsive(api)
        await a_good_run_completes(api, target)


# ---- FOREACH and child runs ---------------------------------------------------------------------

async def test_foreach_items_and_fan_out_bombs_are_bounded(tmp_path: Path, target: Target) -> None:
    async with engine_with(tmp_path, max_foreach_items=5, max_child_runs_per_root_run=6) as (engine, api):
        each = step("each", {"type": "FOREACH", "items": "{{ [range(10)] }}", "node": {"type": "NOOP"}})
        await create(api, chain("many-items", each))
        run = await run_to_end(api, "many-items")
        assert "at most 5 items, got 10 (STEPLINE_MAX_FOREACH_ITEMS)" in node_runs(run, "each")[0]["error"]

        bomb = step("again", {"type": "FOREACH", "items": "{{ [{}, {}] }}", "concurrency": 2,
                                     "workflowIdentifier": "bomb"})
        await create(api, chain("bomb", bomb))
        root = await run_to_end(api, "bomb")
        assert root["result"] == "FAILED"
        runs, total = await engine.store.list_runs(RunFilter(workflows=("bomb",)), limit=100, offset=0)
        assert total == 7, "the root, its 2 children and their 4: the next 8 would pass the limit of 6"
        assert all(r.status == "COMPLETED" for r in runs)
        deepest = [r for r in runs if r.depth == 2]
        shown = await wait_run(api, deepest[0].id)
        assert "STEPLINE_MAX_CHILD_RUNS_PER_ROOT_RUN" in node_runs(shown, "again")[0]["error"]
        await assert_responsive(api)
        await a_good_run_completes(api, target)


# ---- node-run PATCH: logs and outputs ------------------------------------------------------------

async def waiting_node_run(api: httpx.AsyncClient, target: Target, workflow: str) -> tuple[str, str]:
    await create(api, chain(workflow, webhook("wait", f"{target.base_url}/async/{workflow}",
                                              config={"synchronized": False})))
    started = await api.post(f"/v1/workflows/{workflow}/runs", json={"inputs": {}})
    request = (await target.wait_for(f"/async/{workflow}"))[0]
    return started.json()["workflowRun"]["identifier"], request["headers"]["x-stepline-node-run-id"]


def entries(count: int, label: str) -> list[dict[str, Any]]:
    return [{"logLevel": "INFO", "log": f"{label} {i}"} for i in range(count)]


def user_logs(node_run: Any) -> int:
    """The entries sent by PATCH (the engine writes its own lines beside them)."""
    return sum(1 for e in node_run.logs if e.source == "user")


async def test_log_entries_beyond_the_quota_are_refused_never_lost(tmp_path: Path, target: Target) -> None:
    async with engine_with(tmp_path, max_log_entries_per_node_run=2_500, max_output_bytes=5_000) as (engine, api):
        run_id, node_run_id = await waiting_node_run(api, target, "logged")
        path = f"/v1/workflows/runs/{run_id}/nodes/{node_run_id}"
        progress = await api.patch(path, json={"status": "IN_PROGRESS", "logs": entries(2_000, "progress")})
        assert progress.status_code == 200, progress.text
        stored = await engine.store.get_node_run_by_id(node_run_id)
        deadline = time.monotonic() + 5
        while user_logs(stored) < 2_000 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
            stored = await engine.store.get_node_run_by_id(node_run_id)
        assert user_logs(stored) == 2_000, "2,000 entries in one write (SQLite once failed near 900)"

        over = await api.patch(path, json={"status": "IN_PROGRESS", "logs": entries(600, "more")})
        assert over.status_code == 413 and over.json()["error"] == "payload_too_large"
        assert "field /logs" in over.json()["message"] and "STEPLINE_MAX_LOG_ENTRIES_PER_NODE_RUN" in over.json()["message"]
        big = await api.patch(path, json={"status": "COMPLETED", "result": "SUCCESS", "output": {"x": "y" * 6_000}})
        assert big.status_code == 413 and "field /output" in big.json()["message"]

        done = await api.patch(path, json={"status": "COMPLETED", "result": "SUCCESS", "output": {"ok": True},
                                           "logs": entries(1, "last")})
        assert done.status_code == 200, done.text
        run = await wait_run(api, run_id)
        logs = [e["log"] for e in node_runs(run, "wait")[0]["nodeRunLogs"] if e["source"] == "user"]
        assert run["result"] == "SUCCESS" and logs == [f"progress {i}" for i in range(2_000)] + ["last 0"]
        await assert_responsive(api)


# ---- Kafka topics --------------------------------------------------------------------------------

async def test_kafka_topics_outside_the_allow_list_are_refused(tmp_path: Path) -> None:
    async with engine_with(tmp_path, kafka_topics_allow="orders.*") as (_, api):
        fixed = chain("payments", step("send", {"type": "KAFKA", "topic": "payments", "payload": {}}))
        message = refused_at(await api.post("/v1/workflows", json=fixed), 422, "/nodes/1/config/topic")
        assert "STEPLINE_KAFKA_TOPICS_ALLOW" in message
        queue = {"identifier": "q", "nodes": [step("in", {"type": "QUEUE_TRIGGER", "topic": "payments"})]}
        refused_at(await api.post("/v1/workflows", json=queue), 422, "/nodes/0/config/topic")
        templated = chain("chosen", step("send", {"type": "KAFKA", "topic": "{{ .inputs.topic }}", "payload": {}}))
        templated["nodes"][0]["config"]["userInputs"] = {"properties": {"topic": {"type": "string"}}}
        await create(api, templated)
        refused = await run_to_end(api, "chosen", {"topic": "payments"})
        assert "is not allowed (STEPLINE_KAFKA_TOPICS_ALLOW: orders.*)" in node_runs(refused, "send")[0]["error"]
        allowed = await run_to_end(api, "chosen", {"topic": "orders.new"})
        assert allowed["result"] == "SUCCESS"


async def test_queue_topics_no_longer_allowed_are_not_consumed(tmp_path: Path) -> None:
    """Definitions saved before the allow-list narrowed: their topics are never subscribed."""
    def queued(identifier: str, topic: str) -> dict[str, Any]:
        return {"identifier": identifier, "nodes": [step("message", {"type": "QUEUE_TRIGGER", "topic": topic}),
                                                    step("work", {"type": "NOOP"})],
                "connections": [{"sourceIdentifier": "message", "targetIdentifier": "work"}]}
    async with engine_with(tmp_path) as (_, api):
        await create(api, queued("on-orders", "orders.v1"))
        await create(api, queued("on-payments", "payments"))
    async with engine_with(tmp_path, kafka_topics_allow="orders.*") as (engine, api):
        message = Envelope(type="dev.stepline.kafka.message.v1", source="tests", subject="k",
                           data={"payload": {"n": 1}, "context": {}})
        await engine.bus.publish("orders.v1", message)
        async with asyncio.timeout(20):
            while not (await engine.store.list_runs(RunFilter(workflows=("on-orders",)), limit=1, offset=0))[1]:
                await asyncio.sleep(0.02)  # the queue ingress subscribes on its next reconcile
        await engine.bus.publish("payments", message)
        await engine.bus.drain()
        assert engine.bus.stats()["payments"]["delivered"] == 0
        assert (await engine.store.list_runs(RunFilter(workflows=("on-payments",)), limit=1, offset=0))[1] == 0


# ---- HTTP hygiene and the data directory --------------------------------------------------------

async def test_responses_are_not_sniffed_or_cached_and_slashes_do_not_redirect(api: httpx.AsyncClient) -> None:
    for response in (await api.get("/v1/workflows"), await api.get("/v1/workflows/missing"),
                     await api.get("/v1/workflows/")):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["cache-control"] == "no-store"
    slashed = await api.get("/v1/workflows/")
    assert slashed.status_code == 200 and "location" not in slashed.headers
    assert (await api.get("/docs")).status_code == 404, "no page that loads a CDN unless STEPLINE_API_DOCS=1"


async def test_api_docs_only_when_enabled(tmp_path: Path) -> None:
    async with engine_with(tmp_path, api_docs=True) as (_, api):
        assert (await api.get("/docs")).status_code == 200


async def test_the_data_directory_is_private(engine: Engine, api: httpx.AsyncClient) -> None:
    await create(api, chain("stored", step("noop", {"type": "NOOP"})))
    data = engine.settings.data_dir
    assert stat.S_IMODE(os.stat(data).st_mode) == 0o700
    database = Path(engine.settings.sqlite_path())
    files = sorted(p for p in data.iterdir() if p.is_file())
    assert {database, database.with_name(database.name + "-wal")} <= set(files)
    assert {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in files} == {p.name: "0o600" for p in files}
