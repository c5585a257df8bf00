"""QUEUE_TRIGGER in the embedded engine: messages on a topic named by a live definition (subscribed at
runtime) start one run each, with the message as trigger output; redeliveries start nothing new;
paused workflows start nothing; bad configs are refused with a pointer."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from libs.contracts import v1
from libs.contracts.envelope import Envelope
from libs.store.pausing import pause
from libs.store.ports import RunFilter

GUARD = 20.0
KAFKA_MESSAGE = "dev.stepline.kafka.message.v1"


def queued(identifier: str, topic: str = "orders.v1") -> dict[str, Any]:
    return {"identifier": identifier,
            "nodes": [{"identifier": "message", "config": {"type": "QUEUE_TRIGGER", "topic": topic}},
                      {"identifier": "work", "config": {"type": "NOOP"}}],
            "connections": [{"sourceIdentifier": "message", "targetIdentifier": "work"}]}


def kafka_message(payload: dict[str, Any], key: str = "order-1") -> Envelope:
    """What the KAFKA node publishes."""
    return Envelope(type=KAFKA_MESSAGE, source="stepline/executor", subject=key,
                    data={"payload": payload, "context": {"workflow": "upstream", "run": "wfr_1"}})


def external(value: Any, offset: int, key: str = "order-1", topic: str = "orders.v1") -> Envelope:
    """Plain JSON written to the topic by anything else, as the Kafka bus hands it over."""
    message = v1.ExternalMessage(run_id=key, topic=topic, partition=0, offset=offset, key=key, value=value)
    return Envelope(id=message.message_id, type=message.TYPE, source="tests", subject=key,
                    data=message.model_dump(mode="json"))


async def wait_until(check: Callable[[], Awaitable[bool]]) -> None:
    async with asyncio.timeout(GUARD):
        while not await check():
            await asyncio.sleep(0.05)


async def runs_of(engine: Any, workflow: str) -> list[Any]:
    runs, _ = await engine.store.list_runs(RunFilter(workflows=(workflow,)), limit=1000, offset=0)
    return sorted(runs, key=lambda r: r.created_at)


async def wait_runs(engine: Any, workflow: str, count: int) -> list[Any]:
    async def enough() -> bool:
        return len(await runs_of(engine, workflow)) >= count

    await wait_until(enough)
    return await runs_of(engine, workflow)


async def create(api: httpx.AsyncClient, definition: dict[str, Any]) -> None:
    response = await api.post("/v1/workflows", json=definition)
    assert response.status_code == 201, response.text


async def test_each_message_starts_one_run_with_the_message_as_output(engine: Any, api: httpx.AsyncClient) -> None:
    await create(api, queued("on-order"))
    sent = [kafka_message({"order": 1, "total": 9.5}), external({"order": 2}, offset=0), external(42, offset=1)]
    for envelope in sent:
        await engine.bus.publish("orders.v1", envelope)

    runs = await wait_runs(engine, "on-order", 3)
    by_key = {r.idempotency_key: r for r in runs}
    assert set(by_key) == {f"queue:message:{e.id}" for e in sent}
    assert by_key[f"queue:message:{sent[0].id}"].inputs == {
        "payload": {"order": 1, "total": 9.5}, "context": {"workflow": "upstream", "run": "wfr_1"}}
    assert by_key["queue:message:orders.v1/0/0"].inputs == {"order": 2}
    assert by_key["queue:message:orders.v1/0/1"].inputs == {"value": 42}
    for run in runs:
        assert (run.trigger.type, run.trigger.node) == ("QUEUE", "message")

    async def all_completed() -> bool:
        return all(r.status == "COMPLETED" for r in await runs_of(engine, "on-order"))

    await wait_until(all_completed)
    assert {r.result for r in await runs_of(engine, "on-order")} == {"SUCCESS"}


async def test_a_redelivered_message_starts_no_second_run(engine: Any, api: httpx.AsyncClient) -> None:
    await create(api, queued("on-order"))
    first = external({"order": 1}, offset=0)
    await engine.bus.publish("orders.v1", first)
    await wait_runs(engine, "on-order", 1)

    await engine.bus.publish("orders.v1", first)  # delivered again (same id)
    await engine.bus.publish("orders.v1", kafka_message({"order": 1}))  # a new message with the same content
    again = kafka_message({"order": 3})  # published twice back to back: the second is handled before
    # the scheduler has stored the first one's run
    await engine.bus.publish("orders.v1", again)
    await engine.bus.publish("orders.v1", again)
    await engine.bus.drain()  # every message above handled: their StartRuns are published
    runs = await wait_runs(engine, "on-order", 3)
    await engine.bus.drain()  # and the scheduler has handled those StartRuns
    runs = await runs_of(engine, "on-order")
    assert len(runs) == 3
    assert len({r.idempotency_key for r in runs}) == 3


async def test_every_workflow_on_the_topic_gets_a_run_but_a_paused_one(engine: Any, api: httpx.AsyncClient) -> None:
    await pause(engine.store, "paused-one", by="ops", now=engine.clock())
    await create(api, queued("paused-one", topic="events.shared"))
    await create(api, queued("live-one", topic="events.shared"))
    await engine.bus.publish("events.shared", external({"n": 1}, offset=0, topic="events.shared"))
    await wait_runs(engine, "live-one", 1)
    await engine.bus.drain()
    await engine.bus.drain()
    assert await runs_of(engine, "paused-one") == []


async def test_a_topic_named_by_a_new_version_is_consumed(engine: Any, api: httpx.AsyncClient) -> None:
    await create(api, queued("moving", topic="first.topic"))
    await engine.bus.publish("first.topic", external({"n": 1}, offset=0, topic="first.topic"))
    await wait_runs(engine, "moving", 1)
    response = await api.put("/v1/workflows/moving", json=queued("moving", topic="second.topic"))
    assert response.status_code == 200, response.text
    await engine.bus.publish("second.topic", external({"n": 2}, offset=0, topic="second.topic"))
    runs = await wait_runs(engine, "moving", 2)
    assert runs[-1].inputs == {"n": 2} and runs[-1].version == 2


@pytest.mark.parametrize(("config", "pointer"), [
    ({}, "/nodes/0/config/topic"),
    ({"topic": ""}, "/nodes/0/config/topic"),
    ({"topic": "orders v1"}, "/nodes/0/config/topic"),
    ({"topic": ".."}, "/nodes/0/config/topic"),
    ({"topic": "x" * 250}, "/nodes/0/config/topic"),
    ({"topic": "stepline.run-events.v1"}, "/nodes/0/config/topic"),
    ({"topic": "orders", "group": "mine"}, "/nodes/0/config/group"),
])
async def test_bad_queue_configs_are_refused_with_a_pointer(api: httpx.AsyncClient, config: dict[str, Any],
                                                            pointer: str) -> None:
    definition = queued("bad")
    definition["nodes"][0]["config"] = {"type": "QUEUE_TRIGGER", **config}
    response = await api.post("/v1/workflows", json=definition)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["ok"] is False
    assert pointer in {d.get("pointer") for d in body["details"]}, body
