"""Upstream producers on the real broker, against the services as OS processes over Kafka and FerretDB
(`test_distributed_faults.running`): a producer written from docs/events.md ("Messages Stepline
reads") writes catalog events to `stepline.catalog-events.v1` as plain Port JSON, as a structured
CloudEvent and as a binary CloudEvent (`ce_` headers), then re-sends two of them. Each event id updates
the stored entity and starts the matching workflow once; the re-sent ones change and start nothing.
Then EVENT_TRIGGER on runs across the processes: a run's completion starts the workflow watching it.

The broker is the session's: workflows and blueprints carry a random suffix. To know that the re-sent
events were handled, a last event on the same record key (so the same partition, consumed in order)
names a probe blueprint whose listener's run shows up only after them."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from tests.e2e.test_distributed_faults import running
from tests.e2e.test_distributed_features import finished
from tests.infra_fixtures import KafkaBroker

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.mongo]
TOPIC = "stepline.catalog-events.v1"
DEADLINE = 60.0


# ---- the producer, as docs/events.md shows it ------------------------------------------------------

def port_event(event_id: str, action: str, blueprint: str, identifier: str, after: dict[str, Any] | None,
               before: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"id": event_id, "action": action,
            "context": {"blueprintIdentifier": blueprint, "entityIdentifier": identifier},
            "diff": {"before": before, "after": after}}


async def send_plain(producer: AIOKafkaProducer, key: str, event: dict[str, Any]) -> None:
    await producer.send_and_wait(TOPIC, key=key.encode(), value=json.dumps(event).encode())


async def send_structured(producer: AIOKafkaProducer, key: str, ce_id: str, event: dict[str, Any]) -> None:
    cloud_event = {"specversion": "1.0", "type": "io.getport.entity.changed", "source": "https://port.example/catalog",
                   "id": ce_id, "subject": key, "time": "2026-05-01T12:00:00Z",
                   "datacontenttype": "application/json", "data": event}
    await producer.send_and_wait(TOPIC, key=key.encode(), value=json.dumps(cloud_event).encode(),
                                 headers=[("content-type", b"application/cloudevents+json")])


async def send_binary(producer: AIOKafkaProducer, key: str, ce_id: str, event: dict[str, Any]) -> None:
    headers = [("ce_specversion", b"1.0"), ("ce_type", b"io.getport.entity.changed"),
               ("ce_source", b"https://port.example/catalog"), ("ce_id", ce_id.encode()),
               ("ce_time", b"2026-05-01T12:00:01Z"), ("content-type", b"application/json")]
    await producer.send_and_wait(TOPIC, key=key.encode(), value=json.dumps(event).encode(), headers=headers)


# ---- the API side --------------------------------------------------------------------------------

def listener(identifier: str, blueprint: str, event_type: str = "ANY_ENTITY_CHANGE") -> dict[str, Any]:
    config = {"type": "EVENT_TRIGGER", "event": {"type": event_type, "blueprintIdentifier": blueprint}}
    return {"identifier": identifier,
            "nodes": [{"identifier": "on-change", "config": config},
                      {"identifier": "noted", "config": {"type": "NOOP"}}],
            "connections": [{"sourceIdentifier": "on-change", "targetIdentifier": "noted"}]}


async def create(client: httpx.AsyncClient, definition: dict[str, Any]) -> None:
    response = await client.post("/v1/workflows", json=definition)
    assert response.status_code == 201, response.text


async def runs_until(client: httpx.AsyncClient, workflow: str, count: int) -> list[dict[str, Any]]:
    """The workflow's runs once there are at least `count` (polled: they are started by a consumer)."""
    deadline = time.monotonic() + DEADLINE
    while True:
        response = await client.get("/v1/workflows/runs", params={"workflow": workflow, "limit": 100})
        assert response.status_code == 200, response.text
        runs: list[dict[str, Any]] = response.json()["workflowRuns"]
        if len(runs) >= count:
            return runs
        assert time.monotonic() < deadline, f"{workflow} has {len(runs)} runs, expected {count}"
        await asyncio.sleep(0.2)


async def catalog_events_from_a_producer(client: httpx.AsyncClient, bootstrap: str, suffix: str) -> None:
    blueprint, probe = f"svc-{suffix}", f"probe-{suffix}"
    await create(client, listener(f"on-svc-{suffix}", blueprint))
    await create(client, listener(f"on-probe-{suffix}", probe, "ENTITY_CREATED"))
    key = f"{blueprint}/billing"
    created = port_event(f"port-{suffix}", "CREATE", blueprint, "billing",
                         {"identifier": "billing", "title": "Billing", "properties": {"tier": "gold"}})
    silver = port_event("ignored", "UPDATE", blueprint, "billing",
                        {"properties": {"tier": "silver"}, "title": "Billing"}, before=created["diff"]["after"])
    platinum = port_event("ignored", "UPDATE", blueprint, "billing",
                          {"properties": {"tier": "platinum"}, "title": "Billing", "team": ["payments"]},
                          before=silver["diff"]["after"])
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await send_plain(producer, key, created)
        await send_structured(producer, key, f"ce-s-{suffix}", silver)
        await send_binary(producer, key, f"ce-b-{suffix}", platinum)
        await send_structured(producer, key, f"ce-s-{suffix}", silver)  # re-sent: must not roll back
        await send_plain(producer, key, created)  # re-sent
        await send_plain(producer, key, port_event(f"probe-{suffix}", "CREATE", probe, "p", {"identifier": "p"}))
    finally:
        await producer.stop()

    await runs_until(client, f"on-probe-{suffix}", 1)
    runs = await runs_until(client, f"on-svc-{suffix}", 3)
    assert sorted(r["inputs"]["id"] for r in runs) == sorted([f"port-{suffix}", f"ce-s-{suffix}", f"ce-b-{suffix}"])
    for run in runs:
        assert (await finished(client, run["identifier"]))["result"] == "SUCCESS"
    stored = (await client.get(f"/v1/blueprints/{blueprint}/entities/billing")).json()["entity"]
    assert (stored["properties"], stored["title"], stored["team"]) == ({"tier": "platinum"}, "Billing", ["payments"])


async def a_completion_starts_the_watching_workflow(client: httpx.AsyncClient, suffix: str) -> None:
    build, after = f"build-{suffix}", f"after-{suffix}"
    await create(client, {"identifier": build, "nodes": [
        {"identifier": "trigger", "config": {"type": "SELF_SERVE_TRIGGER", "userInputs": {"properties": {}}}},
        {"identifier": "compile", "config": {"type": "TRANSFORM", "expression": '{artifact: "app.tar.gz"}'}}],
        "connections": [{"sourceIdentifier": "trigger", "targetIdentifier": "compile"}]})
    watch = {"type": "EVENT_TRIGGER", "event": {"source": "run", "workflow": build, "events": ["run.completed"]}}
    await create(client, {"identifier": after, "nodes": [
        {"identifier": "on-build", "config": watch},
        {"identifier": "deploy",
         "config": {"type": "TRANSFORM", "expression": '.outputs["on-build"].outputs.compile'}}],
        "connections": [{"sourceIdentifier": "on-build", "targetIdentifier": "deploy"}]})
    started = await client.post(f"/v1/workflows/{build}/runs", json={})
    assert started.status_code in (201, 202), started.text
    built = await finished(client, started.json()["workflowRun"]["identifier"])
    [run] = await runs_until(client, after, 1)
    run = await finished(client, run["identifier"])
    assert run["trigger"]["type"] == "RUN" and run["inputs"]["runId"] == built["identifier"]
    assert run["variables"]["outputs"]["deploy"] == {"artifact": "app.tar.gz"}


@pytest.mark.timeout(300)
async def test_upstream_producers_and_run_triggers_across_processes(
        tmp_path: Path, kafka_broker: KafkaBroker, mongo_url: str) -> None:
    suffix = uuid.uuid4().hex[:8]
    async with running(tmp_path, kafka_broker.bootstrap, mongo_url, executors=1) as (cluster, client):
        await catalog_events_from_a_producer(client, kafka_broker.bootstrap, suffix)
        await a_completion_starts_the_watching_workflow(client, suffix)
        assert not cluster.dead(), f"services exited: {cluster.dead()}"
