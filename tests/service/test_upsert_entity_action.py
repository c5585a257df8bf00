"""UPSERT_ENTITY's action and the catalog store on a real SQLite store and memory bus: idempotent per
node run, concurrent upserts lose nothing, outside catalog events (plain JSON) are understood."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from libs.bus.memory import MemoryBus
from libs.bus.publisher import Publisher
from libs.catalog.entities import EntityPatch
from libs.catalog.events import InvalidCatalogEventError, event_of
from libs.catalog.store import Catalog
from libs.contracts import topics, v1
from libs.contracts.envelope import Envelope
from libs.core.definition import Node
from libs.core.run import node_run_id, node_run_key
from libs.store.sqlite import SqliteStore
from services.executor.actions.base import ActionInput
from services.executor.actions.upsert_entity import UpsertEntityAction


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    db = SqliteStore(str(tmp_path / "stepline.db"))
    await db.open()
    yield db
    await db.close()


@pytest.fixture
async def bus() -> AsyncIterator[tuple[MemoryBus, list[v1.CatalogEvent]]]:
    memory = MemoryBus(2)
    seen: list[v1.CatalogEvent] = []

    async def collect(envelope: Envelope) -> None:
        message = envelope.message()
        assert isinstance(message, v1.CatalogEvent)
        seen.append(message)

    memory.subscribe(topics.CATALOG_EVENTS, "test", collect)
    await memory.start()
    yield memory, seen
    await memory.stop()


def attempt(config: dict[str, Any], number: int = 1) -> ActionInput:
    node = Node.model_validate({"identifier": "upsert", "config": {"type": "UPSERT_ENTITY", **config}})
    key = node_run_key("wfr_test", "upsert", number)
    return ActionInput(node=node, config=node.config, context={}, run_id="wfr_test", node_run_id=node_run_id(key),
                       node_run_key=key, attempt=number, timeout=5.0)


CONFIG = {"blueprintIdentifier": "service", "mapping": {"identifier": "payments", "properties": {"tier": "gold"}}}


async def test_a_re_executed_attempt_announces_the_same_change_once(
        store: SqliteStore, bus: tuple[MemoryBus, list[v1.CatalogEvent]]) -> None:
    memory, seen = bus
    action = UpsertEntityAction(store, Publisher(memory, "stepline/executor"))
    first = await action.execute(attempt(CONFIG))
    second = await action.execute(attempt(CONFIG))
    await memory.drain()
    assert first.output == second.output
    assert first.output["response"]["data"]["identifier"] == "payments"
    assert {e.id for e in seen} == {seen[0].id}, "a re-execution re-announces the same event id"
    assert seen[0].action == "CREATE" and seen[0].run_id == "service/payments"
    entity = await Catalog(store, lambda: 0.0).get("service", "payments")
    assert entity is not None and entity["updatedAt"] == first.output["response"]["data"]["updatedAt"]

    first_id = seen[0].id
    seen.clear()
    retried = await action.execute(attempt(CONFIG, number=2))
    await memory.drain()
    assert retried.output["response"]["data"]["properties"] == {"tier": "gold"}
    assert [e.id for e in seen] == [first_id], \
        "a later attempt re-announces the earlier attempt's change and makes none of its own"


async def test_generated_identifier_is_stable_per_node_run(
        store: SqliteStore, bus: tuple[MemoryBus, list[v1.CatalogEvent]]) -> None:
    memory, _ = bus
    config = {"blueprintIdentifier": "service", "mapping": {"properties": {}}}
    action = UpsertEntityAction(store, Publisher(memory, "stepline/executor"))
    one = await action.execute(attempt(config))
    two = await action.execute(attempt(config))
    assert one.output["response"]["data"]["identifier"] == two.output["response"]["data"]["identifier"]
    assert len(await Catalog(store, lambda: 0.0).list("service", limit=10, offset=0)) == 1


async def test_concurrent_upserts_lose_no_property(store: SqliteStore) -> None:
    catalog = Catalog(store, lambda: 1_700_000_000.0)
    await asyncio.gather(*(catalog.upsert("service", EntityPatch("payments", properties={f"p{i}": i}))
                           for i in range(20)))
    entity = await catalog.get("service", "payments")
    assert entity is not None
    assert entity["properties"] == {f"p{i}": i for i in range(20)}


def external(value: Any, offset: int = 7) -> Envelope:
    message = v1.ExternalMessage(run_id="k", topic=topics.CATALOG_EVENTS, partition=0, offset=offset, value=value)
    return Envelope(id=message.message_id, type=message.TYPE, source="test", subject="k",
                    data=message.model_dump(mode="json"))


def test_plain_port_json_on_the_topic_is_a_catalog_event() -> None:
    port = {"action": "DELETE", "resourceType": "entity",
            "context": {"blueprintIdentifier": "service", "entityIdentifier": "payments"},
            "diff": {"before": {"identifier": "payments"}, "after": None}}
    event = event_of(external(port), timestamp="2024-05-01T12:00:00.000Z")
    assert event is not None and event.action == "DELETE" and event.run_id == "service/payments"
    again = event_of(external(port), timestamp="2024-05-01T12:00:01.000Z")
    assert again is not None and again.id == event.id, "a redelivered record gets the same event id"
    with pytest.raises(InvalidCatalogEventError):
        event_of(external({"hello": "world"}), timestamp="2024-05-01T12:00:00.000Z")
